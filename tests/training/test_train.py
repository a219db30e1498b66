"""End-to-end training runs on a tiny collection: smoke, exact resume, DDP = one process, shards, model folder."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from taxonomy import RANK_LABELS
from training.constants import LOG_COLUMNS

from tests.collections import TestCollection

pytestmark = pytest.mark.slow

EPOCHS = 2
STEPS_PER_EPOCH = 48 // 8  # 48 train images, global batch 8


def _args(collection: TestCollection, out: Path, *extra: str) -> list[str]:
    return ["train", "--catalog", str(collection.catalog), "--images", str(collection.images), "--model", "tol-tiny",
            "--epochs", str(EPOCHS), "--batch-size", "8", "--lr", "5e-4", "--text-type", "mixed",
            "--log-every", "1", "--workers", "1", "--out", str(out), *extra]


def _log(out: Path) -> list[dict[str, str]]:
    with (out / "train_log.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _losses(rows: list[dict[str, str]]) -> np.ndarray:
    return np.array([float(row["loss"]) for row in rows])


@pytest.fixture(scope="module")
def run_a(training_collection, tmp_path_factory):
    """The uninterrupted reference run, with a zero-shot evaluation after each epoch."""
    from training.main import main

    out = tmp_path_factory.mktemp("run_a")
    result = main(_args(training_collection, out, "--zeroshot-every", "1"))
    return out, result


def test_smoke_run_logs_checkpoints_and_evaluates_every_epoch(run_a):
    out, result = run_a
    rows = _log(out)
    assert list(rows[0]) == list(LOG_COLUMNS)
    assert [int(row["step"]) for row in rows] == list(range(EPOCHS * STEPS_PER_EPOCH))
    assert all(np.isfinite(_losses(rows))) and float(rows[-1]["memory_mb"]) > 0
    assert result.steps == EPOCHS * STEPS_PER_EPOCH
    metrics = json.loads((out / "metrics.json").read_text())
    assert [entry["epoch"] for entry in metrics] == list(range(EPOCHS))
    for entry in metrics:
        assert set(entry["zero_shot"]["top1"]) == set(RANK_LABELS)
        assert entry["zero_shot"]["text_type"] == "taxon_com" and entry["zero_shot"]["images"] == 12
        assert entry["zero_shot"]["chance"]["species"] == pytest.approx(1 / 6)
        assert entry["zero_shot"]["majority"]["kingdom"] == pytest.approx(8 / 12)
        assert all(0.0 <= v <= 1.0 for v in entry["zero_shot"]["top1"].values())
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=False)
    assert (state["step"], state["epoch"], state["step_in_epoch"]) == (12, 2, 0)
    assert state["model_cfg"]["embed_dim"] == 128 and state["taxonomy_version"]["taxa"] == 6
    assert set(state["config"]) >= {"lr", "batch_size", "text_type"} and len(state["rng"]) == 1


def test_the_model_folder_loads_in_embed_with_no_other_argument(run_a):
    from embed.encoder import Encoder
    from embed.models import load_model

    out, result = run_a
    assert {p.name for p in result.model_dir.iterdir()} >= {"open_clip_config.json", "open_clip_model.safetensors"}
    loaded = load_model(str(result.model_dir))
    assert loaded.image_size == 64
    trained = torch.load(out / "checkpoints" / "latest.pt", weights_only=False)["model"]
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, trained[key]), key
    encoder = Encoder(loaded)
    texts = encoder.encode_texts(["a photo of Pica hudsonia.", "a photo of Zea mays."])
    assert texts.shape == (2, 128) and np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


def test_a_killed_run_resumed_repeats_the_uninterrupted_loss_curve(run_a, training_collection, tmp_path):
    """SIGKILL after a checkpoint; rows logged after it are dropped and recomputed on --resume."""
    from training.main import main

    reference, _ = run_a
    out = tmp_path / "run_b"
    args = _args(training_collection, out, "--zeroshot-every", "0", "--save-every-steps", "2")
    process = subprocess.Popen([sys.executable, "-m", "training", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    latest = out / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        if latest.is_file() and (out / "train_log.csv").is_file() and len(_log(out)) >= 3:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    killed = process.returncode == -signal.SIGKILL
    stopped_at = torch.load(latest, weights_only=False)["step"]
    main(_args(training_collection, out, "--zeroshot-every", "0", "--resume"))
    a, b = _log(reference), _log(out)
    assert [row["step"] for row in b] == [row["step"] for row in a]
    assert [row["text_type"] for row in b] == [row["text_type"] for row in a]
    # The first half ran in another process: CPU kernels may sum in another order there (1e-5 seen).
    np.testing.assert_allclose(_losses(b), _losses(a), rtol=0, atol=1e-4)
    assert float(a[0]["loss"]) > float(a[-1]["loss"])  # and it learns something
    assert killed and stopped_at < EPOCHS * STEPS_PER_EPOCH, "the run ended before it could be killed"


def test_two_gloo_processes_match_one_process_and_draw_the_same_text_types(run_a, training_collection, tmp_path):
    """2 processes x batch 4 = 1 process x batch 8: the same global batches (see training.data)."""
    reference, _ = run_a
    out = tmp_path / "ddp"
    args = _args(training_collection, out, "--zeroshot-every", "0", "--max-steps", "4")
    args[args.index("--batch-size") + 1] = "4"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "training", *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _log(out)
    assert len(rows) == 4
    for row in rows:  # one text type per process, and they agree
        types = row["text_type"].split("|")
        assert len(types) == 2 and types[0] == types[1]
    a = _log(reference)[:4]
    assert [row["text_type"].split("|")[0] for row in rows] == [row["text_type"] for row in a]
    np.testing.assert_allclose(_losses(rows), _losses(a), rtol=0, atol=1e-4)
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=False)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert (state["step"], state["epoch"], state["step_in_epoch"]) == (4, 0, 4)  # --max-steps stops mid-epoch


def test_training_from_shards(training_collection, tmp_path):
    from training.__main__ import main as cli

    catalog, images = training_collection.catalog, training_collection.images
    cli(["shards", "--catalog", str(catalog), "--images", str(images), "--out", str(tmp_path / "shards"),
         "--per-shard", "16"])
    spec = str(tmp_path / "shards" / "shard-{000000..000002}.tar")
    out = tmp_path / "run"
    cli(["train", "--shards", spec, "--model", "tol-tiny", "--batch-size", "8", "--max-steps", "3",
         "--log-every", "1", "--workers", "2", "--out", str(out), "--val-catalog", str(catalog),
         "--val-images", str(images), "--zeroshot-every", "0"])
    rows = _log(out)
    assert [row["step"] for row in rows] == ["0", "1", "2"] and all(np.isfinite(_losses(rows)))
    assert (out / "model" / "open_clip_model.safetensors").is_file()
