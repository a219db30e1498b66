"""The train step's numerics: fp32 loss under bf16 autocast, the clamped temperature, a NaN run stopped,
and `--compile` (plumbing always; the compiled loss curve where torch.compile can build CPU kernels)."""
from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from training.constants import LOGIT_SCALE_MAX

MICRO_CLIP = str(Path(__file__).with_name("micro-clip.json"))


def _args(collection, out: Path, *extra: str) -> list[str]:
    return ["train", "--catalog", str(collection.catalog), "--images", str(collection.images),
            "--model", MICRO_CLIP, "--batch-size", "8", "--text-type", "taxon_com", "--log-every", "1",
            "--workers", "0", "--threads", "1", "--zeroshot-every", "0", "--device", "cpu", "--out", str(out),
            *extra]


def _log(out: Path) -> list[dict[str, str]]:
    with (out / "train_log.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_loss_is_computed_in_fp32_under_bf16_autocast():
    import open_clip

    from training.train import contrastive_loss

    generator = torch.Generator().manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(256, 64, generator=generator), dim=-1)
    text = torch.nn.functional.normalize(image + 0.3 * torch.randn(256, 64, generator=generator), dim=-1)
    scale = torch.tensor(LOGIT_SCALE_MAX)
    reference = open_clip.ClipLoss()(image, text, scale).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = contrastive_loss(open_clip.ClipLoss(), image, text, scale)
        in_bf16 = open_clip.ClipLoss()(image, text, scale).item()  # what the loop did before: bf16 logits
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference, rel=1e-5)
    assert in_bf16 != pytest.approx(reference, rel=1e-3)  # logits near 100 are 0.5 apart in bf16


class _CloseFeatures(torch.nn.Module):
    """Fixed features, each nearest its own caption but barely (cosine 0.995 to the others): the loss
    pushes the temperature up at every step, past 100 and, unclamped, to an overflow within 200 steps."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("features", torch.nn.functional.normalize(0.3 * torch.eye(16) + 1.0, dim=-1))
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, images, texts):
        features = self.features * images.sum() / images.sum()  # through the autocast region, as a tower
        return features, features, self.logit_scale.exp()


def test_a_high_lr_at_bf16_keeps_the_temperature_clamped_and_the_loss_finite():
    import open_clip

    from training.distributed import DistInfo
    from training.params import TrainConfig
    from training.train import Run, train_one_epoch

    torch.manual_seed(0)
    module = _CloseFeatures()
    steps = 200
    config = TrainConfig(out="unused", batch_size=16, log_every=1000, max_steps=steps)
    run = Run(config, DistInfo(0, 0, 1, torch.device("cpu")), module, steps,
              lambda: torch.autocast("cpu", dtype=torch.bfloat16), False, None, lambda *a: None)
    eye = torch.eye(16)
    batches = iter([(eye, torch.zeros(16, 5, 4, dtype=torch.long))] * steps)
    optimizer = torch.optim.AdamW(module.parameters(), lr=0.5)
    losses = []
    loss_fn = open_clip.ClipLoss()

    def recording(*args):
        loss = loss_fn(*args)
        losses.append(loss.item())
        return loss

    train_one_epoch(module, batches, recording, optimizer, lambda step: 0.5, run, epoch=0)
    assert len(losses) == steps and all(math.isfinite(loss) for loss in losses)
    assert module.logit_scale.item() == pytest.approx(math.log(LOGIT_SCALE_MAX))  # pushed up, held at 100


def test_a_run_whose_loss_turns_nan_stops_before_checkpointing_it(training_collection, tmp_path):
    from training.main import main

    out = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"step \d+: the loss is nan"):
        main(_args(training_collection, out, "--precision", "bf16", "--lr", "1e30", "--warmup", "0",
                   "--max-steps", "4"))
    assert not (out / "checkpoints" / "latest.pt").exists()
    rows = _log(out)
    assert all(math.isfinite(float(row["loss"])) for row in rows)  # the NaN step is not logged either


def test_compile_flag_compiles_the_model_the_loop_calls(training_collection, tmp_path, monkeypatch):
    """The plumbing, with torch.compile replaced: runs on any CPU, in seconds."""
    from training.main import main

    compiled = []

    def fake_compile(model, **kwargs):
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    main(_args(training_collection, tmp_path / "eager", "--max-steps", "2"))
    assert compiled == []
    main(_args(training_collection, tmp_path / "compiled", "--max-steps", "2", "--compile"))
    assert len(compiled) == 1 and hasattr(compiled[0], "logit_scale")
    assert len(_log(tmp_path / "compiled")) == 2


def _cpu_inductor_unavailable() -> str | None:
    if shutil.which("g++") is None and shutil.which("gcc") is None and shutil.which("clang++") is None:
        return "torch.compile on the CPU (inductor) needs a C++ compiler, and none is on PATH"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_cpu_inductor_unavailable() is not None, reason=str(_cpu_inductor_unavailable()))
def test_compiled_training_follows_the_eager_loss_curve(training_collection, tmp_path):
    from training.main import main

    steps = ["--max-steps", "4", "--lr", "1e-3", "--warmup", "0", "--seed", "3"]
    main(_args(training_collection, tmp_path / "eager", *steps))
    main(_args(training_collection, tmp_path / "compiled", *steps, "--compile"))
    eager = np.array([float(row["loss"]) for row in _log(tmp_path / "eager")])
    compiled = np.array([float(row["loss"]) for row in _log(tmp_path / "compiled")])
    assert len(eager) == len(compiled) == 4
    assert eager[-1] < eager[0]  # the run learns something, so that the comparison means something
    np.testing.assert_allclose(compiled, eager, rtol=1e-3, atol=1e-4)
    state = torch.load(tmp_path / "compiled" / "checkpoints" / "latest.pt", weights_only=False)
    assert not any(key.startswith("_orig_mod.") for key in state["model"])  # the plain model's weights
