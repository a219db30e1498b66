"""The search API of the CLI and the UI: text or image in, images or taxa out (SPEC §5).

    service = SearchService(open_store(), Catalog(), model="tol-tiny")
    service.text_to_images("a photo of Pica hudsonia.", k=12, filter=SearchFilter(within=("Animalia",)))
    service.image_to_images(image_id)                # an image of the collection: its stored vector
    service.image_to_images(open_image(root, path))  # a picture (index.collection.images): encoded here
    service.identify(image, method="sum")            # nearest taxa at every rank, consistent down the tree
    service.text_to_taxa("magpie", rank=Rank.SPECIES)

Filters follow the hierarchy through `index.store.SearchFilter` (within / excluding a clade key,
a rank, a split or a source); `per_species` groups image results so that one species does not
fill the page. The model is loaded on first use only: browsing, counts, clade options and
searches by a stored image need none. Nothing here imports streamlit.
"""
from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embed.query_taxon import NamedTaxon, QueryReading, read_query
from embed.candidates import Candidates
from embed.predict import CLIP_LOGIT_SCALE, METHOD_SUM, Identification, identify_vectors, validate_method
from embed.predict_inputs import Subset
from index.schema import IMAGES, LINEAGE, SOURCES, SPECIES, TAXA
from index.store import Hit, SearchFilter, StoreError, VectorStore
from taxonomy import Lineage, Rank, parse_key

if TYPE_CHECKING:
    from PIL import Image

    from embed.encoder import Encoder
    from embed.models import LoadedModel
    from index.catalog import Catalog

logger = logging.getLogger(__name__)

DEFAULT_K = 12
DEFAULT_TAXA_K = 5
RETRIEVE_CHUNK = 2048  # candidate vectors read from the store per request
CANDIDATE_CACHE_ENTRIES = 8  # candidate sets (filter x sets x subset x method) kept in memory
ALL_SETS = "all"
REFERENCE_HINT = (
    "add a reference set with `python -m embed taxa --ncbi CLADE` (or --checklist CSV, --tol-embeddings DIR), "
    "or build a labelled collection with `python -m embed build --catalog CSV --images DIR`"
)
SAMPLE_LIMIT = 200
MAP_LIMIT = 5000  # images projected on a map of the collection (the first ones in id order: a random sample)
ROOT_CACHE_LIMIT = 100_000  # image id -> collection root lookups kept
TEXT_CACHE_LIMIT = 256  # query texts whose vectors are kept (the UI asks for one text's images and taxa)
CLADE_SUGGESTIONS = 5  # closest taxon keys named when a clade is not in the store
CLADE_SIMILARITY = 0.6  # difflib's ratio below which a key is not suggested
# A text that names no taxon is "weak" when its best image scores below this percentile of the best
# scores that real species names of the store reach when typed (sampled once per service).
WEAK_PERCENTILE = 5
WEAK_SAMPLE = 48
BUILD_HINT = "run `python -m embed build --model {spec}` first (or `python -m demo` for the demo collection)"


class NotBuiltError(StoreError):
    """The store holds no vectors of this model: nothing to search yet."""


class UnknownTaxonError(ValueError):
    """A clade that is no taxon key of the store, nor the name of exactly one of its taxa."""


class NoCandidatesError(ValueError):
    """Identification has no taxon to compare with (an empty store, set, clade or subset)."""


