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
