"""Training throughput of a full CLIP step (forward, ClipLoss, backward, AdamW), nanoGPT bench.py style.

Burn-in steps first (compilation, allocator warm-up), then measured steps; one JSON line per result
on stdout with samples/s, peak memory, the loss at the first and last measured step, whether every
loss was finite (the exit status is 1 when one was not) and the seconds the first step took
(with --compile, mostly compilation). The step is training's: `training.train.train_step` (fp32
logits under bf16 autocast, the logit-scale clamp) and `warmup_cosine` with a linear warm-up.

    python bench/train_throughput.py --model ViT-B-16 --batch-size 1024 --precision bf16 \\
        --compile --channels-last                                    # on a GPU, synthetic 224 px data
    python bench/train_throughput.py --model ViT-B-16 --catalog C.csv --images DIR --workers 16   # real JPEGs
    python bench/train_throughput.py --model tol-tiny --batch-size 8 --steps 3 --burn-in 1      # CPU smoke

Synthetic data is a fixed set of random images and captions cycled every `--distinct` batches, so the loss
goes down when the step is right. Real data goes through training.data's loader (decode, augment).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from common import git_commit  # bench/ is the script's folder, first on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

logger = logging.getLogger("bench.train_throughput")

DEFAULT_MODEL = "ViT-B-16"
DEFAULT_BATCH_SIZE = 1024
DEFAULT_BURN_IN = 5
DEFAULT_STEPS = 20
DEFAULT_DISTINCT = 4  # synthetic batches cycled through
DEFAULT_WARMUP = 100  # steps; longer than a benchmark, so its lr stays low: the loss must stay finite
EXIT_NOT_FINITE = 1
BYTES_PER_GB = 1e9


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="open_clip spec or model-config JSON file, trained from random init")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default=None, help="default bf16 on CUDA")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no-fused-adamw", dest="fused_adamw", action="store_false",
                        help="AdamW's foreach kernels instead of the fused one (training uses fused, on CUDA and CPU)")
    parser.add_argument("--fused-adamw", action="store_true", default=True, help=argparse.SUPPRESS)  # the default
    parser.add_argument("--channels-last", action="store_true", help="NHWC images and weights (CUDA)")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--burn-in", type=int, default=DEFAULT_BURN_IN)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="measured steps")
    parser.add_argument("--distinct", type=int, default=DEFAULT_DISTINCT, help="synthetic batches cycled")
    parser.add_argument("--catalog", help="real data: a collection's CSV (default: synthetic data)")
    parser.add_argument("--images", help="real data: the collection's images root")
    parser.add_argument("--workers", type=int, default=8, help="data loader workers for real data")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="linear warm-up steps, as training")
    parser.add_argument("--grad-clip", type=float, help="clip the gradient norm to this, as training's --grad-clip")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser



def main(argv: list[str] | None = None) -> dict:
    args = create_parser().parse_args(argv)
    import open_clip
    import torch

    from embed.models import load_model
    from taxonomy.constants import TEXT_TYPES
    from training.data import collection_data, read_split
    from training.distributed import DistInfo
    from training.logger import setup_logging
    from training.constants import ADAM_BETAS, ADAM_EPS
    from training.main import _autocast, _param_groups, model_spec
    from training.scheduler import warmup_cosine
    from training.text import pick
    from training.train import train_step

    setup_logging()
    use_cuda = torch.cuda.is_available() if args.device == "auto" else args.device == "cuda"
    device = torch.device("cuda" if use_cuda else "cpu")
    precision = args.precision or ("bf16" if use_cuda else "fp32")
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    if use_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    loaded = load_model(model_spec(args.model), device=str(device), weights=False)
    model = loaded.model
    model.train()
    if args.grad_checkpointing:
        model.set_grad_checkpointing(True)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(_param_groups(model, 0.2), lr=args.lr, betas=ADAM_BETAS, eps=ADAM_EPS,
                                  fused=args.fused_adamw)
    step_model = torch.compile(model) if args.compile else model
    loss_fn = open_clip.ClipLoss()
    autocast = _autocast(device, precision)
    size = loaded.image_size
    total = args.burn_in + args.steps
    scheduler = warmup_cosine(optimizer, args.lr, args.warmup, max(total, args.warmup))

    if args.catalog or args.images:
        info = DistInfo(0, 0, 1, device)
        root, entries = read_split(args.catalog, args.images, "train")
        data = collection_data(root, entries, loaded.train_preprocess, loaded.tokenizer, info, args.batch_size,
                               args.seed, epochs=total // max(1, len(entries) // args.batch_size) + 1,
                               workers=args.workers)
        source = iter(data.batches(0, 0))
        batches = ((images, pick(tokens, TEXT_TYPES[i % len(TEXT_TYPES)])) for i, (images, tokens) in
                   enumerate(source))
        data_name = f"{args.images} ({len(entries)} images)"
    else:
        generator = torch.Generator().manual_seed(args.seed)
        context = loaded.tokenizer(["x"]).shape[1]
        fixed = [(torch.randn(args.batch_size, 3, size, size, generator=generator),
                  torch.randint(1, 49000, (args.batch_size, context), generator=generator))
                 for _ in range(args.distinct)]
        batches = (fixed[i % args.distinct] for i in range(total))
        data_name = "synthetic"

    losses: list[float] = []
    finite = torch.ones((), dtype=torch.bool, device=device)  # AND of every step's, read once at the end
    started = 0.0
    first_step_s = 0.0
    if use_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    for step, (images, texts) in enumerate(batches):
        if step == total:
            break
        if step == args.burn_in:
            if use_cuda:
                torch.cuda.synchronize(device)
            started = time.perf_counter()
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        texts = texts.to(device, non_blocking=True)
        scheduler(step)
        step_started = time.perf_counter()
        loss = train_step(step_model, model, images, texts, loss_fn, optimizer, autocast, args.grad_clip)
        finite &= torch.isfinite(loss.detach())
        if step < args.burn_in:
            logger.info("burn-in step %d loss %.4f", step, loss.item())
            if step == 0:
                first_step_s = time.perf_counter() - step_started
        elif step == args.burn_in or step == total - 1:
            losses.append(loss.item())  # syncs only at the first and last measured step
    if use_cuda:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / BYTES_PER_GB if use_cuda else None
    result = {
        "bench": "train_throughput", "device": torch.cuda.get_device_name(device) if use_cuda else "cpu",
        "commit": git_commit(), "model": args.model, "image_size": size, "batch_size": args.batch_size,
        "precision": precision, "compile": args.compile, "fused_adamw": args.fused_adamw,
        "channels_last": args.channels_last, "grad_checkpointing": args.grad_checkpointing, "data": data_name,
        "steps": args.steps, "samples_per_s": round(args.steps * args.batch_size / elapsed, 1),
        "step_ms": round(1000 * elapsed / args.steps, 1), "peak_memory_gb": round(peak, 2) if peak else None,
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4), "loss_finite": bool(finite.item()),
        "lr": args.lr, "warmup": args.warmup, "first_step_s": round(first_step_s, 1),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["loss_finite"] else EXIT_NOT_FINITE)
