"""`python -m demo`: the whole chain on a small collection, then again: every step is skipped."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from demo.__main__ import parse_args

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--species", "40", "--per-species", "6", "--size", "64", "--epochs", "1", "--no-ui"]


def _demo(workdir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("TOL_STORE", "TOL_DB", "TOL_MODEL"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "demo", "--workdir", str(workdir), *SMALL],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)


def test_chain_arguments_are_checked():
    with pytest.raises(SystemExit):
        parse_args(["--species", "0"])
    args = parse_args(["--workdir", "w", "--no-ui", "--port", "9000"])
    assert (args.command, args.serve, args.port, str(args.workdir)) == (None, False, 9000, "w")


@pytest.mark.slow
def test_whole_chain_then_rerun_skips_every_step(tmp_path):
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    for step in ("1/5", "2/5", "3/5", "4/5", "5/5"):
        assert f"== {step}" in first.stderr
    assert (tmp_path / "models" / "demo" / "open_clip_model.safetensors").is_file()
    assert (tmp_path / "qdrant" / "images").is_dir() and (tmp_path / "catalog.db").is_file()
    assert "| kingdom | phylum | class | order | family | genus | species |" in first.stdout
    assert "TOL_MODEL=" in first.stderr and "streamlit run ui/app.py" in first.stderr

    second = _demo(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "already there for these settings" in second.stderr
    assert "already trained" in second.stderr
    assert "images: 0 embedded" in second.stdout
