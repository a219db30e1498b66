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
from index.convert import Hit, hit_of
from index.filters import FilterSpec, FilterTerms, SearchFilter, filter_spec, group_hits, translate
from index.schema import (
    COLLECTIONS, FREE_MARGIN_ENV, HNSW_LINK_FIELDS, KEYWORD_INDEX_FIELDS, LINEAGE, check_collection,
)
from index.search_params import SearchPlan
from index.vector_store import (
    Changes, CollectionInfo, EdgeSettings, Query, StoreError, StoreFullError, StoreLockedError, VectorStore,
)

logger = logging.getLogger(__name__)

CONFIG_FILE = "edge_config.json"  # written by the engine on create, load and create_dense_vector
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


_TERMS = FilterTerms(
    field=lambda name, match: qe.FieldCondition(name, match=match),
    match_value=qe.MatchValue,
    match_any=qe.MatchAny,
    has_ids=lambda ids: qe.HasIdCondition({uuid.UUID(i) for i in ids}),
    has_vector=qe.HasVectorCondition,
    is_empty=qe.IsEmptyCondition,
    combine=lambda must, must_not: qe.Filter(must=must, must_not=must_not),
)


def _edge_filter(spec: FilterSpec | None) -> qe.Filter | None:
    return translate(spec, _TERMS)