@dataclass(frozen=True)
class SearchHit:
    """One result: an image of the collection or a taxon, with its cosine similarity (`score`).

    `lineage` carries the names (kingdom..epithet, common name) as the record every other
    package uses; `row()` flattens it with rank labels as keys for CSV, JSON and tables.
    """

    id: str
    score: float | None  # None for points listed without a query (samples, lookups)
    collection: str  # "images" | "taxa"
    taxon: str  # key of the deepest known rank; "" for an unlabelled image
    rank: Rank | None
    lineage: Lineage
    path: str = ""  # images: relative to `root`
    root: str = ""  # images: the collection root from the catalog ("" when the catalog lacks it)
    split: str = ""
    source: str = ""
    license: str = ""  # images: the licence the collection gives
    n_images: int = 0  # taxa: images of the collection in this taxon
    group: str = ""  # the species binomial when results were grouped by species

    @property
    def name(self) -> str:
        """`Pica hudsonia` for a species, the rank's name above, "" when unlabelled."""
        if self.rank is None:
            return ""
        return self.lineage.binomial if self.rank == Rank.SPECIES else self.lineage.get(self.rank)

    @property
    def common_name(self) -> str:
        return self.lineage.common_name

    @property
    def is_image(self) -> bool:
        return self.collection == IMAGES

    def row(self) -> dict[str, Any]:
        """Flat fields: id, score, collection, rank, taxon, name, kingdom..genus, species (binomial),
        common_name, path, split, source, n_images."""
        row: dict[str, Any] = {
            "id": self.id, "score": self.score, "collection": self.collection,
            "rank": self.rank.label if self.rank is not None else "", "taxon": self.taxon, "name": self.name,
        }
        for rank in Rank:
            row[rank.label] = self.lineage.binomial if rank == Rank.SPECIES else self.lineage.get(rank)
        row.update(common_name=self.common_name, path=self.path, split=self.split, source=self.source,
                   n_images=self.n_images)
        return row


@dataclass(frozen=True)
class TaxonOption:
    """A choice of the cascading clade filter: a taxon of the store with its image count."""

    key: str
    rank: Rank
    name: str
    common_name: str
    n_images: int

    @property
    def label(self) -> str:
        common = f" ({self.common_name})" if self.common_name else ""
        return f"{self.name}{common} · {self.n_images}"


@dataclass(frozen=True)
class TextSearch:
    """A text search: how the text was read, which taxon's vector it searched with, and the images."""

    reading: QueryReading
    taxon: NamedTaxon | None  # the taxon searched with; None when the text names none (embedded as typed)
    hits: list[SearchHit]
    weak: bool = False  # the best image scores below what real names reach in this store

    def inside(self) -> list[SearchHit]:
        """The hits labelled inside the taxon searched with."""
        if self.taxon is None:
            return []
        return [hit for hit in self.hits if hit.taxon == self.taxon.key or hit.taxon.startswith(self.taxon.key + "/")]


@dataclass(frozen=True)
class StoreCounts:
    """What the store holds for one model."""

    images: int
    taxa: dict[str, int]  # rank label -> taxa

    @property
    def is_empty(self) -> bool:
        return self.images == 0 and not any(self.taxa.values())


