"""A `--device` this machine lacks is one line naming it and the devices there are, before anything is touched."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from embed.device import available_devices, check_device

REPO = Path(__file__).resolve().parents[2]
GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
MISSING_GPU = f"cuda:{GPUS + 7}"


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TOL_")}
    environment.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    return line


def test_check_device_lists_what_is_there():
    assert available_devices() == ["cpu", *(f"cuda:{i}" for i in range(GPUS))]
    check_device("cpu")
    with pytest.raises(ValueError, match=rf"^--device {MISSING_GPU}: this machine has .*; available: cpu"):
        check_device(MISSING_GPU)
    with pytest.raises(ValueError, match=r"^--device 'tpu': expected cpu, cuda or cuda:N$"):
        check_device("tpu")


@pytest.mark.parametrize("command", [
    ("embed", "search", "--text", "a photo of Pica hudsonia."),
    ("embed", "predict", "photo.jpg"),
    ("embed", "build"),
])
def test_embed_commands_refuse_a_missing_gpu_in_one_line(tmp_path, command):
    catalog = tmp_path / "catalog.db"
    catalog.write_bytes(b"")  # an existing (empty) catalog: left as it is
    result = _run(*command, "--model", "tol-tiny", "--device", MISSING_GPU, "--store", str(tmp_path / "qdrant"),
                  "--db", str(catalog), cwd=tmp_path)
    line = _one_line(result)
    assert f"failed: --device {MISSING_GPU}: this machine has " in line
    assert line.endswith(f"available: {', '.join(available_devices())}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.db"] and catalog.read_bytes() == b""


@pytest.mark.skipif(GPUS > 0, reason="--device cuda is there on this machine")
def test_training_refuses_cuda_on_a_machine_without_one(tmp_path):
    (tmp_path / "images").mkdir()
    train = _run("training", "train", "--images", str(tmp_path / "images"), "--out", str(tmp_path / "out"),
                 "--device", "cuda", cwd=tmp_path)
    assert _one_line(train) == ("python -m training train: error: --device cuda: this machine has no CUDA device; "
                                "available: cpu")
    evaluation = _run("training", "eval", "--model", "tol-tiny", "--images", str(tmp_path / "images"),
                      "--device", "cuda", cwd=tmp_path)
    assert _one_line(evaluation).endswith("--device cuda: this machine has no CUDA device; available: cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]
