"""The embedded store: qdrant-edge-py, the Qdrant engine in-process, one shard folder per collection.

    <root>/images/   an EdgeShard: edge_config.json, wal/, segments/
    <root>/taxa/     the same; each loads on its own with `qdrant_edge.EdgeShard.load(path)`

What the edge engine (qdrant-edge-py 0.9) offers, and how this module uses it:
- A shard needs at least one vector to be created, so a collection's shard is created by the
  first `ensure_vector`, with that model's vector declared; the keyword payload indexes are
  created right after, before any point. Further models are added to the existing shard with
  `UpdateOperation.create_dense_vector`, which the engine persists in `edge_config.json`.
- `EdgeShard` has no call that returns its vector configuration (`info()` gives segment and
  point counts, indexed vectors and the payload index schema), so the vector names and
  dimensions are read from `edge_config.json`, the file the engine documents as its
  persisted configuration, and kept in memory as vectors are added.
- Upserting a point replaces all its vectors, so points that exist get `update_vectors` (which
  keeps the other models' vectors) and, where it changed, `overwrite_payload`.
- `facet` needs a keyword index on the field (all facetable fields have one). There is no
  grouped query: `search(group_by=...)` fetches, groups like Qdrant, then asks again without the
  groups found so far until it has `k`, and fills groups that came up short in one batched query.
- Only one `EdgeShard` may hold a folder (the WAL is locked). Above that, one writer at a time
  holds the store folder's lock file (`fcntl.flock` on `<root>/.lock`, with its pid), taken before
  any shard is created or loaded and released on close or when the process dies: a second writer
  gets StoreLockedError naming the folder and the holder's pid, and two builds can never race to
  create a shard. A store opened before its folder exists takes the lock when its first shard is
  created.
- Readers (`read_only=True`: the UI, search, predict, status) take no lock and never open the
  writer's folder: the writer publishes generations of its shards (after optimize, on close, and
  while readers are open after a store call, at most every `PUBLISH_INTERVAL_S` and at most
  `PUBLISH_SHARE` of its time), and each reader follows the current one in a replica of its own,
  refreshed segment by segment (the engine's snapshot manifests) when a call finds CURRENT changed
  (see `index.edge_replica`). A reader that finds the last generation left unfinished by a
  killed writer, and no writer running, publishes the shards as they are.
- A killed build may leave a new shard with some of its keyword indexes: every `ensure_vector`
  (which every build calls before writing) adds those missing; `facet_counts` on a field without
  its index raises MissingIndexError rather than the engine's error.
- The engine writes through memory-mapped sparse files, and a page written when the disk is full
  kills the process with SIGBUS. So before a shard is created and before each write, the free
  space must cover what the shards' sparse files may still claim plus a margin
  (`index.constants.FREE_SPACE_MARGIN_BYTES`), else StoreFullError; a write the disk refuses all
  the same ("No space left on device") is StoreFullError too. What was written before is kept.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from index.constants import (
    CATCH_UP_WAIT_S, FREE_SPACE_MARGIN_BYTES, NEW_SHARD_BYTES, PUBLISH_INTERVAL_S, PUBLISH_SHARE, STORE_LOCK_FILE,
)
from index.edge_replica import (
    SEGMENTS_DIR, Generation, allocated_bytes, copy_tree, current_generation, current_stamp, live_readers,
    new_reader_folder, publish, reading, vectors_of,
)
from index.convert import check_point_id
from index.filters import FilterSpec, SearchFilter, filter_spec, group_hits, spec_matches
from index.search_params import SearchPlan, plan_search, planned_search
from index.schema import (
    COLLECTIONS, FREE_MARGIN_ENV, HNSW_LINK_FIELDS, KEYWORD_INDEX_FIELDS, LINEAGE, check_collection, check_keyword_field,
)
from index.store import (
    FACET_LIMIT, UPSERT_CHUNK, EdgeSettings, Hit, MissingIndexError, StoreError, StoreFullError, StoreLockedError,
    VectorStore, _check_positive, _paged,
)

logger = logging.getLogger(__name__)

CONFIG_FILE = "edge_config.json"  # written by the engine on create, load and create_dense_vector
SCROLL_PAGE = 512
GROUP_FETCH_START = 64  # first fetch of a grouped search: at least this, or 4 * k * group_size
GROUP_FETCH_MAX = 65_536  # grouping by the array field `lineage` widens its fetch up to this
_DEFAULTS = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10_000}
# Quantized shards: candidates per hit rescored with the float32 vectors. At 100k 512-d clustered
# points, int8 with 2.0 gave recall@10 0.92 unfiltered, 4.0 gave 1.000 (bench/query_latency.py).
DEFAULT_OVERSAMPLING = 4.0

_open_roots: set[Path] = set()
_open_lock = threading.Lock()
_lock_fds: set[int] = set()  # the store lock files this process holds


def _drop_inherited_locks() -> None:
    # A forked child (a DataLoader worker) shares the parent's lock; closing its copies lets the
    # lock go the moment the parent dies, even while the child is still exiting.
    for fd in _lock_fds:
        os.close(fd)
    _lock_fds.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


def _config_on_disk(shard_dir: Path) -> dict[str, Any]:
    return json.loads((shard_dir / CONFIG_FILE).read_text())


def _vectors_of(config: dict[str, Any]) -> dict[str, int]:
    return {name: int(params["size"]) for name, params in config.get("vectors", {}).items()}


_PUBLISHING = "publish"  # the lock note of a reader publishing what a killed writer left
_TRASH = ".trash"  # in a reader's folder: replaced segments and replicas, removed after the swap


def _lock_note(fd: int) -> str:
    return os.pread(fd, 64, 0).decode(errors="replace").strip()


def _lock_holder(fd: int) -> str:
    """What the lock file says about its holder: ` (pid N)`, or nothing when it says nothing yet."""
    pid = _lock_note(fd).split(" ")[0]
    return f" (pid {pid})" if pid.isdigit() else ""


class _SharedLock:
    """Many holders of `shared()` at once, or one holder of `exclusive()`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._readers)
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _GuardedShard:
    """A reader's replica shard: its calls share the lock that a refresh takes alone, since
    `update_from_snapshot` borrows the shard mutably and the UI queries from several threads."""

    def __init__(self, shard: qe.EdgeShard, guard: _SharedLock) -> None:
        self.raw = shard
        self._guard = guard

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.raw, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._guard.shared():
                return method(*args, **kwargs)

        return call


