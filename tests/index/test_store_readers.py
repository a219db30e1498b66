"""Readers beside the writer of an embedded store: real qdrant-edge shards in tmp_path, real processes.

The writer below writes batches of BATCH points (more than one engine update each), every point of
a batch carrying `source = batch-N`; what a reader sees must be whole batches.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from index.constants import PUBLISH_INTERVAL_S, READERS_DIR
from index.convert import image_payload
from index.edge_replica import STAGING_GRACE_S, STAGING_PREFIX, current_generation, new_reader_folder, remove_dead_readers
from index.schema import IMAGES
from index.store import StoreError, open_store
from tests.index.test_store_contract import DIM, RECORDS

REPO = Path(__file__).resolve().parents[2]
BATCH = 700  # > UPSERT_CHUNK: a batch is two engine updates, so half a batch would show as 512
WAIT_S = 120

WRITER = """
    import dataclasses, sys, time, uuid
    import numpy as np
    from index.store import open_store
    from tests.index.test_store_contract import DIM, RECORDS

    root, batches, size, pause, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    rng = np.random.default_rng(0)
    store = open_store(root)
    print("open", flush=True)
    for b in range(batches):
        records = [dataclasses.replace(RECORDS[0], id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{b}/{i}")),
                                       path=f"{b}/{i}.jpg", source=f"batch-{b}") for i in range(size)]
        store.upsert_images("demo", records, rng.normal(size=(size, DIM)).astype(np.float32))
        time.sleep(pause)
    print("written", flush=True)
    if end == "hold":
        sys.stdin.readline()
    elif end == "die":
        time.sleep(3600)
    store.close()
    print("closed", flush=True)
"""

READER = """
    import sys, time
    import numpy as np
    from index.schema import IMAGES
    from index.store import open_store

    store = open_store(sys.argv[1], read_only=True)
    print(store._replicas, flush=True)
    rng = np.random.default_rng(int(sys.argv[2]))
    hits = [len(store.search(IMAGES, "demo", rng.normal(size=int(sys.argv[3])), k=5)) for _ in range(20)]
    print(min(hits), store.count(IMAGES), flush=True)
    if len(sys.argv) > 4:
        time.sleep(3600)
    store.close()
