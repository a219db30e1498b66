"""The build: ingest (optional), then embed every image without a vector and every taxon (SPEC §1, §5).

Crash safety rests on three facts. Point ids are UUIDv5 of the path or taxon key, so a rewrite
replaces and never duplicates. Each batch is written to the store before it is marked in the
catalog, so the catalog never claims a vector the store lacks. And before encoding, the images the
catalog still lists are looked up in the store (`ids_with_vector`): those a killed run wrote but
did not mark are marked without being encoded again. A `kill -9` thus costs at most the batches in
flight, and a rerun embeds nothing twice.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from embed.constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_TEXT_BATCH_SIZE,
    MAX_DEFAULT_WORKERS,
    PREFETCH_FACTOR,
    TAXA_PER_CHUNK,
)
from embed.device import check_device
from embed.models import LoadedModel, load_model, resolve_spec
from embed.parallel import World, process_group, shared_store, world_from_env
from index.constants import RUN_DONE, RUN_FAILED, RUN_INTERRUPTED
from index.collection.entries import Problem
from index.records import ImageRecord, IngestSummary
from taxonomy import DEFAULT_TEST_TEXT_TYPE, validate_text_type
from taxonomy.taxon import Taxon
from toolkit.cli import Progress, chunks
from toolkit.cli import report as report_progress  # progress(fraction, Step): `images: 128/480 img`
from toolkit.settings import StoreOptions

if TYPE_CHECKING:
    import numpy as np

    from embed.encoder import Encoder
    from index.catalog import Catalog
    from index.store import VectorStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions(StoreOptions):
    """What `python -m embed build` was asked to do; `db`/`store` None = environment, then default."""

    catalog: str | None = None  # a CSV to ingest first (needs `images`)
    images: str | None = None  # an images root to ingest first
    shards: str | None = None  # webdataset shards to ingest first, `dir/shard-{000000..000159}.tar` (SPEC §2)
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int | None = None  # None: `default_workers(device)`
    device: str = DEFAULT_DEVICE
    text_type: str = DEFAULT_TEST_TEXT_TYPE
    text_batch_size: int = DEFAULT_TEXT_BATCH_SIZE

    def __post_init__(self) -> None:
        validate_text_type(self.text_type)
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be 0 or more, got {self.workers}")
        if self.catalog and not self.images:
            raise ValueError("a catalog needs its images root: its file paths are relative to it")
        if self.shards and self.images:
            raise ValueError("--shards and --images are two collections: build one, then the other "
                             "(the catalog keeps both)")


@dataclass(frozen=True)
class BuildSummary:
    """What one build did."""

    run_id: int
    model: str  # the spec
    vector_name: str
    store: str
    images_total: int  # images the catalog listed as not yet embedded by this model
    images_embedded: int  # encoded by this run
    images_skipped: int  # found in the store already (a killed run wrote them): marked, not encoded
    images_failed: int
    failures: tuple[Problem, ...]
    taxa_embedded: int
    taxa_total: int
    seconds: float  # the image stage: from starting the decoding workers to the last batch marked
    ingested: IngestSummary | None = None  # when a collection was ingested first
    images_removed: int = 0  # points of images that left the catalog
    images_relabelled: int = 0  # payloads rewritten from the catalog, vectors kept
    taxa_relabelled: int = 0
    taxa_removed: int = 0  # taxa that left the catalog (released ones keep their point)

    @property
    def rate(self) -> float:
        """Images encoded per second."""
        return self.images_embedded / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Counts:
    done: int = 0
    failed: int = 0
    failures: list[Problem] = field(default_factory=list)
    seconds: float = 0.0


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(device: str) -> int:
    """Decoding workers for `device` when none are asked for (see embed.constants)."""
    cores = cpu_cores()
    workers = max(1, cores - 2) if device.startswith("cuda") else max(1, cores // 2)
    return min(workers, MAX_DEFAULT_WORKERS)


def set_cpu_threads(workers: int) -> int:
    """Threads for the model on CPU, leaving one core to each decoding worker (at least one thread).

    Intra-op threads that compete with the DataLoader processes for the same cores make both
    slower (oversubscription), so the model gets the cores the workers leave over.
    """
    import torch

    threads = max(1, cpu_cores() - workers)
    torch.set_num_threads(threads)
    return threads


def embed_images(
    records: Sequence[ImageRecord],
    encoder: Encoder,
    store: VectorStore | None,
    catalog: Catalog,
    run_id: int,
    options: BuildOptions,
    progress: Progress | None = None,
    world: World = World(),
) -> _Counts:
    """Encode `records` batch by batch; a writer thread writes them to the store, then marks them in the
    catalog, then counts them (embed.writer), while the next batches are decoded and encoded.

    Under torchrun (`world`), this rank encodes its share of `records`; with a server store it writes
    them itself, else it hands them to rank 0's writer (`store` None on the other ranks); see embed.parallel.
    The counts are of this process's writer (rank 0: of every rank).
    """
    from embed.writer import BuildWriter, WriteCounts

    counts = _Counts()
    if not records:
        return counts
    gathered = world.parallel and not shared_store(store.location if store is not None else options.store or "")
    shard_of = _shard_of(options)
    share = world.share(records, shard_of)
    if shard_of is not None and world.parallel:
        shards = sorted({i for i in map(shard_of, (r.path for r in share)) if i is not None})
        logger.info("rank %d of %d: %d images from shards %s of --shards", world.rank, world.size, len(share),
                    ",".join(map(str, shards)) or "none")
    steps = world.steps(records, options.batch_size, shard_of) if gathered else None
    total = len(records) if gathered or not world.parallel else len(share)

    def written(so_far: WriteCounts) -> None:
        report_progress(progress, "images", so_far.done + so_far.failed, total, "img")

    batches = _encoded_batches(share, encoder, options)
    if gathered and not world.main:
        for _ in range(steps or 0):  # every rank takes the same steps; rank 0 writes
            world.gather(next(batches, ([], None, [])))
        return counts
    assert store is not None
    with BuildWriter(store, catalog, encoder.vector_name, run_id, on_written=written) as writer:
        if gathered:
            for _ in range(steps or 0):
                for good, vectors, failures in world.gather(next(batches, ([], None, []))) or []:
                    if good or failures:
                        writer.put(good, vectors, failures)
        else:
            for good, vectors, failures in batches:
                writer.put(good, vectors, failures)
    done = writer.counts
    counts.done, counts.failed, counts.failures, counts.seconds = done.done, done.failed, done.failures, done.seconds
    return counts


def _shard_of(options: BuildOptions) -> Callable[[str], int | None] | None:
    """Under torchrun with --shards: the shard index of an image's path, so that each rank reads its own shards."""
    from index.collection.shards import shard_order

    return shard_order(options.shards) if options.shards else None


