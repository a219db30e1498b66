"""The build's writer thread: store before catalog before run record, merged groups, a bounded queue,
and errors handed back to the encoder's thread."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from embed.writer import BuildWriter
from index.collection.entries import Problem, image_point_id
from index.records import ImageRecord
from index.store import StoreFullError
from taxonomy import Lineage

LINEAGE = Lineage.from_ranks({"kingdom": "Animalia", "genus": "Pica", "species": "hudsonia"}, "")


def _records(start: int, n: int) -> list[ImageRecord]:
    return [ImageRecord(id=image_point_id(f"p/{i}.jpg"), root="/r", path=f"p/{i}.jpg", sha256=f"{i:064x}", bytes=1,
                        width=8, height=8, lineage=LINEAGE) for i in range(start, start + n)]


class Journal:
    """A store and a catalog that log every call in one list; the store can be held or made to fail."""

    location = "/store"

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail: BaseException | None = None

    def upsert_images(self, vector, records, vectors):
        self.entered.set()
        assert self.gate.wait(30)
        if self.fail is not None:
            raise self.fail
        assert vectors.shape == (len(records), 4)
        self.calls.append(("upsert", [r.id for r in records]))

    def mark_embedded(self, vector, store, records):
        assert store == self.location
        self.calls.append(("mark", [r.id for r in records]))

    def update_run(self, run_id, *, done=0, failed=0, failures=(), rate=None):
        self.calls.append(("run", (done, failed)))


def _vectors(n: int) -> np.ndarray:
    return np.ones((n, 4), dtype=np.float32)


def test_each_group_is_stored_then_marked_then_counted():
    journal = Journal()
    problem = Problem(origin="/r", row=None, path="p/bad.jpg", reason="truncated")
    seen = []
    with BuildWriter(journal, journal, "v", 1, on_written=lambda c: seen.append((c.done, c.failed))) as writer:
        writer.put(_records(0, 3), _vectors(3))
        writer.put([], None, [problem])
    assert writer.counts.done == 3 and writer.counts.failed == 1 and writer.counts.failures == [problem]
    kinds = [kind for kind, _ in journal.calls]
    # However the batches were grouped, every upsert is followed by its mark, then by its run update.
    for i, kind in enumerate(kinds):
        if kind == "upsert":
            assert kinds[i + 1] == "mark" and kinds[i + 2] == "run"
            assert journal.calls[i][1] == journal.calls[i + 1][1]
    assert sum(done for kind, (done, _) in [c for c in journal.calls if c[0] == "run"]) == 3
    assert seen[-1] == (3, 1)


def test_batches_queued_while_the_writer_is_busy_are_merged_up_to_flush_points():
    journal = Journal()
    journal.gate.clear()
    writer = BuildWriter(journal, journal, "v", 1, flush_points=10).start()
    writer.put(_records(0, 4), _vectors(4))
    assert journal.entered.wait(30)  # the writer holds the first batch
    for k in range(1, 6):  # 5 more batches of 4 queue up behind it
        writer.put(_records(4 * k, 4), _vectors(4))
    journal.gate.set()
    counts = writer.close()
    upserts = [ids for kind, ids in journal.calls if kind == "upsert"]
    assert [len(ids) for ids in upserts] == [4, 12, 8]  # 4 | 4+4+4 (reaches 10) | 4+4
    assert [i for ids in upserts for i in ids] == [r.id for r in _records(0, 24)]  # in order, each once
    assert counts.done == 24 and counts.groups == 3


def test_a_full_queue_blocks_the_encoder():
    journal = Journal()
    journal.gate.clear()
    writer = BuildWriter(journal, journal, "v", 1, queue_batches=2).start()
    writer.put(_records(0, 1), _vectors(1))
    assert journal.entered.wait(30)
    writer.put(_records(1, 1), _vectors(1))
    writer.put(_records(2, 1), _vectors(1))  # the queue is now full
    blocked = threading.Thread(target=writer.put, args=(_records(3, 1), _vectors(1)))
    blocked.start()
    time.sleep(0.3)
    assert blocked.is_alive()
    journal.gate.set()
    blocked.join(30)
    assert not blocked.is_alive()
    assert writer.close().done == 4


def test_a_store_error_reaches_the_encoder_and_nothing_is_marked():
    journal = Journal()
    journal.fail = StoreFullError("disk full")
    writer = BuildWriter(journal, journal, "v", 1).start()
    writer.put(_records(0, 2), _vectors(2))
    with pytest.raises(StoreFullError, match="disk full"):
        for k in range(1, 200):  # a later put, or at the latest close, raises the writer's error
            writer.put(_records(2 * k, 2), _vectors(2))
            time.sleep(0.01)
        writer.close()
    with pytest.raises(StoreFullError):
        writer.close()
    assert not [c for c in journal.calls if c[0] in ("mark", "run")]


def test_abort_writes_nothing_more_than_the_group_in_flight():
    journal = Journal()
    journal.gate.clear()
    writer = BuildWriter(journal, journal, "v", 1).start()
    writer.put(_records(0, 2), _vectors(2))
    assert journal.entered.wait(30)
    writer.put(_records(2, 2), _vectors(2))
    releaser = threading.Timer(0.2, journal.gate.set)
    releaser.start()
    writer.abort()
    upserts = [ids for kind, ids in journal.calls if kind == "upsert"]
    assert upserts == [[r.id for r in _records(0, 2)]]


def test_vectors_must_match_records():
    writer = BuildWriter(Journal(), Journal(), "v", 1).start()
    with pytest.raises(ValueError, match="2 records but 3 vectors"):
        writer.put(_records(0, 2), _vectors(3))
    writer.close()
