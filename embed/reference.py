"""Reference taxa beyond the catalog (SPEC §2, §5, §7 `python -m embed taxa`).

A reference set is a named list of taxa written into the store's `taxa` collection: an NCBI clade,
a checklist, or BioCLIP's published species embeddings. Its members are the points whose `sources`
hold its name; that is all `predict` reads. The SQL catalog records what the store cannot: each
set's kind, arguments and model, per store.

One rule makes adding idempotent and keeps the catalog's taxa intact: a taxon already in the store
keeps its payload (its `n_images`, common name and text); the set's name joins its `sources`, and
only a missing vector of this model is made. A set leaves a taxon by its name leaving `sources`;
the point goes only when no set and not the catalog holds it (as `embed.sync` does for the catalog).

Adding under an existing name: `--ncbi` clades accumulate (NCBI's taxonomy is fixed, nothing is taken
back); a checklist or published folder replaces the set's content, so the set follows its file.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embed.build import opened, register_vector
from embed.constants import (
    DEFAULT_DEVICE,
    DEFAULT_HIGHER_RANK_VECTORS,
    DEFAULT_TEXT_BATCH_SIZE,
    HIGHER_RANK_VECTORS,
    MEAN_TEXT,
    NCBI_SET,
    REFERENCE_CHUNK,
    RESERVED_SET_NAMES,
    TOL_SET,
)
from index.convert import taxon_point_id, with_sources
from index.filters import SearchFilter
from index.collection.entries import Problem
from index.records import ReferenceSet
from index.schema import CATALOG_SOURCE, RANK, SOURCES, TAXA
from taxonomy import DEFAULT_TEST_TEXT_TYPE, RANK_LABELS, Rank, validate_text_type
from taxonomy.taxon import Taxon, taxa_of
from taxonomy.text import TEMPLATE_COUNT
from toolkit.cli import Progress
from toolkit.cli import report as report_progress
from toolkit.settings import StoreOptions

if TYPE_CHECKING:
    from embed.encoder import Encoder
    from embed.models import LoadedModel
    from index.catalog import Catalog
    from index.store import VectorStore
    from index.tol import TolEmbeddings

logger = logging.getLogger(__name__)

# Vectors for the taxa about to be written: (their positions in the set's list, the taxa as written).
VectorSource = Callable[[list[int], list[Taxon]], np.ndarray]

KIND_NCBI, KIND_CHECKLIST, KIND_TOL = "ncbi", "checklist", "tol"
_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}")


class ReferenceSetError(ValueError):
    """A reference set cannot be added, renamed or removed as asked; the message says why and what to do."""


@dataclass(frozen=True)
class TaxaOptions(StoreOptions):
    """What `python -m embed taxa` was asked to do; `store`/`db` None = environment, then default."""

    name: str | None = None  # None: the kind's default (`ncbi`, `tol-10m`, the checklist's stem)
    ranks: tuple[Rank, ...] = tuple(Rank)
    device: str = DEFAULT_DEVICE
    text_type: str = DEFAULT_TEST_TEXT_TYPE
    templates: int = TEMPLATE_COUNT
    text_batch_size: int = DEFAULT_TEXT_BATCH_SIZE
    higher_ranks: str = DEFAULT_HIGHER_RANK_VECTORS  # a ToL import: `mean` of species vectors, or `text`

    def __post_init__(self) -> None:
        validate_text_type(self.text_type)
        if not 1 <= self.templates <= TEMPLATE_COUNT:
            raise ValueError(f"templates must be from 1 to {TEMPLATE_COUNT}, got {self.templates}")
        if self.higher_ranks not in HIGHER_RANK_VECTORS:
            raise ValueError(f"unknown higher-rank vectors {self.higher_ranks!r}; expected one of "
                             f"{', '.join(HIGHER_RANK_VECTORS)}")
        if not self.ranks:
            raise ValueError(f"no rank asked for; expected some of {', '.join(RANK_LABELS)}")
        if self.name is not None:
            check_set_name(self.name)


@dataclass(frozen=True)
class SetSummary:
    """What adding one set did to the store."""

    name: str
    kind: str
    vector_name: str
    store: str
    taxa: int  # taxa of the set as read (after --ranks)
    per_rank: dict[str, int]
    new: int  # points created
    joined: int  # points that were there: the set's name joined their `sources`
    unchanged: int  # points that held the set and this model's vector already
    embedded: int  # vectors made by the model's text tower
    copied: int  # vectors taken as given (published embeddings, or means of them)
    released: int = 0  # points the set left (replaced content), kept for another set or the catalog
    removed: int = 0  # points the set left that nothing else held
    skipped: dict[str, int] = field(default_factory=dict)  # inputs left out, by reason
    problems: tuple[Problem, ...] = ()
    seconds: float = 0.0
    note: str = ""  # how the vectors were made


@dataclass(frozen=True)
class SetListing:
    """One line of `--list`: a set as the store holds it, and as the catalog recorded it."""

    name: str
    kind: str  # `catalog` for the collection's own taxa; "" for a set this catalog never recorded
    per_rank: dict[str, int]
    total: int
    model: str = ""
    arguments: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class _Written:
    new: int = 0
    joined: int = 0
    unchanged: int = 0
    made: int = 0
    ids: set[str] = field(default_factory=set)


def check_set_name(name: str) -> str:
    """`name` if a reference set may take it; the error names what is allowed."""
    if not isinstance(name, str) or not _SET_NAME.fullmatch(name):
        raise ReferenceSetError(
            f"invalid set name {name!r}: expected 1-64 letters, digits, '_', '-', '.', ':' or '+', "
            "starting with a letter or digit (e.g. ncbi, tol-10m, birds-of-ohio)")
    if name.lower() in RESERVED_SET_NAMES:
        raise ReferenceSetError(f"set name {name!r} is reserved ({', '.join(RESERVED_SET_NAMES)}); choose another --name")
    return name


def _per_rank(taxa: Sequence[Taxon]) -> dict[str, int]:
    counts = {rank.label: 0 for rank in Rank}
    for taxon in taxa:
        counts[taxon.rank.label] += 1
    return counts


def write_set(
    store: VectorStore, name: str, vector: str, taxa: Sequence[Taxon], texts: Sequence[str],
    vectors: VectorSource, progress: Progress | None = None,
) -> _Written:
    """Add `taxa` to the set `name`, chunk by chunk: new points get `vectors(...)`, existing points keep
    their payload and gain the name in `sources` (and this model's vector when they lack it)."""
    written = _Written()
    total = len(taxa)
    for start in range(0, total, REFERENCE_CHUNK):
        part = list(taxa[start:start + REFERENCE_CHUNK])
        ids = [taxon_point_id(t) for t in part]
        written.ids.update(ids)
        existing = {hit.id: hit for hit in store.retrieve(TAXA, ids)}
        with_vector = store.ids_with_vector(TAXA, vector, sorted(existing)) if existing else set()
        join_ids: list[str] = []
        join_payloads: list[dict] = []
        positions: list[int] = []
        out_taxa: list[Taxon] = []
        out_texts: list[str] = []
        out_sources: list[list[str]] = []
        for offset, (point, taxon) in enumerate(zip(ids, part)):
            hit = existing.get(point)
            # A point without `sources` was written by a build before reference sets existed: the catalog's.
            held = list(hit.sources or [CATALOG_SOURCE]) if hit is not None else []
            if hit is not None and point in with_vector:
                if name in held:
                    written.unchanged += 1
                else:
                    join_ids.append(point)
                    join_payloads.append(with_sources(hit, sorted({*held, name})))
                continue
            positions.append(start + offset)
            if hit is None:
                out_taxa.append(taxon)
                out_texts.append(texts[start + offset])
                written.new += 1
            else:
                out_taxa.append(hit.as_taxon())
                out_texts.append(hit.text or texts[start + offset])
                written.joined += name not in held
                written.unchanged += name in held
            out_sources.append(sorted({*held, name}))
        if out_taxa:
            store.upsert_taxa(vector, out_taxa, out_texts, vectors(positions, out_taxa), out_sources)
            written.made += len(out_taxa)
        if join_ids:
            store.overwrite_payloads(TAXA, join_ids, join_payloads)
            written.joined += len(join_ids)
        report_progress(progress, "taxa", min(start + REFERENCE_CHUNK, total), total, "taxa")
    return written


def release_set(store: VectorStore, name: str, keep: set[str] | None = None) -> tuple[int, int]:
    """The set `name` leaves every taxon (but those in `keep`): a point another set or the catalog
    holds loses only the name from `sources`; a point nothing else holds is deleted.

    Returns (released, removed).
    """
    release_ids: list[str] = []
    release_payloads: list[dict] = []
    remove_ids: list[str] = []
    for hit in store.scroll(TAXA, SearchFilter(sources=(name,))):
        if keep is not None and hit.id in keep:
            continue
        others = [s for s in hit.sources or () if s != name]
        if others:
            release_ids.append(hit.id)
            release_payloads.append(with_sources(hit, others))
        else:
            remove_ids.append(hit.id)
    if release_ids:
        store.overwrite_payloads(TAXA, release_ids, release_payloads)
    store.delete(TAXA, remove_ids)
    return len(release_ids), len(remove_ids)


def _existing_record(catalog: Catalog, location: str, name: str) -> ReferenceSet | None:
    return next((r for r in catalog.reference_sets(location) if r.name == name), None)


def _check_kind(record: ReferenceSet | None, name: str, kind: str) -> None:
    if record is not None and record.kind != kind:
        raise ReferenceSetError(
            f"set {name!r} already holds a {record.kind} set ({', '.join(record.arguments)}); give this one "
            f"another --name, or remove that one first (python -m embed taxa --remove {name})")


def _load_encoder(options: TaxaOptions, loaded: LoadedModel | None) -> Encoder:
    from embed.encoder import Encoder
    from embed.models import load_model

    if loaded is None:
        loaded = load_model(options.model, device=options.device)
    return Encoder(loaded, text_batch_size=options.text_batch_size)


def _encode_source(encoder: Encoder, options: TaxaOptions) -> VectorSource:
    return lambda _positions, taxa: encoder.encode_taxa(taxa, options.text_type, options.templates)


def _add_encoded(
    kind: str, name: str, arguments: tuple[str, ...], taxa: list[Taxon], options: TaxaOptions,
    progress: Progress | None, loaded: LoadedModel | None, store: VectorStore | None, catalog: Catalog | None,
    skipped: dict[str, int], problems: Sequence[Problem], accumulate: bool,
) -> SetSummary:
    """Add taxa embedded with the model's text tower (SPEC §4's template averaging) under `name`."""
    started = time.perf_counter()
    taxa = [t for t in taxa if t.rank in options.ranks]
    encoder = _load_encoder(options, loaded)  # a bad or unreachable model fails before the store is touched
    with opened(options.db, options.store, options.api_key, store, catalog) as (store, catalog):
        location = store.location
        record = _existing_record(catalog, location, name)
        _check_kind(record, name, kind)
        vector = encoder.vector_name
        register_vector(catalog, store, vector, encoder.loaded.spec, encoder.dim)
        texts = [t.text(options.text_type) for t in taxa]
        written = write_set(store, name, vector, taxa, texts, _encode_source(encoder, options), progress)
        released = removed = 0
        if not accumulate:
            released, removed = release_set(store, name, keep=written.ids)
        if accumulate and record is not None:
            arguments = tuple(dict.fromkeys((*record.arguments, *arguments)))
        per_rank = _per_rank(taxa)
        catalog.record_reference_set(ReferenceSet(
            name=name, kind=kind, arguments=arguments, model=vector, spec=encoder.loaded.spec, store=location,
            details={"templates": options.templates, "text_type": options.text_type, "per_rank": per_rank},
        ))
        store.optimize()
    note = (f"{options.text_type} text, {options.templates} template(s) averaged, "
            f"model {encoder.loaded.spec}")
    return SetSummary(
        name=name, kind=kind, vector_name=vector, store=location, taxa=len(taxa), per_rank=per_rank,
        new=written.new, joined=written.joined, unchanged=written.unchanged, embedded=written.made, copied=0,
        released=released, removed=removed, skipped=skipped, problems=tuple(problems),
        seconds=time.perf_counter() - started, note=note,
    )


def add_ncbi(
    clades: Sequence[str], options: TaxaOptions, progress: Progress | None = None,
    loaded: LoadedModel | None = None, store: VectorStore | None = None, catalog: Catalog | None = None,
) -> SetSummary:
    """Every taxon of NCBI `clades` (names or taxids) and their ancestors, into the set `ncbi` (or `--name`).

    Raises:
        ValueError: an unknown clade (with close matches), a bad set name, a set of another kind.
    """
    from taxonomy.ncbi import clade_taxa

    name = check_set_name(options.name or NCBI_SET)
    found = clade_taxa(clades, progress)
    return _add_encoded(KIND_NCBI, name, found.clades, found.taxa, options, progress, loaded, store, catalog,
                        found.skipped, (), accumulate=True)


def add_checklist(
    path: Path, options: TaxaOptions, progress: Progress | None = None,
    loaded: LoadedModel | None = None, store: VectorStore | None = None, catalog: Catalog | None = None,
) -> SetSummary:
    """The taxa of a checklist CSV and their ancestors, into the set named after the file (or `--name`).

    Raises:
        FileNotFoundError, ValueError: the file is missing or has no rank column (naming the file).
    """
    from index.collection.readers import read_checklist

    path = Path(path)
    name = check_set_name(options.name or _stem_name(path))
    checklist = read_checklist(path)
    for problem in checklist.problems:
        logger.warning("skipped %s", problem)
    if not checklist.lineages:
        raise ReferenceSetError(f"{path}: no usable row ({len(checklist.problems)} with problems)")
    taxa = [replace(t, n_images=0) for t in taxa_of(checklist.lineages)]
    skipped = {"rows with problems": len(checklist.problems)} if checklist.problems else {}
    return _add_encoded(KIND_CHECKLIST, name, (str(path.resolve()),), taxa, options, progress, loaded, store,
                        catalog, skipped, checklist.problems, accumulate=False)


def _stem_name(path: Path) -> str:
    stem = path.stem
    if not _SET_NAME.fullmatch(stem):
        raise ReferenceSetError(f"the checklist's file name {path.name!r} cannot name a set ({stem!r}); "
                                "give one with --name")
    return stem


def mean_vectors(tol: TolEmbeddings, derived: Sequence[Taxon], progress: Progress | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For each derived (higher-rank) taxon, the normalised mean of the published vectors below it,
    and how many there are. One pass over the array, a slice of columns at a time."""
    index = {t.key: i for i, t in enumerate(derived)}
    sums = np.zeros((len(derived), tol.dim), dtype=np.float64)
    counts = np.zeros(len(derived), dtype=np.int64)
    # For each published entry, the derived taxa above it (their rows in `sums`), one array per rank.
    above = np.full((len(Rank), len(tol.lineages)), -1, dtype=np.int64)
    for position, lineage in enumerate(tol.lineages):
        for rank_index, key in enumerate(lineage.keys()[:-1]):
            above[rank_index, position] = index.get(key, -1)
    step = REFERENCE_CHUNK * 16
    for start in range(0, len(tol.lineages), step):
        stop = min(start + step, len(tol.lineages))
        rows = tol.rows(np.arange(start, stop)).astype(np.float64)
        for rank_index in range(len(Rank)):
            targets = above[rank_index, start:stop]
            valid = targets >= 0
            if valid.any():
                np.add.at(sums, targets[valid], rows[valid])
                np.add.at(counts, targets[valid], 1)
        report_progress(progress, "means", stop, len(tol.lineages), "taxa")
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32), counts


def add_tol(
    folder: Path, options: TaxaOptions, progress: Progress | None = None,
    loaded: LoadedModel | None = None, store: VectorStore | None = None, catalog: Catalog | None = None,
) -> SetSummary:
    """BioCLIP's published species embeddings as they are, into the set `tol-10m` (or `--name`).

    Their vectors fill the vector of `options.model` (default `bioclip`) without being re-embedded.
    Ranks above the published ones are derived from the lineages; their vectors are the normalised
    mean of the published vectors below them (`higher_ranks="mean"`), or the model's text tower
    (`"text"`, which loads the model).

    Raises:
        FileNotFoundError, ValueError: a missing file, a bad layout, or a dimension the model does not have.
    """
    from embed.models import model_dim, model_identity
    from index.tol import read_tol_embeddings

    started = time.perf_counter()
    folder = Path(folder)
    name = check_set_name(options.name or TOL_SET)
    tol = read_tol_embeddings(folder)
    for problem in tol.problems:
        logger.warning("skipped %s", problem)
    encoder = _load_encoder(options, loaded) if options.higher_ranks == "text" else None
    spec = encoder.loaded.spec if encoder is not None else options.model
    vector = encoder.vector_name if encoder is not None else model_identity(spec).vector_name
    dim = encoder.dim if encoder is not None else model_dim(spec)
    if dim is not None and dim != tol.dim:
        raise ReferenceSetError(
            f"{folder}: the published vectors are {tol.dim}-d but model {spec} makes {dim}-d vectors "
            f"(vector {vector!r}); pass the --model whose embeddings these are")
    given = [Taxon(lineage, lineage.deepest_rank) for lineage in tol.lineages]  # type: ignore[arg-type]
    given_keys = {t.key for t in given}
    derived = [replace(t, n_images=0) for t in taxa_of(tol.lineages) if t.key not in given_keys]
    given = [t for t in given if t.rank in options.ranks]
    given_positions = [i for i, lineage in enumerate(tol.lineages) if lineage.deepest_rank in options.ranks]
    derived = [t for t in derived if t.rank in options.ranks]
    with opened(options.db, options.store, options.api_key, store, catalog) as (store, catalog):
        location = store.location
        _check_kind(_existing_record(catalog, location, name), name, KIND_TOL)
        register_vector(catalog, store, vector, spec, tol.dim)
        texts = [t.text(DEFAULT_TEST_TEXT_TYPE) for t in given]
        copied = write_set(store, name, vector, given, texts,
                           lambda positions, _taxa: tol.rows([given_positions[p] for p in positions]), progress)
        if encoder is not None:
            texts = [t.text(options.text_type) for t in derived]
            higher = write_set(store, name, vector, derived, texts, _encode_source(encoder, options), progress)
            note = (f"published vectors for {len(given)} taxa; ranks above from the text tower of {spec} "
                    f"({options.text_type}, {options.templates} template(s))")
        else:
            means, counts = mean_vectors(tol, derived, progress)
            texts = [MEAN_TEXT.format(n=int(n), caption=t.text(DEFAULT_TEST_TEXT_TYPE))
                     for t, n in zip(derived, counts)]
            higher = write_set(store, name, vector, derived, texts, lambda positions, _taxa: means[positions],
                               progress)
            note = (f"published vectors for {len(given)} taxa; ranks above: the normalised mean of the "
                    "published vectors below each")
        released, removed = release_set(store, name, keep=copied.ids | higher.ids)
        per_rank = _per_rank([*given, *derived])
        catalog.record_reference_set(ReferenceSet(
            name=name, kind=KIND_TOL, arguments=(str(folder.resolve()),), model=vector, spec=spec, store=location,
            details={"higher_ranks": options.higher_ranks, "per_rank": per_rank},
        ))
        store.optimize()
    return SetSummary(
        name=name, kind=KIND_TOL, vector_name=vector, store=location, taxa=len(given) + len(derived),
        per_rank=per_rank, new=copied.new + higher.new, joined=copied.joined + higher.joined,
        unchanged=copied.unchanged + higher.unchanged,
        embedded=higher.made if encoder is not None else 0,
        copied=copied.made + (0 if encoder is not None else higher.made),
        released=released, removed=removed,
        skipped={"entries with problems": len(tol.problems)} if tol.problems else {},
        problems=tuple(tol.problems), seconds=time.perf_counter() - started, note=note,
    )


def remove_set(name: str, options: TaxaOptions, store: VectorStore | None = None,
               catalog: Catalog | None = None) -> tuple[int, int]:
    """Take the set `name` out of the store; returns (released, removed) as `release_set`.

    Raises:
        ReferenceSetError: no such set in the store (naming those there are).
    """
    with opened(options.db, options.store, options.api_key, store, catalog) as (store, catalog):
        _check_present(store, catalog, name)
        result = release_set(store, name)
        catalog.forget_reference_set(store.location, name)
    return result


def rename_set(old: str, new: str, options: TaxaOptions, store: VectorStore | None = None,
               catalog: Catalog | None = None) -> int:
    """Give the set `old` the name `new` in every taxon's `sources`; returns the points rewritten.

    Raises:
        ReferenceSetError: `old` is not in the store, or `new` is taken or not a valid name.
    """
    check_set_name(new)
    with opened(options.db, options.store, options.api_key, store, catalog) as (store, catalog):
        _check_present(store, catalog, old)
        if _in_store(store, new) or _existing_record(catalog, store.location, new) is not None:
            raise ReferenceSetError(f"set {new!r} exists already in {store.location}; remove it first "
                                    f"(python -m embed taxa --remove {new}) or choose another name")
        ids: list[str] = []
        payloads: list[dict] = []
        for hit in store.scroll(TAXA, SearchFilter(sources=(old,))):
            ids.append(hit.id)
            payloads.append(with_sources(hit, sorted({*(hit.sources or ()), new} - {old})))
        store.overwrite_payloads(TAXA, ids, payloads)
        catalog.rename_reference_set(store.location, old, new)
    return len(ids)


def _in_store(store: VectorStore, name: str) -> bool:
    return store.count(TAXA, SearchFilter(sources=(name,))) > 0


def _check_present(store: VectorStore, catalog: Catalog, name: str) -> None:
    if name == CATALOG_SOURCE:
        raise ReferenceSetError(f"{CATALOG_SOURCE!r} is the collection's own set: it follows the catalog "
                                "(python -m index ingest, then python -m embed build)")
    if _in_store(store, name) or _existing_record(catalog, store.location, name) is not None:
        return
    there = [s.name for s in list_sets(store, catalog) if s.kind != CATALOG_SOURCE]
    raise ReferenceSetError(f"no reference set {name!r} in {store.location}; it has: {', '.join(there) or 'none'}")


def list_sets(store: VectorStore, catalog: Catalog) -> list[SetListing]:
    """Every set in the store (the catalog's own first), with its taxa per rank as the store holds them."""
    from index.store import MissingIndexError

    if TAXA not in _collections(store):
        totals: dict[str, int] = {}
    else:
        try:
            totals = {name: n for name, n in store.facet_counts(TAXA, SOURCES).items() if n > 0}
        except MissingIndexError:
            totals = {}
    records = {r.name: r for r in catalog.reference_sets(store.location)}
    listings: list[SetListing] = []
    for name in sorted(set(totals) | set(records), key=lambda n: (n != CATALOG_SOURCE, n)):
        per_rank = {rank.label: 0 for rank in Rank}
        if name in totals:
            per_rank.update({rank: n for rank, n in store.facet_counts(TAXA, RANK, SearchFilter(sources=(name,))).items()
                             if n > 0})
        record = records.get(name)
        kind = CATALOG_SOURCE if name == CATALOG_SOURCE else (record.kind if record else "")
        listings.append(SetListing(
            name=name, kind=kind, per_rank=per_rank, total=totals.get(name, 0),
            model=record.model if record else "", arguments=record.arguments if record else (),
            details=dict(record.details) if record else {},
        ))
    return listings


def _collections(store: VectorStore) -> set[str]:
    return {name for name in (TAXA,) if store.info(name)}


def list_reference_sets(options: TaxaOptions, store: VectorStore | None = None,
                        catalog: Catalog | None = None) -> list[SetListing]:
    with opened(options.db, options.store, options.api_key, store, catalog) as (store, catalog):
        return list_sets(store, catalog)