"""


def _python(code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], cwd=REPO, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _expect(process: subprocess.Popen, line: str) -> None:
    got = process.stdout.readline().strip()
    if got != line:
        process.kill()
        raise AssertionError(f"expected {line!r} from the writer, got {got!r}: {process.stderr.read()[-2000:]}")


def _whole_batches(store, seen: set[int]) -> None:
    """What `store` shows is whole batches, each point with its full payload."""
    count = store.count(IMAGES)
    per_batch = store.facet_counts(IMAGES, "source")
    assert count % BATCH == 0 and set(per_batch.values()) <= {BATCH}, (count, per_batch)
    assert sum(per_batch.values()) == count
    seen.add(count)
    if count:
        for hit in store.search(IMAGES, "demo", np.ones(DIM, dtype=np.float32), k=3):
            assert hit.payload == {**image_payload(RECORDS[0]), "path": hit.payload["path"],
                                   "source": hit.payload["source"]}


def test_a_reader_follows_a_writer_in_another_process_batch_by_batch(tmp_path):
    root, batches = tmp_path / "qdrant", 12
    root.mkdir()
    seen: set[int] = set()
    with open_store(str(root), read_only=True) as reader:  # open before the writer: it publishes for it
        writer = _python(WRITER, root, batches, BATCH, 0.5, "close")
        try:
            _expect(writer, "open")
            while writer.poll() is None:
                _whole_batches(reader, seen)
                time.sleep(0.05)
            assert writer.wait() == 0, writer.stderr.read()
            # The writer published as it closed: the next call sees every point.
            assert reader.count(IMAGES) == batches * BATCH
            _whole_batches(reader, seen)
        finally:
            writer.kill()
    # It followed the build as it went, not only at its end.
    assert len(seen - {0, batches * BATCH}) >= 2, sorted(seen)


def test_readers_lag_the_writer_by_the_publish_interval_at_most(tmp_path):
    root = tmp_path / "qdrant"
    writer = _python(WRITER, root, 1, BATCH, 0, "hold")
    try:
        _expect(writer, "open")
        _expect(writer, "written")
        with open_store(str(root), read_only=True) as reader:
            assert reader.count(IMAGES) == BATCH  # the first write of a writer is published at once
            writer.stdin.write("\n")
            writer.stdin.flush()
            _expect(writer, "closed")
            assert reader.count(IMAGES) == BATCH
            assert reader.generation is not None and reader.generation.clean
    finally:
        writer.kill()
    assert PUBLISH_INTERVAL_S <= 5  # what the README promises


def test_two_readers_and_this_one_search_while_a_writer_holds_the_store(tmp_path):
    root = tmp_path / "qdrant"
    root.mkdir()
    mine = open_store(str(root), read_only=True)  # open during the writes: each is published for it
    writer = _python(WRITER, root, 2, BATCH, PUBLISH_INTERVAL_S, "hold")
    try:
        _expect(writer, "open")
        _expect(writer, "written")
        readers = [_python(READER, root, seed, DIM) for seed in (1, 2)]
        with mine:
            assert len(mine.search(IMAGES, "demo", np.ones(DIM), k=5)) == 5
            assert mine.count(IMAGES) == 2 * BATCH
        outputs = [r.communicate(timeout=WAIT_S) for r in readers]
        for r, (out, err) in zip(readers, outputs):
            assert r.returncode == 0, err
            assert out.splitlines()[-1] == f"5 {2 * BATCH}"
        assert writer.poll() is None  # the writer held the store all along
        # Each reader had a replica of its own, removed as it closed.
        folders = {out.splitlines()[0] for out, _ in outputs}
        assert len(folders) == 2 and not any(Path(f).exists() for f in folders)
    finally:
        writer.kill()


def test_a_read_only_store_refuses_writes(tmp_path):
    root = tmp_path / "qdrant"
    with open_store(str(root)) as store:
        store.upsert_images("demo", RECORDS[:2], np.ones((2, DIM), dtype=np.float32))
    with open_store(str(root), read_only=True) as reader:
        assert reader.count(IMAGES) == 2
        for write in (lambda: reader.ensure_vector("other", DIM), reader.optimize,
                      lambda: reader.upsert_images("demo", RECORDS[:1], np.ones((1, DIM))),
                      lambda: reader.delete(IMAGES, [RECORDS[0].id]),
                      lambda: reader.set_image_payloads(RECORDS[:1])):
            with pytest.raises(StoreError, match="opened read-only"):
                write()
        assert reader.count(IMAGES) == 2


def test_a_killed_writers_last_batches_are_published_by_the_next_reader(tmp_path):
    root = tmp_path / "qdrant"
    writer = _python(WRITER, root, 3, BATCH, 0, "die")  # three batches inside one publish interval
    try:
        _expect(writer, "open")
        _expect(writer, "written")
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    finally:
        writer.kill()
    before = current_generation(root)  # its first batch, published as the store's first generation
    assert before is not None and not before.clean
    with open_store(str(root), read_only=True) as reader:
        assert reader.count(IMAGES) == 3 * BATCH
    assert current_generation(root).clean


def test_the_replicas_of_a_dead_reader_are_removed_by_the_next(tmp_path):
    root = tmp_path / "qdrant"
    with open_store(str(root)) as store:
        store.upsert_images("demo", RECORDS[:2], np.ones((2, DIM), dtype=np.float32))
    dead = _python(READER, root, 1, DIM, "stay")
    folder = Path(dead.stdout.readline().strip())
    assert dead.stdout.readline().strip() == "2 2" and folder.is_dir()
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    assert folder.is_dir()
    with open_store(str(root), read_only=True) as reader:
        assert not folder.exists()
        assert [p.name for p in (root / READERS_DIR).iterdir()] == [reader._replicas.name]


def test_a_reader_opened_before_the_first_build_sees_it_when_it_is_published(tmp_path):
    root = tmp_path / "qdrant"
    with open_store(str(root), read_only=True) as reader:
        assert reader.count(IMAGES) == 0 and reader.vector_names(IMAGES) == {}
        with open_store(str(root)) as store:
            store.upsert_images("demo", RECORDS[:3], np.ones((3, DIM), dtype=np.float32))
            assert reader.count(IMAGES) == 3  # a writer's first batch is published at once
            store.ensure_vector("second", DIM)  # a new model: the replica is copied again
            store.upsert_images("second", RECORDS[:1], np.ones((1, DIM), dtype=np.float32))
        assert reader.vector_names(IMAGES) == {"demo": DIM, "second": DIM}
        assert reader.count(IMAGES, vector="second") == 1


def test_a_writer_publishes_mid_build_only_while_readers_are_open(tmp_path, monkeypatch):
    import index.edge_store

    monkeypatch.setattr(index.edge_store, "PUBLISH_INTERVAL_S", 0.0)
    monkeypatch.setattr(index.edge_store, "PUBLISH_SHARE", 1.0)  # no wait after a publish either
    root = tmp_path / "qdrant"
    vectors = np.ones((1, DIM), dtype=np.float32)
    with open_store(str(root)) as store:
        store.upsert_images("demo", RECORDS[:1], vectors)  # the store's first generation
        store.upsert_images("demo", RECORDS[1:2], vectors)  # no reader: not published
        assert current_generation(root).number == 1
        with open_store(str(root), read_only=True) as reader:
            assert reader.count(IMAGES) == 1
            store.upsert_images("demo", RECORDS[2:3], vectors)
            assert current_generation(root).number == 2 and reader.count(IMAGES) == 3
        store.upsert_images("demo", RECORDS[3:4], vectors)  # its reader closed
        assert current_generation(root).number == 2
    assert current_generation(root).clean  # closing published the rest
    with open_store(str(root), read_only=True) as reader:
        assert reader.count(IMAGES) == 4


def test_a_reader_folder_is_locked_before_other_readers_can_see_it(tmp_path):
    """Clearing dead readers never takes a folder whose reader is still making it (the race two CLIs hit)."""
    making = tmp_path / READERS_DIR / f"{STAGING_PREFIX}123-abcd"
    making.mkdir(parents=True)
    folder, fd = new_reader_folder(tmp_path)  # clears dead readers first
    try:
        assert making.is_dir() and not folder.name.startswith(STAGING_PREFIX)
        assert remove_dead_readers(tmp_path) == []  # a live reader and one being made
        old = time.time() - STAGING_GRACE_S - 1
        os.utime(making, (old, old))
        assert remove_dead_readers(tmp_path) == [making]  # died between making and locking
        assert folder.is_dir()
    finally:
        os.close(fd)
    assert remove_dead_readers(tmp_path) == [folder]