def _free_margin() -> int:
    """Bytes a write leaves free beyond the shards' needs: $TOL_STORE_FREE_MARGIN_MB, else the default."""
    raw = os.environ.get(FREE_MARGIN_ENV, "").strip()
    if not raw:
        return FREE_SPACE_MARGIN_BYTES
    if not raw.isdigit():
        raise ValueError(f"${FREE_MARGIN_ENV} must be a whole number of megabytes, got {raw!r}")
    return int(raw) * 2**20


def _unclaimed_bytes(folder: Path) -> int:
    """Bytes the sparse files under `folder` may still claim from the disk: size minus blocks allocated."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                st = os.stat(os.path.join(parent, name))
            except FileNotFoundError:  # the engine removed it meanwhile (a merged segment)
                continue
            total += max(0, st.st_size - st.st_blocks * 512)
    return total


def _disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    return "No space left on device" in str(error) or f"os error {errno.ENOSPC})" in str(error)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


def _edge_filter(spec: FilterSpec | None) -> qe.Filter | None:
    if spec is None:
        return None

    def condition(field: str, values: tuple[str, ...]) -> qe.FieldCondition:
        match = qe.MatchValue(values[0]) if len(values) == 1 else qe.MatchAny(list(values))
        return qe.FieldCondition(field, match=match)

    must: list[Any] = [condition(f, v) for f, v in spec.must]
    if spec.ids is not None:
        must.append(qe.HasIdCondition({uuid.UUID(i) for i in spec.ids}))
    if spec.has_vector is not None:
        must.append(qe.HasVectorCondition(spec.has_vector))
    must_not: list[Any] = [condition(f, v) for f, v in spec.must_not]
    if spec.has_field is not None:
        must_not.append(qe.IsEmptyCondition(spec.has_field))
    return qe.Filter(must=must or None, must_not=must_not or None)


def _edge_params(plan: SearchPlan, settings: EdgeSettings, quantized: bool) -> qe.SearchParams:
    acorn = qe.AcornSearchParams(enable=True, max_selectivity=1.0) if plan.acorn else None  # the plan chose it
    quantization = None
    if quantized and not plan.exact:  # (given to a plain shard, they cost ~1 ms of 4 at 1M points)
        oversampling = settings.oversampling or DEFAULT_OVERSAMPLING
        quantization = qe.QuantizationSearchParams(rescore=True, oversampling=oversampling)
    return qe.SearchParams(hnsw_ef=plan.hnsw_ef, exact=plan.exact, acorn=acorn, quantization=quantization)


def _hit(point: Any, score: float | None, vector_name: str | None = None, group: str | None = None) -> Hit:
    vector = None
    if vector_name is not None and point.vector and vector_name in point.vector:
        vector = np.asarray(point.vector[vector_name], dtype=np.float32)
    return Hit(str(point.id), score, dict(point.payload or {}), vector, group)


class EdgeStore(VectorStore):
    """Both collections as qdrant-edge shards under `root` (SPEC §6): one writer, or a reader.

    A reader (`read_only=True`) answers from its replica of the writer's last published
    generation and refuses writes with StoreError; see the module docstring.
    """

    def __init__(
        self, root: str | Path, settings: EdgeSettings | None = None, *, read_only: bool = False, lock_note: str = ""
    ) -> None:
        self.root = Path(root).resolve()
        self.location = str(self.root)
        self.settings = settings or EdgeSettings()
        self.read_only = read_only
        self._lock_note = lock_note  # written in the lock file after the pid
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"store location {self.root} is a file; expected a folder (created when missing)")
        if not read_only:
            with _open_lock:
                if self.root in _open_roots:
                    raise StoreLockedError(
                        f"the embedded store {self.root} is already open in this process for writing; close it "
                        "first (only one EdgeShard may hold a folder), or open it read-only"
                    )
                _open_roots.add(self.root)
        self._shards: dict[str, Any] = {}  # qe.EdgeShard; a reader's are _GuardedShard
        self._dims: dict[str, dict[str, int]] = {c: {} for c in COLLECTIONS}
        self._indexed: set[str] = set()  # collections whose keyword indexes were checked by this object
        # Whether a shard holds quantized vectors (searches then rescore): the settings, or a loaded config.
        self._quantized = self.settings.quantization is not None
        self._lock_fd: int | None = None
        self._closed = False
        self._next_publish = float("-inf")  # when the writer may publish again (time.monotonic)
        self._dirty = False  # the writer wrote since its last publish
        self._guard = _SharedLock()
        self._replicas: Path | None = None  # a reader's folder
        self._replica_dirs: dict[str, Path] = {}  # the folder each replica shard is loaded from
        self._refreshing = threading.Lock()
        self._replicas_fd: int | None = None
        self._stamp: tuple[int, int] | None = None  # CURRENT as the reader last followed it
        self.generation: Generation | None = None  # the generation a reader answers from
        try:
            if read_only:
                self._catch_up()
                self._register()
                self._refresh()
            elif self.root.is_dir():
                self._lock(self._lock_note)
                self._load_existing()
        except BaseException:
            self.close()
            raise

    # --- the writer lock ----------------------------------------------------------------------

    def _lock(self, note: str = "") -> None:
        """Take the store folder's lock (creating the folder), or raise StoreLockedError.

        A reader publishing what a killed writer left holds it briefly: that one is waited for.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / STORE_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + CATCH_UP_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not note and _lock_note(fd).endswith(_PUBLISHING) and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                holder = _lock_holder(fd)
                os.close(fd)
                raise StoreLockedError(
                    f"the embedded store {self.root} is in use by another process{holder} (a build): one writer "
                    "at a time may open it; wait for that one to end, then run this again (the UI and searches "
                    "read beside it)"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {note}".strip().encode() + b"\n", 0)
        self._lock_fd = fd
        _lock_fds.add(fd)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            _lock_fds.discard(self._lock_fd)
            os.close(self._lock_fd)  # closing the only descriptor releases the flock
            self._lock_fd = None

    def _load_existing(self) -> None:
        for collection in COLLECTIONS:
            if collection not in self._shards and (self.root / collection / CONFIG_FILE).exists():
                self._load(collection)

    def _writable(self) -> None:
        """Hold the lock before writing; a store opened before its folder existed takes it now and
        loads what another process may have created meanwhile."""
        if self._closed:
            raise StoreError(f"the embedded store {self.root} is closed")
        if self.read_only:
            raise StoreError(
                f"the embedded store {self.root} was opened read-only: open it for writing (as `embed build` "
                "and `embed taxa` do) to change it"
            )
        if self._lock_fd is None:
            self._lock(self._lock_note)
            self._load_existing()

    # --- generations: the writer publishes, readers follow -------------------------------------

    def _wrote(self) -> None:
        """After a write call (a whole batch): publish when the last publish is old enough, for the
        readers open now (or the first generation of a store); optimize and close publish anyway."""
        self._dirty = True
        if time.monotonic() >= self._next_publish and (live_readers(self.root) or current_stamp(self.root) is None):
            self._publish(clean=False)

    def _publish(self, clean: bool) -> None:
        """Publish the shards as the next generation; a failure leaves readers on the previous one."""
        if not self._shards:
            return
        try:
            generation = publish(self.root, self._shards, clean)
        except Exception as e:  # never fail a build for its readers
            logger.warning("could not publish a generation of %s for its readers (they keep the previous "
                           "one): %s", self.root, e)
            return
        wait = max(PUBLISH_INTERVAL_S, generation.seconds * (1 / PUBLISH_SHARE - 1))
        self._next_publish = time.monotonic() + wait
        self._dirty = False

    def _catch_up(self) -> None:
        """Publish the shards a killed writer left unpublished, when no writer is running."""
        generation = current_generation(self.root)
        if generation is not None and generation.clean:
            return
        if not any((self.root / c / CONFIG_FILE).exists() for c in COLLECTIONS):
            return
        try:
            writer = EdgeStore(self.root, lock_note=_PUBLISHING)
        except StoreLockedError:
            return  # a writer is running (here or elsewhere): it publishes as it goes
        writer.close()  # which publishes

    def _register(self) -> None:
        """A reader: take its folder, which also tells the writer to publish, once the store exists."""
        if self._replicas is None and self.root.is_dir():
            self._replicas, self._replicas_fd = new_reader_folder(self.root)

    def _refresh(self) -> None:
        """A reader: follow the newest generation when CURRENT changed since the last call (one stat)."""
        if not self.read_only or self._closed:
            return
        self._register()
        stamp = current_stamp(self.root)
        if stamp == self._stamp:
            return
        with self._refreshing:
            if stamp == self._stamp:  # another thread followed it meanwhile
                return
            generation = current_generation(self.root)
            if generation is None or (self.generation is not None and generation.number == self.generation.number):
                self._stamp = stamp
                return
            with reading(generation) as present:
                if not present:  # replaced while being read; the next call follows the newer one
                    return
                self._follow(generation)
            self._stamp = stamp

    def _follow(self, generation: Generation) -> None:
        """Bring the replicas to `generation`. The changed segments are copied while searches go on;
        only closing, swapping them in and loading the shard again holds searches back."""
        self._register()
        assert self._replicas is not None  # a generation exists, so the store folder does
        started = time.perf_counter()
        swaps: list[Callable[[], None]] = []
        for collection in COLLECTIONS:
            manifest = generation.manifests.get(collection)
            guarded = self._shards.get(collection)
            if manifest is None:
                if guarded is not None:
                    swaps.append(lambda c=collection: self._drop_replica(c))
                continue
            source = generation.shard(collection)
            dims = vectors_of(source)
            if guarded is None or dims != self._dims[collection]:
                fresh = self._replicas / f"{collection}.{generation.number}"
                shutil.rmtree(fresh, ignore_errors=True)
                self._check_room(allocated_bytes(source), f"copying {source} for this reader")
                copy_tree(source, fresh)
                swaps.append(lambda c=collection, f=fresh, d=dims: self._swap_replica(c, f, d))
                continue
            have = guarded.snapshot_manifest()
            changed = [seg for seg, entry in manifest.items() if have.get(seg) != entry or not entry["segment_version"]]
            removed = [seg for seg in have if seg not in manifest]
            if not changed and not removed:
                continue
            incoming = self._replicas / f".incoming.{collection}"
            shutil.rmtree(incoming, ignore_errors=True)
            segments = [source / SEGMENTS_DIR / seg for seg in changed]
            self._check_room(sum(allocated_bytes(p) for p in segments), f"copying {len(changed)} segments")
            for path in segments:
                copy_tree(path, incoming / path.name)
            swaps.append(lambda c=collection, i=incoming, g=changed + removed: self._swap_segments(c, i, g))
        with self._guard.exclusive():
            for swap in swaps:
                swap()
            self.generation = generation
        trash = self._replicas / _TRASH
        if trash.exists():  # unlinking big files is slow: no search waits for it
            emptied = trash.with_name(f"{_TRASH}.{generation.number}")
            os.replace(trash, emptied)
            threading.Thread(target=shutil.rmtree, args=(emptied,), kwargs={"ignore_errors": True}, daemon=True).start()
        logger.debug("reader of %s follows generation %d (%.2f s)", self.root, generation.number,
                    time.perf_counter() - started)

    def _drop_replica(self, collection: str) -> None:
        guarded = self._shards.pop(collection)
        guarded.raw.close()
        self._discard(self._replica_dirs.pop(collection))
        self._dims[collection] = {}

    def _swap_replica(self, collection: str, folder: Path, dims: dict[str, int]) -> None:
        """Serve `collection` from the replica just copied to `folder`."""
        if collection in self._shards:
            self._drop_replica(collection)
        self._shards[collection] = _GuardedShard(self._open_shard(folder, dims), self._guard)
        self._replica_dirs[collection] = folder
        self._dims[collection] = dims

    def _swap_segments(self, collection: str, incoming: Path, segments: list[str]) -> None:
        """Replace or remove `segments` of a replica, the new ones waiting in `incoming`, and reload it:
        what the engine's `recover_partial_snapshot` does, without its tar (whose members are the
        sparse files' full sizes: 165 MB written and read back for 2 MB of data, measured)."""
        guarded = self._shards[collection]
        folder = self._replica_dirs[collection]
        guarded.raw.close()
        for segment in segments:
            if (folder / SEGMENTS_DIR / segment).exists():
                self._discard(folder / SEGMENTS_DIR / segment)
            if (incoming / segment).is_dir():
                os.replace(incoming / segment, folder / SEGMENTS_DIR / segment)
        shutil.rmtree(incoming, ignore_errors=True)
        guarded.raw = self._open_shard(folder, self._dims[collection])

    def _discard(self, path: Path) -> None:
        """Move a replica's folder out of the way, to be removed once searches go on again."""
        trash = self._replicas / _TRASH
        trash.mkdir(exist_ok=True)
        os.replace(path, trash / f"{len(os.listdir(trash))}-{path.name}")

    def _open_shard(self, path: Path, dims: dict[str, int]) -> qe.EdgeShard:
        persisted = _config_on_disk(path)
        self._quantized = self._quantized or bool(persisted.get("quantization_config"))
        config = self._edge_config(dims, persisted) if self._has_settings() and dims else None
        try:
            return qe.EdgeShard.load(str(path), config)
        except Exception as e:
            raise StoreError(f"could not load the shard folder {path}: {e}") from e

    def _published_clean(self) -> bool:
        generation = current_generation(self.root)
        return generation is not None and generation.clean

    def _drop_replicas(self) -> None:
        if self._replicas is not None:
            shutil.rmtree(self._replicas, ignore_errors=True)
            self._replicas = None
        if self._replicas_fd is not None:
            os.close(self._replicas_fd)
            self._replicas_fd = None

    def _check_room(self, needed: int, what: str) -> None:
        free = shutil.disk_usage(self.root).free
        if free < needed + _free_margin():
            raise self._full_error(f"{what} needs {_megabytes(needed)} and a margin of "
                                   f"{_megabytes(_free_margin())}, but {_megabytes(free)} are free")

    # --- the disk -----------------------------------------------------------------------------

    def _full_error(self, reason: str) -> StoreFullError:
        return StoreFullError(
            f"the disk of the embedded store {self.root} is too full to write: {reason}. The points written "
            "before are kept: free some space (or move the store with --store), then run the build again to resume"
        )

    def _check_free_space(self, new_shards: int = 0) -> None:
        """StoreFullError unless the disk can take what the shards' sparse files may still claim, the
        new shards' files and the margin: written pages of a full sparse file would raise SIGBUS."""
        free = shutil.disk_usage(self.root).free
        unclaimed = sum(_unclaimed_bytes(self.root / c) for c in self._shards)
        margin = _free_margin()
        needed = unclaimed + new_shards * NEW_SHARD_BYTES + margin
        if free < needed:
            parts = [f"{_megabytes(unclaimed)} the shards' sparse files may still claim"]
            if new_shards:
                parts.append(f"{_megabytes(new_shards * NEW_SHARD_BYTES)} for a new shard")
            parts.append(f"a margin of {_megabytes(margin)} (${FREE_MARGIN_ENV})")
            raise self._full_error(
                f"{_megabytes(free)} free, but writing needs {_megabytes(needed)} ({' + '.join(parts)}); "
                "nothing was written"
            )

    @contextmanager
    def _disk_errors(self, what: str) -> Iterator[None]:
        """Turn a write the disk refused into StoreFullError."""
        try:
            yield
        except Exception as e:
            if _disk_full(e):
                raise self._full_error(f"{what} failed ({e})") from e
            raise

    # --- shards -------------------------------------------------------------------------------

    def _edge_config(self, vectors: dict[str, int], persisted: dict[str, Any] | None = None) -> qe.EdgeConfig:
        """The shard config of `self.settings`; HNSW fields left unset keep the persisted ones."""
        s = self.settings
        hnsw = None
        wanted = {"m": s.hnsw_m, "ef_construct": s.hnsw_ef_construct, "full_scan_threshold": s.full_scan_threshold_kb}
        kept = (persisted or {}).get("hnsw_config") or {}
        if any(v is not None for v in wanted.values()) or s.payload_m is not None:
            hnsw = qe.HnswIndexConfig(**{
                k: v if v is not None else int(kept.get(k) or _DEFAULTS[k]) for k, v in wanted.items()
            }, payload_m=s.payload_m if s.payload_m is not None else kept.get("payload_m"))
        quantization = None
        if s.quantization == "int8" or (persisted or {}).get("quantization_config"):
            # Kept once set: a store opened with other settings does not drop its quantized copies.
            quantization = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True)
        optimizers = None
        if s.indexing_threshold_kb is not None:
            optimizers = qe.EdgeOptimizersConfig(indexing_threshold=s.indexing_threshold_kb)
        on_disk = True if quantization is not None else None  # the originals are read only to rescore
        params = {n: qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine, on_disk=on_disk)
                  for n, d in vectors.items()}
        return qe.EdgeConfig(
            vectors=params, hnsw_config=hnsw, optimizers=optimizers, max_search_threads=s.max_search_threads,
            quantization_config=quantization,
        )

    def _has_settings(self) -> bool:
        return any(v is not None for v in vars(self.settings).values())

    def _load(self, collection: str) -> None:
        path = self.root / collection
        persisted = _config_on_disk(path)
        self._quantized = self._quantized or bool(persisted.get("quantization_config"))
        dims = _vectors_of(persisted)
        config = self._edge_config(dims, persisted) if self._has_settings() and dims else None
        try:
            self._shards[collection] = qe.EdgeShard.load(str(path), config)
        except Exception as e:
            if "WouldBlock" in str(e) or "lock" in str(e).lower():
                raise StoreLockedError(
                    f"the shard folder {path} is in use: another process (a build, the UI) may hold it; "
                    "only one EdgeShard may open a folder at a time"
                ) from e
            raise StoreError(f"could not load the shard folder {path}: {e}") from e
        self._dims[collection] = dims

    def _shard(self, collection: str) -> qe.EdgeShard | None:
        if self._closed:
            raise StoreError(f"the embedded store {self.root} is closed")
        self._refresh()
        return self._shards.get(check_collection(collection))

    def _create(self, collection: str, name: str, dim: int) -> None:
        path = self.root / collection
        self._check_free_space(new_shards=1)
        path.mkdir(parents=True, exist_ok=True)
        with self._disk_errors(f"creating the shard {path}"):
            shard = qe.EdgeShard.create(str(path), self._edge_config({name: dim}))
        self._shards[collection] = shard
        self._dims[collection] = {name: dim}
        logger.info("created shard %s with vector %r (%d-d)", path, name, dim)
        # Indexes first: the engine then indexes each point as it is written.
        self._ensure_indexes(collection)

    def _ensure_indexes(self, collection: str) -> None:
        """Create the keyword indexes of SPEC §5 the shard lacks (all of them on a new shard)."""
        shard = self._shards.get(collection)
        if shard is None or collection in self._indexed:
            return
        present = set(shard.info().payload_schema)
        missing = [f for f in KEYWORD_INDEX_FIELDS if f not in present]
        if missing:
            self._check_free_space()
        with self._disk_errors(f"creating the payload indexes of {self.root / collection}"):
            for field in missing:
                params = qe.KeywordIndexParams(enable_hnsw=field in HNSW_LINK_FIELDS)
                shard.update(qe.UpdateOperation.create_field_index(field, params))
        if missing and present:
            logger.warning("added the keyword indexes %s missing from %s (a build was interrupted while "
                           "creating them)", ", ".join(missing), self.root / collection)
        self._indexed.add(collection)

    # --- schema -------------------------------------------------------------------------------

    def ensure_vector(self, name: str, dim: int, collections: Sequence[str] = COLLECTIONS) -> None:
        self._writable()
        missing = self._check_new_dims(name, dim, collections)
        for collection in missing:
            shard = self._shard(collection)
            if shard is None:
                self._create(collection, name, dim)
            else:
                self._check_free_space()
                with self._disk_errors(f"adding the vector {name!r} to {self.root / collection}"):
                    shard.update(qe.UpdateOperation.create_dense_vector(name, dim, qe.Distance.Cosine))
                self._dims[collection][name] = dim
                logger.info("added vector %r (%d-d) to %s", name, dim, self.root / collection)
        for collection in collections:
            self._ensure_indexes(collection)
        if missing:
            self._dirty = True  # published with the next points, or on close

    def vector_names(self, collection: str) -> dict[str, int]:
        check_collection(collection)
        self._refresh()
        return dict(self._dims[collection])

    # --- writes -------------------------------------------------------------------------------

    def _upsert(
        self, collection: str, vector: str, ids: list[str], payloads: list[dict[str, Any]], matrix: np.ndarray
    ) -> None:
        self.ensure_vector(vector, int(matrix.shape[1]), (collection,))
        shard = self._shard(collection)
        assert shard is not None
        self._check_free_space()
        with self._disk_errors(f"writing {len(ids)} points to {self.root / collection}"):
            for start in range(0, len(ids), UPSERT_CHUNK):
                chunk = slice(start, start + UPSERT_CHUNK)
                self._upsert_chunk(shard, vector, ids[chunk], payloads[chunk], matrix[chunk])
        self._wrote()

    @staticmethod
    def _upsert_chunk(
        shard: qe.EdgeShard, vector: str, ids: list[str], payloads: list[dict[str, Any]], matrix: np.ndarray
    ) -> None:
        stored = {str(p.id): p.payload or {} for p in shard.retrieve(ids, with_payload=True, with_vector=False)}
        rows = matrix.tolist()
        new = [qe.Point(i, {vector: r}, p) for i, p, r in zip(ids, payloads, rows) if i not in stored]
        if new:
            shard.update(qe.UpdateOperation.upsert_points(new))
        old = [qe.PointVectors(i, {vector: r}) for i, r in zip(ids, rows) if i in stored]
        if old:
            shard.update(qe.UpdateOperation.update_vectors(old))
        for i, p in zip(ids, payloads):
            if i in stored and stored[i] != p:
                shard.update(qe.UpdateOperation.overwrite_payload([i], p))

    def overwrite_payloads(self, collection: str, ids: list[str], payloads: list[dict[str, Any]]) -> None:
        self._writable()
        shard = self._shard(collection)
        if shard is None:
            return
        present = {str(p.id) for p in shard.retrieve(ids, with_payload=False, with_vector=False)}
        self._check_free_space()
        with self._disk_errors(f"rewriting {len(present)} payloads in {self.root / collection}"):
            for i, p in zip(ids, payloads, strict=True):
                if i in present:
                    shard.update(qe.UpdateOperation.overwrite_payload([i], p))
        self._wrote()

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        self._writable()
        shard = self._shard(collection)
        ids = [check_point_id(i) for i in ids]
        if shard is None or not ids:
            return
        self._check_free_space()
        with self._disk_errors(f"deleting {len(ids)} points from {self.root / collection}"):
            for start in range(0, len(ids), UPSERT_CHUNK):
                shard.update(qe.UpdateOperation.delete_points(ids[start:start + UPSERT_CHUNK]))
        self._wrote()

    # --- reads --------------------------------------------------------------------------------

    def ids_with_vector(self, collection: str, vector: str, ids: Sequence[str]) -> set[str]:
        shard = self._shard(collection)
        ids = [check_point_id(i) for i in ids]
        if shard is None or vector not in self._dims[collection] or not ids:
            return set()
        found: set[str] = set()
        for start in range(0, len(ids), SCROLL_PAGE):
            chunk = ids[start : start + SCROLL_PAGE]
            request = qe.ScrollRequest(
                limit=len(chunk), filter=_edge_filter(filter_spec(ids=chunk, has_vector=vector)),
                with_payload=False, with_vector=False,
            )
            points, _ = shard.scroll(request)
            found.update(str(p.id) for p in points)
        return found

    def count(self, collection: str, filter: SearchFilter | None = None, vector: str | None = None) -> int:
        shard = self._shard(collection)
        if shard is None or (vector is not None and vector not in self._dims[collection]):
            return 0
        return shard.count(qe.CountRequest(exact=True, filter=_edge_filter(filter_spec(filter, has_vector=vector))))

    def _plan(self, shard: Any, filter: SearchFilter | None, k: int, exact: bool, hnsw_ef: int | None) -> SearchPlan:
        """`index.search_params.plan_search` from the engine's estimate of the filter's size."""
        edge_filter = None if exact else _edge_filter(filter_spec(filter))
        if edge_filter is None:
            return plan_search(filtered=False, cardinality=None, total=None, k=k, hnsw_ef=hnsw_ef, exact=exact)
        size, total = (shard.count(qe.CountRequest(exact=False, filter=f)) for f in (edge_filter, None))
        return plan_search(filtered=True, cardinality=size, total=total, k=k, hnsw_ef=hnsw_ef)

    def _request(
        self, query: np.ndarray, vector_name: str, limit: int, spec: FilterSpec | None,
        plan: SearchPlan, with_vectors: bool, payload: bool | list[str] = True,
    ) -> qe.QueryRequest:
        return qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(query.tolist(), using=vector_name),
            filter=_edge_filter(spec),
            params=_edge_params(plan, self.settings, self._quantized),
            with_payload=payload,
            with_vector=[vector_name] if with_vectors else False,
        )

    def search(
        self,
        collection: str,
        vector_name: str,
        query: np.ndarray,
        k: int = 10,
        filter: SearchFilter | None = None,
        group_by: str | None = None,
        group_size: int = 1,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
        with_vectors: bool = False,
    ) -> list[Hit]:
        vector = self._search_args(collection, vector_name, query, k, group_by, group_size, hnsw_ef)
        shard = self._shard(collection)
        assert shard is not None  # _search_args found the vector, so the shard exists
        plan = self._plan(shard, filter, k, exact, hnsw_ef)
        if group_by is None:
            spec, out = filter_spec(filter), vector_name if with_vectors else None

            def run(p: SearchPlan, limit: int, filtered: bool) -> list[Hit]:
                if filtered:
                    request = self._request(vector, vector_name, limit, spec, p, with_vectors)
                else:  # ids only: `narrow` keeps those inside the filter
                    request = self._request(vector, vector_name, limit, None, p, False, False)
                return [_hit(point, float(point.score), out) for point in shard.query(request)]

            def narrow(hits: list[Hit], limit: int) -> list[Hit]:
                inside = filter_spec(filter, ids=[h.id for h in hits])
                request = self._request(vector, vector_name, limit, inside, SearchPlan(), with_vectors)
                return [_hit(point, float(point.score), out) for point in shard.query(request)]

            return planned_search(plan, k, run, lambda h: spec_matches(spec, h.payload), narrow=narrow)

        def probe(limit: int, spec: FilterSpec | None) -> qe.QueryRequest:
            # Grouping needs only the group field; full payloads are read for the final hits alone.
            return self._request(vector, vector_name, limit, spec, plan, False, [group_by])

        groups = self._grouped(shard, probe, filter, group_by, k, group_size)
        ids = [h.id for _, members in groups for h in members]
        points = shard.retrieve(ids, with_payload=True, with_vector=[vector_name] if with_vectors else False)
        full = {str(p.id): _hit(p, None, vector_name if with_vectors else None) for p in points}
        return [
            Hit(h.id, h.score, full[h.id].payload, full[h.id].vector, value)
            for value, members in groups for h in members if h.id in full
        ]

    @staticmethod
    def _grouped(
        shard: qe.EdgeShard, probe: Callable[[int, FilterSpec | None], qe.QueryRequest],
        filter: SearchFilter | None, group_by: str, k: int, group_size: int,
    ) -> list[tuple[str, list[Hit]]]:
        """Qdrant's groups without a grouped query: the first `k` groups in score order, each with its
        `group_size` best hits. Points without the field belong to no group and are filtered out."""

        def run(limit: int, spec: FilterSpec | None) -> list[Hit]:
            return [_hit(p, float(p.score)) for p in shard.query(probe(limit, spec))]

        limit = max(GROUP_FETCH_START, 4 * k * group_size)
        hits = run(limit, filter_spec(filter, has_field=group_by))
        groups = group_hits(hits, group_by, k, group_size)
        complete = {value for value, _ in groups} if len(hits) < limit else set()
        if group_by == LINEAGE:
            # An array field puts a point in several groups; excluding found groups would hide new
            # ones that share a point with them, so widen the fetch instead.
            while not complete and len(groups) < k and limit < GROUP_FETCH_MAX:
                limit = min(limit * 4, GROUP_FETCH_MAX)
                hits = run(limit, filter_spec(filter, has_field=group_by))
                groups = group_hits(hits, group_by, k, group_size)
                complete = {value for value, _ in groups} if len(hits) < limit else set()
        else:
            # Every point scoring above the best one outside the groups found so far lies in one of
            # them, so the best points outside them open the next groups, in order.
            while len(groups) < k and len(hits) == limit:
                missing = k - len(groups)
                limit = max(16, 4 * missing * group_size)
                found = (group_by, tuple(value for value, _ in groups))
                hits = run(limit, filter_spec(filter, has_field=group_by, none_of=[found]))
                new = group_hits(hits, group_by, missing, group_size)
                if not new:
                    break
                groups += new
                if len(hits) < limit:
                    complete.update(value for value, _ in new)
        short = [i for i, (value, members) in enumerate(groups) if len(members) < group_size and value not in complete]
        if short:
            # The groups are settled; fill the short ones with their own best hits.
            requests = [probe(group_size, filter_spec(filter, also=[(group_by, groups[i][0])])) for i in short]
            for i, points in zip(short, shard.query_batch(qe.QueryBatchRequest(requests))):
                value, members = groups[i]
                seen = {h.id for h in members}
                members = members + [_hit(p, float(p.score)) for p in points if str(p.id) not in seen]
                members.sort(key=lambda h: -(h.score or 0.0))
                groups[i] = (value, members[:group_size])
        return groups

    def search_batch(
        self,
        collection: str,
        vector_name: str,
        queries: np.ndarray,
        k: int = 10,
        filter: SearchFilter | None = None,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
    ) -> list[list[Hit]]:
        matrix = self._batch_args(collection, vector_name, queries, k, hnsw_ef)
        shard = self._shard(collection)
        assert shard is not None
        spec = filter_spec(filter)
        plan = self._plan(shard, filter, k, exact, hnsw_ef)
        requests = [self._request(q, vector_name, k, spec, plan, False) for q in matrix]
        answers = shard.query_batch(qe.QueryBatchRequest(requests)) if requests else []
        return [[_hit(p, float(p.score)) for p in points] for points in answers]

    def retrieve(self, collection: str, ids: Sequence[str], vector_name: str | None = None) -> list[Hit]:
        if vector_name is not None:
            self._dim_of(collection, vector_name)
        shard = self._shard(collection)
        ids = [check_point_id(i) for i in ids]
        if shard is None or not ids:
            return []
        points = shard.retrieve(ids, with_payload=True, with_vector=[vector_name] if vector_name else False)
        by_id = {str(p.id): _hit(p, None, vector_name) for p in points}
        return [by_id[i] for i in ids if i in by_id]

    def scroll(self, collection: str, filter: SearchFilter | None = None, limit: int | None = None) -> Iterator[Hit]:
        if limit is not None:
            _check_positive(limit, "limit")
        shard = self._shard(collection)
        if shard is None:
            return iter(())
        edge_filter = _edge_filter(filter_spec(filter))

        def fetch(offset: Any, size: int) -> tuple[list[Hit], Any]:
            points, next_offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=size, filter=edge_filter, with_payload=True, with_vector=False)
            )
            return [_hit(p, None) for p in points], next_offset

        return _paged(fetch, limit, SCROLL_PAGE)

    def facet_counts(
        self, collection: str, field: str, filter: SearchFilter | None = None, limit: int = FACET_LIMIT
    ) -> dict[str, int]:
        check_keyword_field(field, "facet field")
        _check_positive(limit, "limit")
        shard = self._shard(collection)
        if shard is None:
            return {}
        request = qe.FacetRequest(field, limit=limit, exact=True, filter=_edge_filter(filter_spec(filter)))
        try:
            response = shard.facet(request)
        except Exception as e:
            if field in shard.info().payload_schema:
                raise
            raise MissingIndexError(
                f"the {collection!r} shard of the embedded store {self.root} has no keyword index on {field!r} "
                "(a build was interrupted while creating it): run `python -m embed build` again to add it"
            ) from e
        counts = [(str(hit.value), int(hit.count)) for hit in response.hits]
        return dict(sorted(counts, key=lambda vc: (-vc[1], vc[0])))

    # --- lifecycle ----------------------------------------------------------------------------

    def optimize(self) -> None:
        self._writable()
        for collection, shard in self._shards.items():
            if self._closed:
                break
            self._check_free_space()
            with self._disk_errors(f"optimizing {self.root / collection}"):
                changed = shard.optimize()
            logger.info("optimized %s: %s", self.root / collection, "indexes built" if changed else "already optimal")
        if not self._closed:
            self._publish(clean=False)

    def flush(self) -> None:
        if self._closed:
            raise StoreError(f"the embedded store {self.root} is closed")
        if self.read_only:
            return  # a reader's replica holds nothing of its own to make durable
        with self._disk_errors(f"flushing {self.root}"):
            for shard in self._shards.values():
                shard.flush()

    def info(self, collection: str) -> dict[str, Any]:
        shard = self._shard(collection)
        if shard is None:
            return {}
        info = shard.info()
        return {
            "segments": info.segments_count,
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            "payload_indexes": {
                k: str(v.data_type).rsplit(".", 1)[-1].lower() for k, v in sorted(info.payload_schema.items())
            },
            "vectors": dict(self._dims[collection]),
        }

    def close(self) -> None:
        if self._closed:
            return
        if not self.read_only and self._shards and (self._dirty or not self._published_clean()):
            self._publish(clean=True)
        self._closed = True
        failed: Exception | None = None
        try:
            for shard in self._shards.values():
                try:
                    try:
                        shard.flush()
                    finally:
                        shard.close()
                except Exception as e:  # close the other shards all the same
                    failed = failed or e
        finally:
            self._shards.clear()
            self._unlock()
            if self.read_only:
                self._drop_replicas()
            else:
                with _open_lock:
                    _open_roots.discard(self.root)
        if failed is not None:
            with self._disk_errors(f"flushing {self.root} on close"):
                raise failed