def _encoded_batches(records: Sequence[ImageRecord], encoder: Encoder, options: BuildOptions
                     ) -> Iterator[tuple[list[ImageRecord], np.ndarray | None, list[Problem]]]:
    """(records, their vectors, failures) of each decoded batch of `records`."""
    from embed.data import image_loader
    from embed.gpu_decode import gpu_image_batches, use_gpu_decoding

    if not records:
        return
    cuda = encoder.device.type == "cuda"
    workers = options.workers if options.workers is not None else default_workers(options.device)
    if use_gpu_decoding(encoder.device.type, encoder.loaded.preprocess_cfg):  # JPEGs decoded on the GPU
        loader = gpu_image_batches(
            records, encoder.loaded.preprocess, encoder.loaded.preprocess_cfg, encoder.device, options.batch_size,
            workers, prefetch_factor=PREFETCH_FACTOR,
        )
    else:
        loader = image_loader(
            records, encoder.loaded.preprocess, options.batch_size, workers,
            pin_memory=cuda, prefetch_factor=PREFETCH_FACTOR,
        )
    for batch in loader:
        good = [records[i] for i in batch.indices]
        failures = [
            Problem(origin=records[i].root, row=None, path=records[i].path, reason=reason)
            for i, reason in batch.failures
        ]
        yield good, encoder.encode_images(batch.pixels) if good else None, failures


def _follow(options: BuildOptions, world: World, loaded: LoadedModel | None, progress: Progress | None
            ) -> BuildSummary:
    """A rank other than 0: wait for rank 0 to prepare the run, encode this rank's share, hand it on or write it."""
    from embed.encoder import Encoder
    from index.catalog import Catalog
    from index.store import canonical_location, open_store, resolve_store_location

    if loaded is None:
        if not options.device.startswith("cuda"):
            set_cpu_threads(options.workers or 0)
        loaded = load_model(options.model, device=options.device)
    location = canonical_location(resolve_store_location(options.store))
    direct = shared_store(location)
    with Catalog(options.db) as catalog:
        run_id, location = world.broadcast(None)  # after rank 0's sync: the catalog lists what is left
        records = catalog.images_to_embed(loaded.vector_name, location)
        store = open_store(location, options.api_key) if direct else None
        try:
            counts = embed_images(records, Encoder(loaded, text_batch_size=options.text_batch_size), store, catalog,
                                  run_id, replace(options, store=location), progress, world)
        finally:
            if store is not None:
                store.close()
    if direct:
        world.gather(counts)  # rank 0 adds this rank's counts to the run's
    return BuildSummary(
        run_id=run_id, model=options.model, vector_name=loaded.vector_name, store=location,
        images_total=len(world.share(records, _shard_of(options))), images_embedded=counts.done, images_skipped=0,
        images_failed=counts.failed, failures=tuple(counts.failures), taxa_embedded=0, taxa_total=0,
        seconds=counts.seconds,
    )


