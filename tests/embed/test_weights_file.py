"""`--model NAME:FILE` with a file that is missing or not weights: one line naming it, nothing run or written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from embed.constants import WEIGHTS_FORMS
from embed.models import load_model, resolve_spec
from tests.planted import Planted

REPO = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> dict[str, Path]:
    text = folder / "evil.pt"
    text.write_text("not weights")
    raw_pickle = folder / "raw.pt"
    raw_pickle.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")  # pickle.dumps(1)
    planted = folder / "planted.pt"
    torch.save({"visual.proj": Planted(folder / "planted-code-ran")}, planted)
    foreign = folder / "foreign.pt"
    torch.save({"weight": torch.ones(2)}, foreign)
    return {"text": text, "raw pickle": raw_pickle, "planted": planted, "foreign": foreign}


def test_resolve_spec_refuses_a_file_that_does_not_start_as_weights_do(tmp_path):
    files = _files(tmp_path)
    for name in ("text", "raw pickle"):
        with pytest.raises(ValueError, match=rf"is not a weights file; expected {WEIGHTS_FORMS}$"):
            resolve_spec(f"tol-tiny:{files[name]}")
    assert resolve_spec(f"tol-tiny:{files['foreign']}").pretrained == str(files["foreign"])
    with pytest.raises(FileNotFoundError, match=r"not found; expected tol-tiny:FILE with .*, or tol-tiny:TAG"):
        resolve_spec(f"tol-tiny:{tmp_path / 'missing.pt'}")


def test_weights_that_do_not_load_are_one_value_error_and_run_no_code(tmp_path):
    files = _files(tmp_path)
    with pytest.raises(ValueError, match=r"does not load into tol-tiny \(Weights only load failed"):
        load_model(f"tol-tiny:{files['planted']}")
    assert not (tmp_path / "planted-code-ran").exists()
    with pytest.raises(ValueError, match=r"does not load into tol-tiny \(Error\(s\) in loading state_dict"):
        load_model(f"tol-tiny:{files['foreign']}")


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TOL_")}
    environment.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize(("name", "message"), [
    ("text", "'evil.pt' is not a weights file"),
    ("planted", "the weights file 'planted.pt' does not load into tol-tiny"),
    ("foreign", "the weights file 'foreign.pt' does not load into tol-tiny"),
])
def test_embed_build_names_the_bad_weights_file_in_one_line(tmp_path, name, message):
    files = _files(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = _run("embed", "build", "--model", f"tol-tiny:{files[name].name}", "--store", ":memory:",
                  "--db", ":memory:", "--workers", "0", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert f"build failed: model spec 'tol-tiny:{files[name].name}': {message}" in line
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # and no planted-code-ran


def test_training_names_the_bad_weights_file_in_one_line(tmp_path):
    files = _files(tmp_path)
    (tmp_path / "images").mkdir()
    result = _run("training", "train", "--images", str(tmp_path / "images"), "--out", str(tmp_path / "out"),
                  "--model", f"tol-tiny:{files['text']}", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line == (f"python -m training train: error: model spec 'tol-tiny:{files['text']}': "
                    f"'{files['text']}' is not a weights file; expected {WEIGHTS_FORMS}")
