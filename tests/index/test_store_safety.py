"""The embedded store under damage and contention: shards missing keyword indexes, a second process
at the folder, a disk that fills up. Real qdrant-edge shards in tmp_path, real processes, a real
tmpfs where this machine lets the tests mount one.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import qdrant_edge as qe

from index.convert import image_payload
from index.constants import NEW_SHARD_BYTES, STORE_LOCK_FILE
from index.schema import FREE_MARGIN_ENV, IMAGES, KEYWORD_INDEX_FIELDS, TAXA
from index.store import MissingIndexError, StoreFullError, StoreLockedError, open_store
from tests.index.test_store_contract import DIM, IMAGE_VECTORS, RECORDS, TAXA_LIST, TAXON_VECTORS, TEXTS

REPO = Path(__file__).resolve().parents[2]
KEPT_INDEXES = 5  # what the killed build below managed to create, of the 12


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)


def _indexes(shard_dir: Path) -> set[str]:
    shard = qe.EdgeShard.load(str(shard_dir))
    try:
        return set(shard.info().payload_schema)
    finally:
        shard.close()


def _half_indexed_shard(shard_dir: Path, with_points: bool) -> None:
    """What a build killed while creating a shard leaves: the shard, only some keyword indexes."""
    shard_dir.mkdir(parents=True)
    config = qe.EdgeConfig(vectors={"demo": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)})
    shard = qe.EdgeShard.create(str(shard_dir), config)
    for field in KEYWORD_INDEX_FIELDS[:KEPT_INDEXES]:
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
    if with_points:  # written later by a version of this project that did not add the missing indexes
        points = [qe.Point(r.id, {"demo": v.tolist()}, image_payload(r)) for r, v in zip(RECORDS, IMAGE_VECTORS)]
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.close()


# --- keyword indexes ----------------------------------------------------------------------------------

def test_a_reader_gets_a_clear_error_and_a_writer_adds_the_missing_indexes(tmp_path):
    root = tmp_path / "qdrant"
    _half_indexed_shard(root / IMAGES, with_points=True)
    assert _indexes(root / IMAGES) == set(KEYWORD_INDEX_FIELDS[:KEPT_INDEXES])
    with open_store(str(root)) as store:
        with pytest.raises(MissingIndexError, match=rf"'images' shard .*{root}.* no keyword index on 'split'.*embed build"):
            store.facet_counts(IMAGES, "split")
        store.ensure_vector("demo", DIM)  # what every build does first
        assert store.info(IMAGES).payload_indexes == {f: "keyword" for f in KEYWORD_INDEX_FIELDS}
        assert store.info(TAXA).payload_indexes == {f: "keyword" for f in KEYWORD_INDEX_FIELDS}
        splits = store.facet_counts(IMAGES, "split")
        assert splits == {"train": sum(r.split == "train" for r in RECORDS), "val": sum(r.split == "val" for r in RECORDS)}
    assert _indexes(root / IMAGES) == _indexes(root / TAXA) == set(KEYWORD_INDEX_FIELDS)


def test_a_shard_left_with_no_points_gets_every_index_before_the_first_write(tmp_path):
    root = tmp_path / "qdrant"
    _half_indexed_shard(root / TAXA, with_points=False)
    with open_store(str(root)) as store:
        store.upsert_taxa("demo", TAXA_LIST, TEXTS, TAXON_VECTORS)  # a write ensures the vector first
        assert store.facet_counts(TAXA, "rank")["species"] > 0
    shard = qe.EdgeShard.load(str(root / TAXA))
    try:
        schema = shard.info().payload_schema
        assert set(schema) == set(KEYWORD_INDEX_FIELDS) and schema["lineage"].points == len(TAXA_LIST)
    finally:
        shard.close()


# --- one process at a time ----------------------------------------------------------------------------

HOLD = """
    import sys
    from index.store import open_store
    store = open_store(sys.argv[1])
    store.ensure_vector("demo", 16)
    print("holding", flush=True)
    sys.stdin.read()
    store.close()