def embed_taxa(
    taxa: Sequence[Taxon], encoder: Encoder, store: VectorStore, text_type: str, progress: Progress | None = None,
    sources: Callable[[Sequence[Taxon]], Sequence[Sequence[str]]] | None = None,
) -> int:
    """Template-averaged text vectors of `taxa`, written chunk by chunk; `sources(chunk)` their `sources`."""
    done = 0
    for chunk in chunks(list(taxa), TAXA_PER_CHUNK):
        vectors = encoder.encode_taxa(chunk, text_type)
        texts = [t.text(text_type) for t in chunk]
        store.upsert_taxa(encoder.vector_name, chunk, texts, vectors, sources(chunk) if sources else None)
        done += len(chunk)
        report_progress(progress, "taxa", done, len(taxa), "taxa")
    return done


def run_build(
    options: BuildOptions,
    progress: Progress | None = None,
    loaded: LoadedModel | None = None,
    store: VectorStore | None = None,
    catalog: Catalog | None = None,
) -> BuildSummary:
    """Ingest (when asked), then embed the images and taxa that have no vector for this model.

    Args:
        options: what to build, where.
        progress: called with (fraction, message) per batch; the message is a `toolkit.cli.Step`.
        loaded: an already loaded model for `options.model` (tests, notebooks); loaded here otherwise.
        store, catalog: an open `index.store.VectorStore` / `index.catalog.Catalog` to use instead of
            opening `options.store` / `options.db` (a `":memory:"` store lives only as long as its object).
            What is passed in is left open; what is opened here is closed.

    Raises:
        ValueError: an unknown model spec, a bad device. FileNotFoundError: missing collection or folder.
        index.store.DimensionMismatchError: the store holds this model's vectors at another dimension
            (raised before anything is written). index.store.StoreUnavailableError: the server is unreachable.
    """
    if loaded is None:
        resolve_spec(options.model)  # a bad spec fails before any catalog or store is touched
        check_device(options.device)
    if options.shards:
        from index.collection.shards import expand_shards

        expand_shards(options.shards)  # a missing shard or a bad pattern: before anything is opened
    if options.workers is None:
        options = replace(options, workers=default_workers(options.device))
    world = world_from_env()  # under torchrun: one of several processes (embed.parallel)
    if world.parallel:
        options = replace(options, device=world.device(options.device))
        with process_group(world, options.device):
            if not world.main:
                return _follow(options, world, loaded, progress)
            return _run_build(options, progress, loaded, store, catalog, world)
    return _run_build(options, progress, loaded, store, catalog, world)


def _run_build(options: BuildOptions, progress: Progress | None, loaded: LoadedModel | None,
               store: VectorStore | None, catalog: Catalog | None, world: World) -> BuildSummary:
    from index.collection.readers import read_collection
    from index.collection.shards import read_shards

    with opened(options.db, options.store, options.api_key, store, catalog) as (store, catalog):
        ingested = None
        if options.images or options.shards:
            report_progress(progress, "ingest", 0, 1, "collection")
            if options.shards:
                collection = read_shards(options.shards)
            else:
                collection = read_collection(Path(options.catalog) if options.catalog else None,
                                             Path(options.images or ""))
            ingested = catalog.ingest(collection)
            report_progress(progress, "ingest", 1, 1, "collection")
        if loaded is None:
            if not options.device.startswith("cuda"):
                set_cpu_threads(options.workers or 0)
            loaded = load_model(options.model, device=options.device)
        return _build(options, loaded, store, catalog, ingested, progress, world)


@contextmanager
def opened(db: str | None, location: str | None, api_key: str | None, store: VectorStore | None = None,
           catalog: Catalog | None = None) -> Iterator[tuple[VectorStore, Catalog]]:
    """The store and catalog to write: those passed in (left open), else opened here (for writing) and closed."""
    from index.catalog import Catalog
    from index.store import open_store

    own_catalog = catalog is None
    catalog = Catalog(db) if own_catalog else catalog
    try:
        own_store = store is None
        store = open_store(location, api_key) if own_store else store
        try:
            yield store, catalog
        finally:
            if own_store:
                store.close()
    finally:
        if own_catalog:
            catalog.close()


