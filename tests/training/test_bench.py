"""bench/train_throughput.py runs on the CPU with a tiny model (the GPU run is the lead's)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "train_throughput.py"


@pytest.mark.slow
def test_train_throughput_prints_one_json_line_per_result(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH), "--model", "tol-tiny", "--batch-size", "4", "--steps", "3",
                           "--burn-in", "1", "--device", "cpu"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["bench"] == "train_throughput" and result["device"] == "cpu"
    assert (result["model"], result["batch_size"], result["steps"], result["image_size"]) == ("tol-tiny", 4, 3, 64)
    assert result["samples_per_s"] > 0 and result["precision"] == "fp32"
    assert result["loss_first"] > 0 and result["loss_last"] > 0


def _bench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), "--device", "cpu", "--threads", "1", *args],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_bf16_steps_keep_a_finite_loss_and_a_nan_one_fails(tmp_path):
    micro = str(Path(__file__).with_name("micro-clip.json"))
    done = _bench("--model", micro, "--batch-size", "8", "--steps", "20", "--burn-in", "2", "--precision", "bf16",
                  "--lr", "1e-3")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["loss_finite"] is True and result["precision"] == "bf16" and result["fused_adamw"] is True
    assert (result["lr"], result["warmup"]) == (1e-3, 100)
    done = _bench("--model", micro, "--batch-size", "8", "--steps", "3", "--burn-in", "1", "--lr", "1e30",
                  "--warmup", "0")
    assert done.returncode == 1, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1])["loss_finite"] is False


@pytest.mark.slow
def test_the_compiled_step_runs_on_the_cpu():
    """torch.compile on the CPU needs a C++ compiler (inductor); the first step includes compilation."""
    import shutil

    if shutil.which("g++") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on the CPU (inductor) needs a C++ compiler, and none is on PATH")
    micro = str(Path(__file__).with_name("micro-clip.json"))
    done = _bench("--model", micro, "--batch-size", "8", "--steps", "4", "--burn-in", "1", "--compile",
                  timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["compile"] is True and result["loss_finite"] is True and result["samples_per_s"] > 0
