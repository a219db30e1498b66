"""`embed search`, `predict` and `status` on an embedded store while `embed build` writes it (real processes)."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embed.build import BuildOptions, run_build
from index.constants import STORE_LOCK_FILE
from index.schema import IMAGES
from index.store import open_store
from tests.collections import make_collection

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 180
SECOND_BUILD_IMAGES = 1600  # at batches of 2, still writing when three CLIs have started beside it
OVERLAP_S = 2  # the CLIs start while the build writes; then the build is paused so that it holds the store
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _embed(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "embed", *args], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _held(root: Path) -> bool:
    fd = os.open(root / STORE_LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@pytest.mark.slow
def test_search_predict_and_status_answer_while_a_build_runs(tmp_path, tiny):
    first = make_collection(tmp_path / "first", per_species=2, size=32)
    store, db = tmp_path / "qdrant", str(tmp_path / "catalog.db")
    run_build(BuildOptions(catalog=str(first.catalog), images=str(first.images), model="tol-tiny", store=str(store),
                           db=db, workers=0), loaded=tiny)
    with open_store(str(store), read_only=True) as reader:
        before = reader.count(IMAGES)
    second = make_collection(tmp_path / "second", per_species=SECOND_BUILD_IMAGES, species=1, size=32, seed=1)
    build = subprocess.Popen(
        [sys.executable, "-m", "embed", "build", "--catalog", str(second.catalog), "--images", str(second.images),
         "--model", "tol-tiny", "--store", str(store), "--db", db, "--batch-size", "2", "--workers", "1"],
        cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_S
        while not (_held(store) and (store / STORE_LOCK_FILE).read_text().startswith(str(build.pid))):
            assert build.poll() is None, build.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the build did not open the store in time"
            time.sleep(0.05)
        common = ["--model", "tol-tiny", "--store", str(store), "--db", db]
        commands = [_embed("search", "--text", "a photo of Pica hudsonia.", "--k", "3", "--format", "json", *common),
                    _embed("predict", str(first.images / first.paths[0]), "--k", "2", "--format", "csv", *common),
                    _embed("status", "--format", "json", *common)]
        time.sleep(OVERLAP_S)
        assert build.poll() is None, "the build ended before the readers ran: make it longer"
        build.send_signal(signal.SIGSTOP)  # a faster build must not end before the readers answer
        try:
            (search, _), (predict, _), (status, _) = outputs = [c.communicate(timeout=WAIT_S) for c in commands]
            assert _held(store)
        finally:
            build.send_signal(signal.SIGCONT)
        assert [c.returncode for c in commands] == [0, 0, 0], [err[-2000:] for _, err in outputs]
        assert len(json.loads(search)) == 3
        assert len(predict.splitlines()) == 3  # header + 2 rows
        assert json.loads(status)
        assert build.wait(timeout=WAIT_S) == 0, build.stderr.read()[-3000:]
    finally:
        build.kill()
        build.stderr.close()
    with open_store(str(store), read_only=True) as reader:
        # Ids follow the path inside a collection (SPEC §3): the paths both collections share are one point.
        assert before == len(first.paths)
        assert reader.count(IMAGES) == len(set(first.paths) | set(second.paths))
