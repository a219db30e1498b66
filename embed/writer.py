"""The build's writer: one thread that stores, marks and counts what the encoder hands it.

The encoder (the main thread) puts each encoded batch on a bounded queue and goes back to the
GPU; the writer takes what has queued up, up to `flush_points`, and writes it as one group: the
store upsert first, then the catalog marks, then the run record. The order of the three is the
build's crash safety (see embed.build), and the writer keeps it for every group: a `kill -9`
loses at most the groups queued or in flight, which a rerun encodes again or (written but not
marked) marks without encoding.

Groups grow only when the writer falls behind: while it keeps up, each batch is written as it
comes (as the synchronous build did); when the GPU is faster, the batches that queued meanwhile
are merged, so the fixed costs of a write (a store call, a catalog transaction, the run record's
heartbeat) are paid once per few thousand points. The queue is bounded in batches, so a writer
that cannot keep up slows the encoder down rather than filling memory.

The writer calls only the store's and catalog's public methods (`upsert_images`,
`mark_embedded`, `update_run`). An error in the writer stops it; the next `put` or `close`
raises that same exception in the encoder's thread.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from index.collection.entries import Problem
from index.records import ImageRecord

if TYPE_CHECKING:
    from index.catalog import Catalog
    from index.store import VectorStore

logger = logging.getLogger(__name__)

QUEUE_BATCHES = 32  # encoded batches waiting for the writer at most (32 x 256 x 512 floats = 16 MB)
FLUSH_POINTS = 4096  # points merged into one write group at most
_STOP = object()


@dataclass
class WriteCounts:
    """What the writer has written and marked so far (read by the encoder's thread for progress)."""

    done: int = 0
    failed: int = 0
    failures: list[Problem] = field(default_factory=list)
    seconds: float = 0.0  # from the writer's start to the last group marked
    groups: int = 0


@dataclass(frozen=True)
class _Batch:
    records: Sequence[ImageRecord]
    vectors: np.ndarray | None
    failures: Sequence[Problem]


Written = Callable[[WriteCounts], None]


class BuildWriter:
    """Write encoded batches in a thread of their own; use as a context manager, or `start` and `close`.

    Args:
        store, catalog: where the points go and where they are marked (both used only by the
            writer's thread until `close` returns).
        vector: the model's vector name.
        run_id: the build run whose counts and heartbeat each group updates.
        on_written: called in the writer's thread after each group, with the counts so far.
        queue_batches: batches that may wait (bounded memory); `put` blocks when they are full.
        flush_points: a group's points at most.
    """

    def __init__(
        self, store: VectorStore, catalog: Catalog, vector: str, run_id: int, *,
        on_written: Written | None = None, queue_batches: int = QUEUE_BATCHES, flush_points: int = FLUSH_POINTS,
    ) -> None:
        if queue_batches < 1 or flush_points < 1:
            raise ValueError(f"queue_batches and flush_points must be at least 1, got {queue_batches}, {flush_points}")
        self.store, self.catalog, self.vector, self.run_id = store, catalog, vector, run_id
        self.location = store.location
        self.on_written = on_written
        self.flush_points = flush_points
        self.counts = WriteCounts()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_batches)
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="build-writer", daemon=True)
        self._start = 0.0

    def start(self) -> BuildWriter:
        self._start = time.perf_counter()
        self._thread.start()
        return self

    def __enter__(self) -> BuildWriter:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    # --- the encoder's side --------------------------------------------------------------------

    def put(self, records: Sequence[ImageRecord], vectors: np.ndarray | None, failures: Sequence[Problem] = ()) -> None:
        """Queue one encoded batch (`vectors[i]` of `records[i]`) and its failures; blocks while the queue is full."""
        if vectors is not None and len(vectors) != len(records):
            raise ValueError(f"{len(records)} records but {len(vectors)} vectors")
        item = _Batch(list(records), vectors, list(failures))
        while True:
            self._raise_error()
            if not self._thread.is_alive():
                raise RuntimeError("the build writer is not running: start it first")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> WriteCounts:
        """Write everything queued, stop the thread, and return the counts; raises the writer's error."""
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.1)  # a writer that died on an error takes nothing more
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise_error()
        return self.counts

    def abort(self) -> None:
        """Stop after the group in flight; what is still queued is not written (a rerun encodes it)."""
        self._stopping.set()
        if self._thread.is_alive():
            try:
                self._queue.put_nowait(_STOP)
            except queue.Full:
                pass  # the writer sees `_stopping` after its group
            self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    # --- the writer's thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                group, last = self._take()
                if group:
                    self._write(group)
                if last:
                    return
        except BaseException as e:  # handed to the encoder's thread
            self._error = e
            self._stopping.set()
            logger.debug("build writer stopped by %r", e)

    def _take(self) -> tuple[list[_Batch], bool]:
        """Wait for one batch, then add those already queued, up to `flush_points`; (group, stop seen)."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        group = [first]
        points = len(first.records)
        while points < self.flush_points:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return group, True
            group.append(item)
            points += len(item.records)
        return group, False

    def _write(self, group: list[_Batch]) -> None:
        records = [r for batch in group for r in batch.records]
        failures = [p for batch in group for p in batch.failures]
        if records:
            vectors = [b.vectors for b in group if b.records]
            matrix = vectors[0] if len(vectors) == 1 else np.concatenate(vectors)
            self.store.upsert_images(self.vector, records, matrix)  # 1. the store
            self.catalog.mark_embedded(self.vector, self.location, records)  # 2. the catalog
        for problem in failures:
            logger.warning("skipped image %s", problem)
        counts = self.counts
        counts.done += len(records)
        counts.failed += len(failures)
        counts.failures.extend(failures)
        counts.groups += 1
        counts.seconds = time.perf_counter() - self._start
        self.catalog.update_run(  # 3. the run record (and its heartbeat)
            self.run_id, done=len(records), failed=len(failures), failures=failures,
            rate=counts.done / counts.seconds if counts.seconds > 0 else 0.0,
        )
        if self.on_written is not None:
            self.on_written(counts)