def _edge_params(plan: SearchPlan, settings: EdgeSettings, quantized: bool) -> qe.SearchParams:
    acorn = qe.AcornSearchParams(enable=True, max_selectivity=1.0) if plan.acorn else None  # the plan chose it
    quantization = None
    if quantized and not plan.exact:  # (given to a plain shard, they cost ~1 ms of 4 at 1M points)
        oversampling = settings.oversampling or DEFAULT_OVERSAMPLING
        quantization = qe.QuantizationSearchParams(rescore=True, oversampling=oversampling)
    return qe.SearchParams(hnsw_ef=plan.hnsw_ef, exact=plan.exact, acorn=acorn, quantization=quantization)


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

    # --- engine primitives --------------------------------------------------------------------

    def _exists(self, collection: str) -> bool:
        return self._shard(collection) is not None

    def _check_writable(self) -> None:
        self._writable()

    @contextmanager
    def _writing(self, collection: str, what: str) -> Iterator[None]:
        self._check_free_space()
        with self._disk_errors(f"{what} {self.root / collection}"):
            yield
        self._wrote()

    def _describe(self, collection: str) -> str:
        return f"the {collection!r} shard of the embedded store {self.root}"

    def _open_shard_of(self, collection: str) -> qe.EdgeShard:
        """The shard of a collection the caller found; a reader's may have left with a newer generation."""
        shard = self._shard(collection)
        if shard is None:
            raise StoreError(f"the {collection!r} shard of the embedded store {self.root} is gone (its writer "
                             "removed it); open the store again")
        return shard

    def _points(self, collection: str, ids: list[str], *, payload: bool, vector: str | None = None) -> list[Any]:
        return self._open_shard_of(collection).retrieve(ids, with_payload=payload,
                                                        with_vector=[vector] if vector else False)

    def _apply(self, collection: str, changes: Changes) -> None:
        shard = self._open_shard_of(collection)
        if changes.new:
            shard.update(qe.UpdateOperation.upsert_points([qe.Point(i, v, p) for i, v, p in changes.new]))
        if changes.vectors:
            shard.update(qe.UpdateOperation.update_vectors([qe.PointVectors(i, v) for i, v in changes.vectors]))
        for i, p in changes.payloads:
            shard.update(qe.UpdateOperation.overwrite_payload([i], p))

    def _remove(self, collection: str, ids: list[str]) -> None:
        self._open_shard_of(collection).update(qe.UpdateOperation.delete_points(ids))

    def _page(
        self, collection: str, spec: FilterSpec | None, offset: Any, size: int, *, payload: bool
    ) -> tuple[list[Any], Any]:
        request = qe.ScrollRequest(offset=offset, limit=size, filter=_edge_filter(spec), with_payload=payload,
                                   with_vector=False)
        return self._open_shard_of(collection).scroll(request)

    def _count(self, collection: str, spec: FilterSpec | None) -> int:
        return self._open_shard_of(collection).count(qe.CountRequest(exact=True, filter=_edge_filter(spec)))

    def _estimate(self, collection: str, spec: FilterSpec) -> tuple[int, int]:
        shard = self._open_shard_of(collection)
        return (shard.count(qe.CountRequest(exact=False, filter=_edge_filter(spec))),
                shard.count(qe.CountRequest(exact=False)))

    def _request(
        self, request: Query, vector: np.ndarray, limit: int, spec: FilterSpec | None, with_vectors: bool,
        payload: bool | list[str] = True,
    ) -> qe.QueryRequest:
        return qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector.tolist(), using=request.vector_name),
            filter=_edge_filter(spec),
            params=_edge_params(request.plan, self.settings, self._quantized),
            with_payload=payload,
            with_vector=[request.vector_name] if with_vectors else False,
        )

    def _query(self, request: Query, vector: np.ndarray) -> list[Any]:
        query = self._request(request, vector, request.k, request.spec, request.with_vectors, request.payload)
        return self._open_shard_of(request.collection).query(query)

    def _query_groups(self, request: Query, vector: np.ndarray, group_by: str, group_size: int) -> list[Hit]:
        shard = self._open_shard_of(request.collection)

        def probe(limit: int, spec: FilterSpec | None) -> qe.QueryRequest:
            # Grouping needs only the group field; full payloads are read for the final hits alone.
            return self._request(request, vector, limit, spec, False, [group_by])

        groups = self._grouped(shard, probe, request.filter, group_by, request.k, group_size)
        ids = [h.id for _, members in groups for h in members]
        out = request.vector_name if request.with_vectors else None
        points = shard.retrieve(ids, with_payload=True, with_vector=[out] if out else False)
        full = {str(p.id): hit_of(p, None, out) for p in points}
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
            return [hit_of(p, float(p.score)) for p in shard.query(probe(limit, spec))]

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
                members = members + [hit_of(p, float(p.score)) for p in points if str(p.id) not in seen]
                members.sort(key=lambda h: -(h.score or 0.0))
                groups[i] = (value, members[:group_size])
        return groups

    def _query_batch(self, request: Query, matrix: np.ndarray) -> list[list[Any]]:
        spec = request.spec
        requests = [self._request(request, q, request.k, spec, False) for q in matrix]
        return self._open_shard_of(request.collection).query_batch(qe.QueryBatchRequest(requests))

    def _facet(self, collection: str, field: str, spec: FilterSpec | None, limit: int) -> list[tuple[str, int]]:
        request = qe.FacetRequest(field, limit=limit, exact=True, filter=_edge_filter(spec))
        return [(str(hit.value), int(hit.count)) for hit in self._open_shard_of(collection).facet(request).hits]

    def _payload_indexes(self, collection: str) -> set[str]:
        return set(self._open_shard_of(collection).info().payload_schema)

    def _info(self, collection: str) -> CollectionInfo:
        info = self._open_shard_of(collection).info()
        return CollectionInfo(
            points=int(info.points_count),
            segments=int(info.segments_count),
            indexed_vectors=int(info.indexed_vectors_count),
            payload_indexes={
                k: str(v.data_type).rsplit(".", 1)[-1].lower() for k, v in sorted(info.payload_schema.items())
            },
            vectors=dict(self._dims[collection]),
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def optimize(self) -> None:
        self._writable()
        for collection, shard in self._shards.items():
            if self._closed:
                break
            self._check_free_space()
            started = time.perf_counter()
            logger.info("optimizing %s (%d points: payload indexes, HNSW graph)", self.root / collection,
                        shard.count(qe.CountRequest(exact=False)))
            with self._disk_errors(f"optimizing {self.root / collection}"):
                changed = shard.optimize()
            logger.info("optimized %s in %.1f s: %s", self.root / collection, time.perf_counter() - started,
                        "indexes built" if changed else "already optimal")
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