"""


def test_a_store_opened_before_its_folder_existed_cannot_race_to_create_a_shard(tmp_path):
    root = tmp_path / "qdrant"
    with open_store(str(root)) as store:  # nothing there yet: nothing to lock
        holder = _python(HOLD, str(root), stdin=subprocess.PIPE)
        try:
            assert holder.stdout.readline() == "holding\n", holder.stderr.read()
            with pytest.raises(StoreLockedError, match=rf"{root} is in use by another process \(pid {holder.pid}\)"):
                store.ensure_vector("demo", DIM)
            assert store.vector_names(IMAGES) == {}
        finally:
            holder.communicate("", timeout=60)
        assert holder.returncode == 0, holder.stderr
        store.ensure_vector("demo", DIM)  # the other process is done: its shards are loaded, not created again
        assert store.vector_names(IMAGES) == {"demo": DIM}
        store.upsert_images("demo", RECORDS, IMAGE_VECTORS)
        assert store.count(IMAGES) == len(RECORDS)
    assert (root / STORE_LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_the_lock_goes_with_its_process_and_not_with_its_forked_children(tmp_path):
    root = tmp_path / "qdrant"
    root.mkdir()
    code = """
        import os, sys, time
        from index.store import open_store
        store = open_store(sys.argv[1])  # the folder exists: the lock is taken on open
        child = os.fork()
        if child == 0:  # a child that outlives its parent for a while, as a DataLoader worker may
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            time.sleep(60)
            os._exit(0)
        print(child, flush=True)
        time.sleep(60)
    """
    holder = _python(code, str(root))
    child = 0
    try:
        child = int(holder.stdout.readline() or 0)
        assert child, holder.stderr.read()
        with pytest.raises(StoreLockedError, match=f"pid {holder.pid}"):
            open_store(str(root))
        holder.kill()
        holder.wait(timeout=30)
        os.kill(child, 0)  # the forked child still runs
        with open_store(str(root)) as store:
            store.ensure_vector("demo", DIM)
            assert store.vector_names(TAXA) == {"demo": DIM}
    finally:
        holder.kill()
        holder.communicate(timeout=30)
        if child:
            os.kill(child, signal.SIGKILL)


# --- free space ---------------------------------------------------------------------------------------

def test_writes_are_refused_below_the_free_space_margin_and_nothing_is_lost(tmp_path, monkeypatch):
    root = tmp_path / "qdrant"
    with open_store(str(root)) as store:
        store.upsert_images("demo", RECORDS[:10], IMAGE_VECTORS[:10])
        free_mb = shutil.disk_usage(root).free // 2**20
        monkeypatch.setenv(FREE_MARGIN_ENV, str(free_mb + 1024))
        with pytest.raises(StoreFullError, match=rf"{root} is too full to write: .*MB free, but writing needs "
                                                 rf".*\${FREE_MARGIN_ENV}.*nothing was written.*kept"):
            store.upsert_images("demo", RECORDS[10:], IMAGE_VECTORS[10:])
        with pytest.raises(StoreFullError, match="for a new shard"):
            store.upsert_taxa("demo", TAXA_LIST, TEXTS, TAXON_VECTORS)
        assert not (root / TAXA).exists() and store.count(IMAGES) == 10
        monkeypatch.setenv(FREE_MARGIN_ENV, "many")
        with pytest.raises(ValueError, match=f"{FREE_MARGIN_ENV} must be a whole number of megabytes"):
            store.upsert_images("demo", RECORDS[10:], IMAGE_VECTORS[10:])
        monkeypatch.delenv(FREE_MARGIN_ENV)
        store.upsert_images("demo", RECORDS[10:], IMAGE_VECTORS[10:])
    with open_store(str(root)) as store:
        assert store.count(IMAGES) == len(RECORDS)


FILL_DISK = """
    import json, os, sys
    from index.schema import IMAGES
    from index.store import StoreError, open_store
    from tests.index.test_store_contract import DIM, IMAGE_VECTORS, RECORDS
    root, filler = sys.argv[1], sys.argv[2]
    messages = {}
    store = open_store(root)
    store.ensure_vector("demo", DIM, collections=(IMAGES,))
    store.upsert_images("demo", RECORDS[:20], IMAGE_VECTORS[:20])  # in the WAL, not yet flushed
    with open(filler, "wb", buffering=0) as f:  # fill the disk to its last block
        for size in (2**20, 4096):
            try:
                while True:
                    f.write(bytes(size))
            except OSError:
                pass
    for step, write in (("upsert", lambda: store.upsert_images("demo", RECORDS[20:], IMAGE_VECTORS[20:])),
                        ("vector", lambda: store.ensure_vector("tol-tiny", 8, collections=(IMAGES,))),
                        ("flush", store.flush), ("close", store.close)):
        try:
            write()
        except StoreError as e:
            messages[step] = f"{type(e).__name__}: {e}"
    print(json.dumps(messages))
"""


@pytest.fixture
def tiny_disk(tmp_path):
    """A 300 MB tmpfs: room for one new shard; skipped where tests may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_ends_with_a_clear_message_and_keeps_what_was_written(tiny_disk, monkeypatch):
    root, filler = tiny_disk / "qdrant", tiny_disk / "filler"
    monkeypatch.setenv(FREE_MARGIN_ENV, "16")  # the default margin and a new shard need more than 300 MB
    assert shutil.disk_usage(tiny_disk).free > NEW_SHARD_BYTES + 16 * 2**20
    writer = _python(FILL_DISK, str(root), str(filler), stdin=subprocess.DEVNULL)
    out, err = writer.communicate(timeout=300)
    # Without the free-space check the engine's first write into a sparse file kills it with SIGBUS.
    assert writer.returncode == 0, (writer.returncode, err[-3000:])
    messages = json.loads(out)
    assert messages["upsert"].startswith(f"StoreFullError: the disk of the embedded store {root} is too full")
    assert "nothing was written" in messages["upsert"]
    assert messages["vector"].startswith("StoreFullError") and "nothing was written" in messages["vector"]
    # The engine's own writes failed (os error 28), and said so through the store.
    for step in ("flush", "close"):
        assert messages[step].startswith(f"StoreFullError: the disk of the embedded store {root} is too full")
        assert "No space left on device" in messages[step] and "run the build again to resume" in messages[step]
    filler.unlink()
    with open_store(str(root)) as store:
        store.ensure_vector("demo", DIM, collections=(IMAGES,))
        assert store.count(IMAGES) == 20 and store.vector_names(IMAGES) == {"demo": DIM}
        assert store.info(IMAGES).payload_indexes == {f: "keyword" for f in KEYWORD_INDEX_FIELDS}
        hit = store.search(IMAGES, "demo", IMAGE_VECTORS[3], k=1)[0]
        assert hit.id == RECORDS[3].id
