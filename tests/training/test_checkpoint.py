"""Checkpoints load with weights_only=True: a planted, old or foreign `latest.pt` is refused, and runs nothing."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from training.constants import CHECKPOINT_KEYS
from tests.planted import Planted

REPO = Path(__file__).resolve().parents[2]


def _state(**changes: object) -> dict[str, object]:
    state: dict[str, object] = {key: 0 for key in CHECKPOINT_KEYS}
    state.update(model={"weight": torch.ones(2)}, optimizer={"state": {}, "param_groups": []}, rng=[rng_state()],
                 config={"lr": 1e-3}, **changes)
    return state


def _draws() -> tuple[float, ...]:
    return random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.standard_normal()), \
        float(torch.rand(1))


def test_random_state_survives_a_weights_only_round_trip(tmp_path):
    random.gauss(0, 1), np.random.standard_normal()  # a cached Gaussian in both generators
    saved = save_checkpoint(_state(), tmp_path)
    expected = _draws()
    set_rng_state(load_checkpoint(saved)["rng"][0])
    assert _draws() == expected


def test_an_old_checkpoint_with_numpy_arrays_is_refused(tmp_path):
    path = tmp_path / "latest.pt"
    torch.save({**_state(), "rng": [{"numpy": np.random.get_state(), "python": random.getstate()}]}, path)
    with pytest.raises(CheckpointError, match=r"refused: it holds more than tensors and plain data .*numpy"):
        load_checkpoint(path)


@pytest.mark.parametrize(("content", "reason"), [
    ({"weight": torch.ones(2)}, "it has no format"),  # a bare state dict of another program
    ({**_state(), "format": 1}, "its format is 1"),
    ([torch.ones(2)], "it holds a list"),
])
def test_a_foreign_torch_file_is_refused(tmp_path, content, reason):
    path = tmp_path / "latest.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=reason):
        load_checkpoint(path)


def test_a_file_that_is_not_a_torch_file_is_refused(tmp_path):
    path = tmp_path / "latest.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a torch file"):
        load_checkpoint(path)


def test_resume_from_a_planted_checkpoint_is_refused_and_runs_nothing(training_collection, tmp_path):
    catalog, images = training_collection.catalog, training_collection.images
    out, marker = tmp_path / "run", tmp_path / "planted-code-ran"
    latest = out / "checkpoints" / "latest.pt"
    latest.parent.mkdir(parents=True)
    torch.save({**_state(), "model": Planted(marker)}, latest)
    planted = latest.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "training", "train", "--catalog", str(catalog), "--images", str(images),
         "--model", "tol-tiny", "--out", str(out), "--resume"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"python -m training train: error: checkpoint {latest} refused: it holds more than "
                           "tensors and plain data")
    assert "start afresh without --resume" in line
    assert not marker.exists()
    assert latest.read_bytes() == planted