def register_vector(catalog: Catalog, store: VectorStore, vector: str, spec: str, dim: int) -> None:
    """Before anything is written: tie `vector` to `spec`'s weights (VectorNameConflictError for other
    weights under a known name) and declare it in the store (DimensionMismatchError for another dim)."""
    from embed.models import model_identity

    catalog.register_model(vector, spec, model_identity(spec).fingerprint)
    store.ensure_vector(vector, dim)


def already_written(store: VectorStore, vector: str, candidates: Sequence[ImageRecord]) -> list[ImageRecord]:
    """The candidates whose point already carries `vector` for the file's current content.

    A point whose payload `sha256` differs holds the vector of an older version of the file
    (it changed and was ingested again), so it is encoded anew.
    """
    from index.schema import IMAGES

    if not candidates:
        return []
    present = store.ids_with_vector(IMAGES, vector, [r.id for r in candidates])
    if not present:
        return []
    sha = {hit.id: hit.sha256 for hit in store.retrieve(IMAGES, sorted(present))}
    return [r for r in candidates if r.id in present and sha.get(r.id) == r.sha256]


def _build(options: BuildOptions, loaded: LoadedModel, store: VectorStore, catalog: Catalog,
           ingested: IngestSummary | None, progress: Progress | None, world: World = World()) -> BuildSummary:
    from embed.encoder import Encoder
    from embed.sync import apply_taxa_removals, plan_taxa, sync_images

    encoder = Encoder(loaded, text_batch_size=options.text_batch_size)
    vector = loaded.vector_name
    register_vector(catalog, store, vector, loaded.spec, loaded.dim)
    location = store.location
    run_id = catalog.start_run(vector, options.model, location)  # BuildInProgressError: nothing written
    try:
        report_progress(progress, "sync", 0, 1, "store")
        synced = sync_images(store, catalog, vector)
        report_progress(progress, "sync", 1, 1, "store")
        candidates = catalog.images_to_embed(vector, location)
        # A stale vector of this model may sit on a point whose payload another model has updated.
        stale = catalog.stale_embeddings(vector, location)
        written = already_written(store, vector, [r for r in candidates if r.id not in stale])
        if written:
            # Written by a run that was killed before it could mark them: mark, don't encode.
            catalog.mark_embedded(vector, location, written)
            catalog.update_run(run_id, skipped=len(written))
            logger.info("%d images already in the store: marked, not encoded again", len(written))
        done_ids = {r.id for r in written}
        todo = [r for r in candidates if r.id not in done_ids]
        world.broadcast((run_id, location))  # the other ranks now read `todo` from the catalog (embed.parallel)
        counts = embed_images(todo, encoder, store, catalog, run_id, options, progress, world)
        if world.parallel and shared_store(location):
            for other in (world.gather(None) or [])[1:]:
                counts.done, counts.failed = counts.done + other.done, counts.failed + other.failed
                counts.failures.extend(other.failures)
        taxa = catalog.taxa()
        plan = plan_taxa(store, taxa, vector, options.text_type)
        apply_taxa_removals(store, plan)
        if plan.relabel:
            texts = [t.text(options.text_type) for t in plan.relabel]
            store.set_taxon_payloads(plan.relabel, texts, plan.sources_of(plan.relabel))
        taxa_done = embed_taxa(plan.encode, encoder, store, options.text_type, progress, plan.sources_of)
        report_progress(progress, "optimize", 0, 1, "store")
        store.optimize()
        report_progress(progress, "optimize", 1, 1, "store")
        catalog.finish_run(run_id, RUN_DONE)
    except KeyboardInterrupt:
        catalog.finish_run(run_id, RUN_INTERRUPTED)
        raise
    except BaseException:
        catalog.finish_run(run_id, RUN_FAILED)
        raise
    return BuildSummary(
        run_id=run_id, model=options.model, vector_name=vector, store=location,
        images_total=len(candidates), images_embedded=counts.done, images_skipped=len(written),
        images_failed=counts.failed, failures=tuple(counts.failures), taxa_embedded=taxa_done,
        taxa_total=len(taxa), seconds=counts.seconds, ingested=ingested,
        images_removed=synced.removed, images_relabelled=synced.relabelled,
        taxa_relabelled=len(plan.relabel), taxa_removed=len(plan.remove),
    )