class SearchService:
    """Searches one model's vectors in a store; the catalog (optional) gives images their root folder.

    Args:
        store: an open `index.store.VectorStore` (left open by this object).
        catalog: an open `index.catalog.Catalog`, or None (hits then have no `root`).
        model: a model spec (loaded on first use) or an already loaded `LoadedModel`.
        device: where the model runs.
        logit_scale: the softmax scale of predictions; None takes the model's own (pybioclip's choice).
    """

    def __init__(
        self,
        store: VectorStore,
        catalog: Catalog | None = None,
        model: str | LoadedModel = "",
        *,
        device: str = "cpu",
        logit_scale: float | None = None,
    ) -> None:
        from embed.models import LoadedModel, model_vector_name

        if isinstance(model, LoadedModel):
            self.spec, self.vector_name, self._loaded = model.spec, model.vector_name, model
        else:
            if not model or not model.strip():
                raise ValueError("SearchService needs a model spec (e.g. tol-tiny, hf-hub:imageomics/bioclip)")
            self.spec, self.vector_name, self._loaded = model.strip(), model_vector_name(model), None
        if logit_scale is not None and not logit_scale > 0:
            raise ValueError(f"logit_scale must be positive, got {logit_scale!r}")
        self.store = store
        self.catalog = catalog
        self.device = device
        self._logit_scale = logit_scale
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()  # the UI calls from several sessions' threads
        self._roots: dict[str, str] = {}
        self._text_vectors: dict[str, np.ndarray] = {}
        self._weak_score: float | None = None
        self._candidates: dict[tuple[Any, ...], Candidates] = {}

    # --- the model, loaded on first use ----------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        with self._lock:
            if self._encoder is None:
                from embed.encoder import Encoder
                from embed.models import load_model

                if self._loaded is None:
                    logger.info("loading model %s", self.spec)
                    self._loaded = load_model(self.spec, device=self.device)
                self._encoder = Encoder(self._loaded)
            return self._encoder

    @property
    def logit_scale(self) -> float:
        """The prediction softmax scale: given, else the model's learned one, else CLIP's 100."""
        if self._logit_scale is None:
            scale = getattr(self.encoder.loaded.model, "logit_scale", None)
            self._logit_scale = float(scale.exp().item()) if scale is not None else CLIP_LOGIT_SCALE
        return self._logit_scale

    def text_vector(self, text: str) -> np.ndarray:
        """The unit vector of a query text, embedded as typed."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty query text; type a name or a description, e.g. 'a photo of Pica hudsonia.'")
        text = text.strip()
        vector = self._text_vectors.get(text)
        if vector is None:
            vector = self.encoder.encode_texts([text])[0]
            vector.setflags(write=False)  # shared by every caller of this text
            if len(self._text_vectors) >= TEXT_CACHE_LIMIT:
                self._text_vectors.clear()
            self._text_vectors[text] = vector
        return vector

    def image_vector(self, image: Image.Image) -> np.ndarray:
        """The unit vector of a decoded RGB image (see `index.collection.images.open_image`)."""
        return self.encoder.encode_images([image])[0]

    def stored_vector(self, image_id: str) -> np.ndarray:
        """The vector a collection image already has in the store (no model needed)."""
        self.check_built(IMAGES)
        hits = self.store.retrieve(IMAGES, [image_id], self.vector_name)
        if not hits or hits[0].vector is None:
            raise KeyError(f"image {image_id!r} has no {self.vector_name!r} vector in the store {self.store.location}")
        return hits[0].vector

    def _query_vector(self, query: str | Image.Image | np.ndarray) -> np.ndarray:
        if isinstance(query, np.ndarray):
            return query
        if isinstance(query, str):
            return self.stored_vector(query)
        return self.image_vector(query)

    # --- what the store holds --------------------------------------------------------------------

    def is_built(self, collection: str = IMAGES) -> bool:
        return self.vector_name in self.store.vector_names(collection)

    def check_built(self, collection: str = IMAGES) -> None:
        """Raise NotBuiltError, with the command that fixes it, when the store lacks this model."""
        if not self.is_built(collection):
            have = ", ".join(sorted(self.store.vector_names(collection))) or "none"
            raise NotBuiltError(
                f"the store {self.store.location} has no {self.vector_name!r} vectors in {collection!r} "
                f"(models there: {have}); " + BUILD_HINT.format(spec=self.spec)
            )

    def counts(self) -> StoreCounts:
        """Points carrying this model's vector: images, and taxa per rank."""
        images = self.store.count(IMAGES, vector=self.vector_name) if self.is_built(IMAGES) else 0
        built = self.is_built(TAXA)
        taxa = {
            rank.label: self.store.count(TAXA, SearchFilter(rank=rank), vector=self.vector_name) if built else 0
            for rank in Rank
        }
        return StoreCounts(images, taxa)

    def clade_options(self, rank: Rank | str, within: str | None = None) -> list[TaxonOption]:
        """The taxa at `rank` inside the clade `within` (every one when None), most images first."""
        rank = Rank.parse(rank)
        if not self.is_built(TAXA):
            return []
        search_filter = SearchFilter(within=(within,) if within else (), rank=rank)
        options = []
        for hit in self.store.scroll(TAXA, search_filter):
            options.append(TaxonOption(key=hit.taxon, rank=rank, name=hit.name, common_name=hit.lineage.common_name,
                                       n_images=hit.n_images))
        options.sort(key=lambda o: (-o.n_images, o.name, o.key))
        return options

    def resolve_clade(self, value: str) -> str:
        """The taxon key `value` stands for: itself when the store holds that taxon, else the key of
        the one taxon named so (`Aves` -> `Animalia/Chordata/Aves`, `Pica hudsonia` -> its key).

        Raises:
            UnknownTaxonError: no such taxon (the closest keys are suggested), or a name that several
                taxa bear, such as genus Morus of the plants and of the gannets (their keys are listed).
        """
        value = value.strip()
        collection = TAXA if self.store.count(TAXA) else IMAGES
        if value and self.store.count(collection, SearchFilter(within=(value,))):
            return value
        names = self._taxon_names(collection)
        named = sorted(key for key, name in names.items() if name == value) \
            or sorted(key for key, name in names.items() if name.casefold() == value.casefold())
        if len(named) == 1:
            return named[0]
        if named:
            raise UnknownTaxonError(f"{value!r} names {len(named)} taxa: {', '.join(named)}; give one of these keys")
        by_name: dict[str, list[str]] = {}
        for key, name in names.items():
            by_name.setdefault(name, []).append(key)
        close = difflib.get_close_matches(value, [*names, *by_name], CLADE_SUGGESTIONS, CLADE_SIMILARITY)
        suggested = list(dict.fromkeys(key for match in close for key in (by_name.get(match) or [match])))
        hint = f"closest: {', '.join(suggested[:CLADE_SUGGESTIONS])}" if suggested else \
            "expected a taxon key such as Animalia/Chordata/Aves, or the name of one taxon"
        raise UnknownTaxonError(f"{value!r}: no such taxon in the store {self.store.location}; {hint}")

    def _taxon_names(self, collection: str) -> dict[str, str]:
        """Every taxon key of the store with its name (the last segment of the key for image lineages)."""
        if collection == TAXA:
            return {hit.taxon: hit.name or hit.taxon.rsplit("/", 1)[-1] for hit in self.store.scroll(TAXA) if hit.taxon}
        return {key: key.rsplit("/", 1)[-1] for key in self.store.facet_counts(IMAGES, LINEAGE)}

    def facets(self, field: str, filter: SearchFilter | None = None) -> dict[str, int]:
        """Images per value of an indexed payload field (`split`, `source`, a rank), most first."""
        if not self.is_built(IMAGES):
            return {}
        return self.store.facet_counts(IMAGES, field, filter)

    def sample_images(self, filter: SearchFilter | None = None, limit: int = SAMPLE_LIMIT) -> list[SearchHit]:
        """Up to `limit` collection images matching `filter` (in id order): what a user may pick from."""
        if not self.is_built(IMAGES):
            return []
        return self._hits(IMAGES, list(self.store.scroll(IMAGES, filter, limit=limit)))

    def image_vectors(self, filter: SearchFilter | None = None, limit: int = MAP_LIMIT) -> tuple[list[SearchHit],
                                                                                             np.ndarray]:
        """Up to `limit` collection images matching `filter` (in id order) and their vectors, one row each:
        what a map of the collection projects."""
        hits = self.sample_images(filter, limit)
        if not hits:
            return [], np.zeros((0, 0), dtype=np.float32)
        points = self.store.retrieve(IMAGES, [h.id for h in hits], self.vector_name)
        vectors = {p.id: p.vector for p in points if p.vector is not None}
        hits = [h for h in hits if h.id in vectors]
        return hits, np.stack([vectors[h.id] for h in hits]) if hits else np.zeros((0, 0), dtype=np.float32)

    def image(self, image_id: str) -> SearchHit | None:
        """One collection image as a hit (no score), or None when the store lacks it."""
        hits = self.store.retrieve(IMAGES, [image_id])
        return self._hits(IMAGES, hits)[0] if hits else None

    # --- searches -----------------------------------------------------------------------------------

    def search_images(
        self,
        vector: np.ndarray,
        k: int = DEFAULT_K,
        filter: SearchFilter | None = None,
        per_species: int | None = None,
        exclude_ids: Iterable[str] = (),
    ) -> list[SearchHit]:
        """The `k` images nearest to `vector`; with `per_species`, `k` species with up to that many images each.

        `exclude_ids` are dropped from the results (the query image itself), still returning `k`.
        """
        self.check_built(IMAGES)
        excluded = set(exclude_ids)
        if per_species is not None:
            hits = self.store.search(IMAGES, self.vector_name, vector, k + (1 if excluded else 0), filter,
                                     group_by=SPECIES, group_size=per_species)
            hits = [h for h in hits if h.id not in excluded]
            groups = list(dict.fromkeys(h.group for h in hits))[:k]
            hits = [h for h in hits if h.group in groups]
        else:
            hits = self.store.search(IMAGES, self.vector_name, vector, k + len(excluded), filter)
            hits = [h for h in hits if h.id not in excluded][:k]
        return self._hits(IMAGES, hits)

    def search_taxa(
        self, vector: np.ndarray, k: int = DEFAULT_TAXA_K, rank: Rank | str | None = None,
        filter: SearchFilter | None = None,
    ) -> list[SearchHit]:
        """The `k` taxa nearest to `vector`, of one `rank` when given (the rank's own vectors).

        Only the clade part of `filter` applies (taxa have no split or source).
        """
        self.check_built(TAXA)
        search_filter = _taxa_filter(filter, Rank.parse(rank) if rank is not None else None)
        return self._hits(TAXA, self.store.search(TAXA, self.vector_name, vector, k, search_filter))

    def text_to_images(self, text: str, k: int = DEFAULT_K, filter: SearchFilter | None = None,
                       per_species: int | None = None) -> list[SearchHit]:
        """The images nearest to a text embedded as typed (see `describe` for names read as taxa)."""
        self.check_built(IMAGES)
        return self.search_images(self.text_vector(text), k, filter, per_species)

    def read(self, text: str) -> QueryReading:
        """The taxa of the store that `text` names (`embed.query_taxon`)."""
        return read_query(self.store, text)

    def taxon_vector(self, taxon: NamedTaxon) -> np.ndarray:
        """The taxon's vector as stored (its text, template-averaged as the build does); encoded so when missing."""
        hits = self.store.retrieve(TAXA, [taxon.point_id], self.vector_name) if self.is_built(TAXA) else []
        if hits and hits[0].vector is not None:
            return hits[0].vector
        from taxonomy.taxon import Taxon

        return self.encoder.encode_taxa([Taxon(taxon.lineage, taxon.rank)])[0]

    def describe(self, text: str, k: int = DEFAULT_K, filter: SearchFilter | None = None,
                 per_species: int | None = None, taxon: str | None = None) -> TextSearch:
        """Images for a text: searched with the vector of the taxon it names, else with the text as typed.

        `taxon` picks one key of an ambiguous reading (genus Morus: the plant or the bird); by default
        the one with the most images. A text that names nothing is flagged `weak` when its best image
        scores below what real names reach in this store.
        """
        self.check_built(IMAGES)
        reading = self.read(text)
        chosen = next((t for t in reading.taxa if t.key == taxon), reading.taxa[0] if reading.taxa else None)
        if chosen is not None:
            hits = self.search_images(self.taxon_vector(chosen), k, filter, per_species)
            return TextSearch(reading, chosen, hits)
        hits = self.search_images(self.text_vector(text), k, filter, per_species)
        weak = bool(hits) and (hits[0].score or 0.0) < self.weak_score()
        return TextSearch(reading, None, hits, weak)

    def weak_score(self) -> float:
        """The best-image score under which a text is a weak match: a low percentile of what real species
        names of this store reach, typed as they are (sampled once; -1 when the store has no species)."""
        if self._weak_score is None:
            names = [hit.name for hit in self.store.scroll(TAXA, SearchFilter(rank=Rank.SPECIES), limit=WEAK_SAMPLE)]
            names = [name for name in names if name]
            if not names or not self.is_built(IMAGES):
                self._weak_score = -1.0
            else:
                vectors = self.encoder.encode_texts(names)
                best = [hits[0].score for hits in self.store.search_batch(IMAGES, self.vector_name, vectors, 1)
                        if hits and hits[0].score is not None]
                self._weak_score = float(np.percentile(best, WEAK_PERCENTILE)) if best else -1.0
        return self._weak_score

    def image_to_images(self, query: str | Image.Image, k: int = DEFAULT_K, filter: SearchFilter | None = None,
                        per_species: int | None = None) -> list[SearchHit]:
        """Look-alikes of an uploaded image, or of a collection image given by id (itself left out)."""
        self.check_built(IMAGES)
        exclude = (query,) if isinstance(query, str) else ()
        return self.search_images(self._query_vector(query), k, filter, per_species, exclude)

    def text_to_taxa(self, text: str, k: int = DEFAULT_TAXA_K, rank: Rank | str | None = None,
                     filter: SearchFilter | None = None) -> list[SearchHit]:
        self.check_built(TAXA)
        return self.search_taxa(self.text_vector(text), k, rank, filter)

    def candidate_sets(self) -> dict[str, int]:
        """The candidate sets of the store (`catalog`, reference sets) with their species, most first."""
        if not self.is_built(TAXA):
            return {}
        return self.store.facet_counts(TAXA, SOURCES, SearchFilter(rank=Rank.SPECIES))

    def check_sets(self, sets: Sequence[str]) -> tuple[str, ...]:
        """`sets` as a filter value: () for every taxon (`all`, or nothing chosen), else the names,
        each checked against the store's sets (the error lists them)."""
        sets = tuple(dict.fromkeys(s.strip() for s in sets if s and s.strip()))
        if not sets or sets == (ALL_SETS,):
            return ()
        if ALL_SETS in sets:
            raise ValueError(f"candidate sets {', '.join(sets)}: `{ALL_SETS}` already means every set; give it alone")
        have = self.candidate_sets()
        unknown = [s for s in sets if s not in have]
        if unknown:
            listed = ", ".join(f"{name} ({n} species)" for name, n in have.items()) or "none"
            raise NoCandidatesError(
                f"no candidate set {', '.join(map(repr, unknown))} in the store {self.store.location} "
                f"(sets there: {listed}); " + REFERENCE_HINT
            )
        return sets

    def candidates(
        self, method: str = METHOD_SUM, filter: SearchFilter | None = None, sets: Sequence[str] = (),
        subset: Subset | None = None,
    ) -> Candidates:
        """The candidate taxa with their vectors, loaded from the store once and kept in memory.

        Args:
            method: `sum` loads the species, `taxa` the taxa of every rank.
            filter: its clade part (within / exclude) restricts the candidates.
            sets: candidate sets (`catalog`, reference set names); () for every taxon of the store.
            subset: pybioclip's --subset (species restricted by a rank's names).

        Raises:
            NoCandidatesError: nothing to compare with, with how to add a reference set.
        """
        validate_method(method)
        self.check_built(TAXA)
        sets = self.check_sets(sets)
        base = _taxa_filter(filter, Rank.SPECIES if method == METHOD_SUM else None) or SearchFilter()
        search_filter = SearchFilter(within=base.within, exclude=base.exclude, rank=base.rank, sources=sets)
        # The count is the cache's stamp: a build or an `embed taxa` run since changes it.
        stamp = self.store.count(TAXA, search_filter, vector=self.vector_name)
        cache_key = (method, search_filter, subset, stamp)
        with self._lock:
            cached = self._candidates.get(cache_key)
        if cached is not None:
            return cached
        keys, commons, vectors = self._load_candidates(search_filter)
        if subset is not None:
            subset.check_known(keys)
            kept = {key for key in keys if subset.keeps(key)}
            if method != METHOD_SUM:
                kept |= {a for key in kept for a in parse_key(key).keys()}
            chosen = [i for i, key in enumerate(keys) if key in kept]
            keys, commons, vectors = [keys[i] for i in chosen], [commons[i] for i in chosen], vectors[chosen]
        if not keys:
            raise NoCandidatesError(self._no_candidates(method, filter, sets, subset))
        candidates = Candidates.build(method, keys, vectors, commons)
        logger.info("%d candidate taxa loaded for identification (%s)", len(candidates.rows), method)
        with self._lock:
            if len(self._candidates) >= CANDIDATE_CACHE_ENTRIES:
                self._candidates.pop(next(iter(self._candidates)))
            self._candidates[cache_key] = candidates
        return candidates

    def _load_candidates(self, search_filter: SearchFilter) -> tuple[list[str], list[str], np.ndarray]:
        ids = [hit.id for hit in self.store.scroll(TAXA, search_filter)]
        keys: list[str] = []
        commons: list[str] = []
        vectors: list[np.ndarray] = []
        for start in range(0, len(ids), RETRIEVE_CHUNK):
            for hit in self.store.retrieve(TAXA, ids[start:start + RETRIEVE_CHUNK], self.vector_name):
                if hit.vector is None or not hit.taxon:
                    continue
                keys.append(hit.taxon)
                commons.append(hit.common_name)
                vectors.append(hit.vector)
        matrix = np.stack(vectors).astype(np.float32, copy=False) if vectors else np.zeros((0, 1), np.float32)
        return keys, commons, matrix

    def _no_candidates(self, method: str, filter: SearchFilter | None, sets: Sequence[str],
                       subset: Subset | None) -> str:
        have = self.candidate_sets()
        listed = ", ".join(f"{name} ({n} species)" for name, n in have.items()) or "none"
        limits = [f"sets {', '.join(sets)}" if sets else "", f"clade filter {filter.within or filter.exclude}"
                  if filter is not None and (filter.within or filter.exclude) else "",
                  f"--subset {subset.source}" if subset is not None else ""]
        where = "; ".join(x for x in limits if x) or "the whole store"
        what = "species" if method == METHOD_SUM else "taxa"
        return (f"no candidate {what} to identify with in the store {self.store.location} ({where}; sets there: "
                f"{listed}); " + REFERENCE_HINT)

    def identify(
        self,
        query: str | Image.Image | np.ndarray,
        k: int = DEFAULT_TAXA_K,
        method: str = METHOD_SUM,
        filter: SearchFilter | None = None,
        sets: Sequence[str] = (),
        subset: Subset | None = None,
    ) -> Identification:
        """Nearest taxa at every rank, with probabilities, consistent down the tree (see `embed.predict`).

        Args:
            query: an image, a collection image id, or a vector (a text's, for text -> taxa).
            k: taxa listed per rank.
            method: `sum` (species probabilities summed per ancestor) or `taxa` (each rank's own
                vectors, conditioned on the parent).
            filter: limits the candidate taxa to a clade, e.g. `SearchFilter(within=("Animalia",))`
                (its split and source, which taxa do not have, are ignored).
            sets: the candidate sets (`catalog`, reference sets); () for every taxon of the store.
            subset: pybioclip's --subset.
        """
        validate_method(method)
        self.check_built(TAXA)
        candidates = self.candidates(method, filter, sets, subset)
        vector = self._query_vector(query)
        return identify_vectors(candidates, vector[None, :], self.logit_scale, k)[0]

    def identify_vectors(
        self, vectors: np.ndarray, k: int = DEFAULT_TAXA_K, method: str = METHOD_SUM,
        filter: SearchFilter | None = None, sets: Sequence[str] = (), subset: Subset | None = None,
    ) -> list[Identification]:
        """`identify` for each row of `vectors` (image vectors), one matrix product for them all."""
        candidates = self.candidates(method, filter, sets, subset)
        return identify_vectors(candidates, vectors, self.logit_scale, k)

    def label_vectors(self, labels: Sequence[str]) -> np.ndarray:
        """Zero-shot vectors of custom labels, each in SPEC §4's templates averaged (pybioclip's --cls)."""
        return self.encoder.encode_labels(labels)

    # --- hits ---------------------------------------------------------------------------------------

    def _roots_of(self, image_ids: Sequence[str]) -> dict[str, str]:
        """The collection root of each image (empty when the catalog lacks it), the unknown ones in one query."""
        if self.catalog is None:
            return {}
        missing = [i for i in image_ids if i not in self._roots]
        if missing:
            if len(self._roots) + len(missing) > ROOT_CACHE_LIMIT:
                self._roots.clear()
            found = self.catalog.roots(missing)
            self._roots.update({i: found.get(i, "") for i in missing})
        return {i: self._roots[i] for i in image_ids}

    def _hits(self, collection: str, hits: Sequence[Hit]) -> list[SearchHit]:
        out = []
        is_image = collection == IMAGES
        roots = self._roots_of([hit.id for hit in hits]) if is_image else {}
        for hit in hits:
            out.append(SearchHit(
                id=hit.id, score=hit.score, collection=collection, taxon=hit.taxon, rank=hit.rank,
                lineage=hit.lineage, path=hit.path if is_image else "", root=roots.get(hit.id, ""),
                split=hit.split, source=hit.source, license=hit.license if is_image else "", n_images=hit.n_images,
                group=hit.group or "",
            ))
        return out


def open_catalog_if_exists(db: str | None = None) -> Catalog | None:
    """The catalog at `db` (flag, `$TOL_DB`, default), or None when its SQLite file does not exist:
    searching must not create an empty catalog. Hits then carry no `root`."""
    from sqlalchemy.engine import make_url

    from index.catalog import Catalog
    from index.config import resolve_db_url

    url = resolve_db_url(db)
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:"):
        if not Path(database).expanduser().exists():
            logger.debug("no catalog at %s: results carry paths relative to their collection only", url)
            return None
    return Catalog(url)


def _taxa_filter(search_filter: SearchFilter | None, rank: Rank | None) -> SearchFilter | None:
    """The clade part of `search_filter` at `rank`: taxa carry no split or source, so those are dropped."""
    base = search_filter or SearchFilter()
    taxa = SearchFilter(within=base.within, exclude=base.exclude, rank=rank, sources=base.sources)
    return None if taxa.is_empty else taxa
