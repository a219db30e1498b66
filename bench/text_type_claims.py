"""BioCLIP's Table 5 on the demo benchmark: which training text generalises to unseen species?

Trains one model per training text type (common, scientific, taxonomic, taxon_com, mixed) with the
same budget, seed and initialisation, through `training.main.main([...])`, on the demo collection's
`train` split; evaluates each on the `unseen` split (whole species never shown in training, whose
genus is) under every test text type, next to the untrained model as a floor; and writes:

  DOCS/STEM.md   Table 5's shape (rows: training type, columns: test type, cells: zero-shot top-1 at
                 species / genus), one- and five-shot SimpleShot, the robustness summary and a verdict
                 on each claim with its numbers;
  DOCS/STEM.csv  every number, tidy (training.report's columns; `model` = training text type);
  DOCS/STEM.png  accuracy per rank at the default test type, the depth of species mistakes, and the
                 species top-1 heatmap (training type x test type).

One JSON line per cell goes to stdout (device, commit, batch size, ...); messages go to stderr.

    .venv/bin/python bench/text_type_claims.py                      # CPU: the docs/claims.* files
    python bench/text_type_claims.py --device cuda --species 300 --per-species 20 --size 128 \\
        --epochs 40 --batch-size 256 --lr 2e-3 --stem claims_gpu    # larger, on a GPU

Work files (collection, runs) go to --out and are reused when their settings match (--retrain redoes
the training). On a small shared CPU, torch runs one thread (--threads): two OpenMP threads fighting
other processes for two cores made a training step seven times slower here (5.7 s against 0.77 s).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taxonomy import DEFAULT_TEST_TEXT_TYPE, MIXED, TEXT_TYPES, Rank  # noqa: E402
from training.evaluate import ModelEvaluation, parse_ranks  # noqa: E402

from common import git_commit  # bench/ is the script's folder, first on sys.path

logger = logging.getLogger("bench.text_type_claims")

TRAIN_TYPES: tuple[str, ...] = ("common", "scientific", "taxonomic", "taxon_com", MIXED)  # Table 5's rows
TEST_TYPES: tuple[str, ...] = ("common", "scientific", "taxonomic", "sci_com", "taxon_com")  # its columns
FLOOR = "untrained"  # the random-init model, evaluated as a floor
UNSEEN_SPLIT = "unseen"
TRAIN_SPLIT = "train"
CELL_RANKS = (Rank.SPECIES, Rank.GENUS)
SHOTS = (0, 1, 5)
STAMP_FILE = "bench_settings.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_argument_group("demo collection")
    data.add_argument("--species", type=int, default=100, help="species in the demo collection (a tenth unseen)")
    data.add_argument("--per-species", type=int, default=10, help="pictures per species")
    data.add_argument("--size", type=int, default=64, help="picture side in pixels (tol-tiny reads 64)")
    train = parser.add_argument_group("training (the same for every text type)")
    train.add_argument("--model", default="tol-tiny", help="open_clip spec trained from its initial weights")
    train.add_argument("--epochs", type=int, default=8)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--wd", type=float, default=0.2)
    train.add_argument("--warmup", type=int, default=20, help="steps, capped by training at 10%% of the run")
    train.add_argument("--seed", type=int, default=0, help="collection, training and few-shot folds")
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    train.add_argument("--workers", type=int, default=0, help="data loader workers")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    train.add_argument("--train-types", default=",".join(TRAIN_TYPES), help="comma-separated Table 5 rows")
    train.add_argument("--retrain", action="store_true", help="train again even when a matching run exists")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--test-types", default=",".join(TEST_TYPES), help="comma-separated Table 5 columns")
    evaluation.add_argument("--folds", type=int, default=5, help="few-shot folds")
    evaluation.add_argument("--ranks", default="all",
                            help="zero-shot ranks (comma-separated or all); Table 5 needs genus,species, the "
                                 "per-rank plot all; each rank's classes cost 81 template texts apiece")
    output = parser.add_argument_group("output")
    output.add_argument("--out", default="var/claims", help="work folder: collection and training runs")
    output.add_argument("--docs", default="docs", help="where STEM.md, STEM.csv and STEM.png go")
    output.add_argument("--stem", default="claims", help="file name stem of the outputs")
    args = parser.parse_args(argv)
    args.train_types = tuple(t.strip() for t in args.train_types.split(",") if t.strip())
    args.test_types = tuple(t.strip() for t in args.test_types.split(",") if t.strip())
    for name, chosen, allowed in (("--train-types", args.train_types, (*TEXT_TYPES, MIXED)),
                                  ("--test-types", args.test_types, TEXT_TYPES)):
        bad = [t for t in chosen if t not in allowed]
        if bad or not chosen:
            parser.error(f"{name}: {', '.join(bad) or 'none given'}; expected some of {', '.join(allowed)}")
    try:
        args.ranks = parse_ranks(args.ranks)
    except ValueError as e:
        parser.error(str(e))
    if not set(CELL_RANKS) <= set(args.ranks):
        parser.error("--ranks must include genus and species: Table 5's cells")
    for name in ("species", "per_species", "epochs", "batch_size", "folds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args



def _read_stamp(folder: Path) -> dict:
    stamp = folder / STAMP_FILE
    return json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() else {}


def _stamp_matches(folder: Path, settings: dict) -> bool:
    """The work in `folder` was done with these settings (the stamp may also hold its seconds)."""
    stamp = _read_stamp(folder)
    return bool(stamp) and all(stamp.get(key) == value for key, value in settings.items())


def _write_stamp(folder: Path, settings: dict) -> None:
    (folder / STAMP_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")


# --- the pipeline ---------------------------------------------------------------------------------


def make_demo(args: argparse.Namespace) -> tuple[Path, Path, float]:
    """The demo collection under OUT/collection (catalog, images, drawing seconds), drawn again only when
    its settings changed."""
    from demo.collection import make_collection
    from demo.constants import CATALOG_NAME, IMAGES_DIR

    folder = Path(args.out) / "collection"
    settings = {"species": args.species, "per_species": args.per_species, "size": args.size, "seed": args.seed}
    if _stamp_matches(folder, settings) and (folder / CATALOG_NAME).is_file():
        seconds = float(_read_stamp(folder).get("seconds", 0.0))
        logger.info("reusing the demo collection in %s (drawn in %.0f s)", folder, seconds)
        return folder / CATALOG_NAME, folder / IMAGES_DIR, seconds
    started = time.perf_counter()
    paths = make_collection(folder, args.species, args.per_species, args.size, args.seed)
    seconds = time.perf_counter() - started
    _write_stamp(folder, {**settings, "seconds": round(seconds, 1)})
    logger.info("demo collection drawn in %.0f s", seconds)
    return paths.catalog, paths.images, seconds


def train_argv(args: argparse.Namespace, catalog: Path, images: Path, text_type: str, out: Path) -> list[str]:
    return ["train", "--catalog", str(catalog), "--images", str(images), "--split", TRAIN_SPLIT,
            "--model", args.model, "--text-type", text_type, "--epochs", str(args.epochs),
            "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--wd", str(args.wd),
            "--warmup", str(args.warmup), "--seed", str(args.seed), "--device", args.device,
            "--workers", str(args.workers), "--zeroshot-every", "0", "--out", str(out)]


def train_all(args: argparse.Namespace, catalog: Path, images: Path) -> dict[str, tuple[Path, float]]:
    """One run per training text type: the model folder and its training seconds (from the stamp when reused)."""
    from training.constants import MODEL_DIR
    from training.main import main as train

    runs: dict[str, tuple[Path, float]] = {}
    for text_type in args.train_types:
        out = Path(args.out) / "runs" / text_type
        argv = train_argv(args, catalog, images, text_type, out)
        settings = {"argv": argv}
        model_dir = out / MODEL_DIR
        if not args.retrain and _stamp_matches(out, settings) and model_dir.is_dir():
            seconds = float(_read_stamp(out).get("seconds", 0.0))
            logger.info("reusing the %s run in %s (trained in %.0f s)", text_type, out, seconds)
            runs[text_type] = (model_dir, seconds)
            continue
        logger.info("training on %s text: python -m training %s", text_type, shlex.join(argv))
        started = time.perf_counter()
        result = train(argv)
        seconds = time.perf_counter() - started
        _write_stamp(out, {**settings, "seconds": round(seconds, 1)})
        logger.info("%s: %d steps in %.0f s", text_type, result.steps, seconds)
        runs[text_type] = (result.model_dir, seconds)
    return runs


def evaluate_all(args: argparse.Namespace, catalog: Path, images: Path,
                 runs: dict[str, tuple[Path, float]]) -> list[ModelEvaluation]:
    """Every trained model, and the untrained one, on the unseen species under every test text type."""
    from embed.encoder import Encoder
    from embed.models import load_model
    from training.data import read_split
    from training.evaluate import embed_collection, evaluate_embeddings

    root, entries = read_split(str(catalog), str(images), UNSEEN_SPLIT)
    truth = [entry.lineage for entry in entries]
    logger.info("unseen split: %d images of %d species", len(entries), len({t.key() for t in truth}))
    specs = [(FLOOR, args.model)] + [(text_type, str(model_dir)) for text_type, (model_dir, _) in runs.items()]
    results = []
    for label, spec in specs:
        started = time.perf_counter()
        encoder = Encoder(load_model(spec, device=args.device))
        embeddings = embed_collection(encoder, root, entries, args.workers)
        results.append(evaluate_embeddings(encoder, label, embeddings, truth, text_types=args.test_types,
                                           shots=SHOTS, folds=args.folds, seed=args.seed, split=UNSEEN_SPLIT,
                                           ranks=args.ranks))
        logger.info("evaluated %s in %.0f s", label, time.perf_counter() - started)
    return results


# --- the claims -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Robustness:
    """Species top-1 of one training type across the test types."""

    train_type: str
    mean: float
    minimum: float
    worst_test_type: str


def species_top1(ev: ModelEvaluation, test_type: str, rank: Rank = Rank.SPECIES) -> float:
    zs = ev.zero_shot_for(test_type)
    acc = zs.at(rank) if zs else None
    return acc.top1 if acc else float("nan")


def robustness(evaluations: list[ModelEvaluation], test_types: tuple[str, ...]) -> list[Robustness]:
    out = []
    for ev in evaluations:
        values = {t: species_top1(ev, t) for t in test_types}
        worst = min(values, key=values.get)
        out.append(Robustness(ev.model, sum(values.values()) / len(values), values[worst], worst))
    return out


def standard_error(p: float, n: int) -> float:
    """The binomial standard error of an accuracy p measured on n images."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


_OUTCOME = {"ahead": "mixed is ahead beyond the noise", "behind": "mixed is behind beyond the noise",
            "level": "within the noise"}


def claims_text(evaluations: list[ModelEvaluation], test_types: tuple[str, ...], n_images: int) -> list[str]:
    """Each claim, with its numbers and a verdict that weighs the difference against the noise."""
    by_type = {ev.model: ev for ev in evaluations}
    lines = []
    if "taxonomic" in by_type and "common" in by_type:
        lines.append("**Claim 1: taxonomic text beats common names on unseen species.**")
        for rank in CELL_RANKS:
            pairs = [("matched test text (each tested with its own training type)",
                      species_top1(by_type["taxonomic"], "taxonomic", rank) if "taxonomic" in test_types else None,
                      species_top1(by_type["common"], "common", rank) if "common" in test_types else None)]
            tax_row = [species_top1(by_type["taxonomic"], t, rank) for t in test_types]
            com_row = [species_top1(by_type["common"], t, rank) for t in test_types]
            if rank == Rank.SPECIES:  # above species every test type embeds the same taxonomic string
                pairs.append(("mean over the test types", sum(tax_row) / len(tax_row), sum(com_row) / len(com_row)))
            for what, tax, com in pairs:
                if tax is None or com is None:
                    continue
                n = n_images * (len(test_types) if what.startswith("mean") else 1)
                se = math.hypot(standard_error(tax, n), standard_error(com, n))
                diff = tax - com
                verdict = ("yes" if diff > 2 * se else "no: common names do better" if diff < -2 * se
                           else "not shown: the difference is within two standard errors")
                lines.append(f"- {rank.label}, {what}: taxonomic {100 * tax:.1f} % vs common {100 * com:.1f} % "
                             f"(difference {100 * diff:+.1f} points, standard error {100 * se:.1f}): {verdict}.")
    if MIXED in by_type:
        trained = [r for r in robustness(evaluations, test_types) if r.train_type != FLOOR]
        mixed = next(r for r in trained if r.train_type == MIXED)
        others = [r for r in trained if r.train_type != MIXED]
        lines.append("")
        lines.append("**Claim 2: mixed text training is the most robust across test text types** "
                     "(species top-1 over the test types; a gap counts when it exceeds two standard errors).")
        outcomes = []
        # The minimum is one cell; the mean pools len(test_types) cells of the same images (taken as independent).
        for what, value, cells in (("mean", lambda r: r.mean, len(test_types)), ("minimum", lambda r: r.minimum, 1)):
            rival = max(others, key=value) if others else None
            if rival is None:
                continue
            se = math.hypot(standard_error(value(mixed), n_images * cells), standard_error(value(rival), n_images * cells))
            gap = value(mixed) - value(rival)
            rank = sorted(trained, key=value, reverse=True).index(mixed) + 1
            outcome = "ahead" if gap > 2 * se else "behind" if gap < -2 * se else "level"
            outcomes.append(outcome)
            worst = f" (under {mixed.worst_test_type})" if what == "minimum" else ""
            lines.append(f"- {what}: mixed {100 * value(mixed):.1f} %{worst}, rank {rank} of {len(trained)}; best other "
                         f"{rival.train_type} {100 * value(rival):.1f} %: {100 * gap:+.1f} points, standard error "
                         f"{100 * se:.1f}: {_OUTCOME[outcome]}.")
        if outcomes:
            verdict = ("yes" if "behind" not in outcomes and "ahead" in outcomes else
                       "no" if "behind" in outcomes else "not shown: mixed is level with the best within the noise")
            lines.append(f"- verdict: {verdict}.")
    return lines


# --- the outputs ----------------------------------------------------------------------------------


def table5(evaluations: list[ModelEvaluation], test_types: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    headers = ["training text", *test_types, "1-shot", "5-shot"]
    rows = []
    for ev in evaluations:
        cells = [f"{100 * species_top1(ev, t):.1f} / {100 * species_top1(ev, t, Rank.GENUS):.1f}"
                 for t in test_types]
        shots = [f"{100 * fs.mean:.1f} ± {100 * fs.std:.1f}" if (fs := ev.few_shot_for(k)) else "-" for k in (1, 5)]
        rows.append([ev.model, *cells, *shots])
    return headers, rows


def robustness_table(evaluations: list[ModelEvaluation],
                     test_types: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    headers = ["training text", "mean species top-1", "min species top-1", "worst test text"]
    rows = [[r.train_type, f"{100 * r.mean:.1f}", f"{100 * r.minimum:.1f}", r.worst_test_type]
            for r in robustness(evaluations, test_types)]
    return headers, rows


@dataclass(frozen=True)
class Timing:
    """Seconds spent per stage; work reused from an earlier invocation counts its recorded time."""

    collection: float
    training: float
    evaluation: float

    def describe(self) -> str:
        total = self.collection + self.training + self.evaluation
        return (f"{total / 60:.1f} min in all: drawing the collection {self.collection / 60:.1f}, training "
                f"{self.training / 60:.1f}, evaluating {self.evaluation / 60:.1f}")


def write_docs(args: argparse.Namespace, argv: list[str], evaluations: list[ModelEvaluation],
               n_images: int, n_species: int, timing: Timing, device: str) -> None:
    from training.report import format_report, plot_evaluations, render, to_csv

    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    stem = docs / args.stem
    test_types = args.test_types
    command = shlex.join(["python", "bench/text_type_claims.py", *argv])
    default_type = DEFAULT_TEST_TEXT_TYPE if DEFAULT_TEST_TEXT_TYPE in test_types else test_types[0]
    lines = [
        "# Text types and unseen species: BioCLIP's Table 5 on the demo benchmark",
        "",
        "Produced by:",
        "",
        "```",
        command,
        "```",
        "",
        f"`{args.model}` trained from the same initial weights and seed under each training text type for "
        f"{args.epochs} epoch(s) (batch {args.batch_size}, lr {args.lr:g}, wd {args.wd:g}) on the `train` split of the "
        f"demo collection ({args.species} species x {args.per_species} pictures of {args.size} px, seed {args.seed}); "
        f"evaluated on the `unseen` split: {n_images} pictures of {n_species} species that training never "
        f"showed, each from a genus it did show. Device {device}, commit {git_commit()}; {timing.describe()}.",
        "",
        "Cells: zero-shot top-1 (%) at species / genus rank, the candidates being the unseen species (and their "
        "genera), each class embedded with SPEC §4's template averaging. Few-shot: SimpleShot on the image "
        f"embeddings, support drawn from the unseen pictures themselves, mean ± std over {args.folds} folds. "
        f"`{FLOOR}` is the model before training (random weights): the floor.",
        "",
        "## Table 5",
        "",
        render(*table5(evaluations, test_types), style="markdown"),
        "",
        f"Chance: species {100 / n_species:.1f} %, genus "
        f"{100 / max(1, evaluations[0].zero_shot[0].at(Rank.GENUS).classes):.1f} %. Standard error of one cell "
        f"at 50 %: {100 * standard_error(0.5, n_images):.1f} points.",
        "",
        "## Robustness across test text types (species top-1, %)",
        "",
        render(*robustness_table(evaluations, test_types), style="markdown"),
        "",
        "## The claims",
        "",
        *claims_text(evaluations, test_types, n_images),
        "",
        *_split_notes(evaluations),
        f"## Per rank, test text `{default_type}`",
        "",
        format_report([_only(ev, default_type) for ev in evaluations], "markdown").strip(),
        "",
    ]
    (stem.with_suffix(".md")).write_text("\n".join(lines), encoding="utf-8")
    (stem.with_suffix(".csv")).write_text(to_csv(evaluations), encoding="utf-8")
    trained = [ev for ev in evaluations if ev.model != FLOOR]
    matrix = ([ev.model for ev in trained], list(test_types),
              [[species_top1(ev, t) for t in test_types] for ev in trained])
    plot_evaluations([_only(ev, default_type) for ev in evaluations], stem.with_suffix(".png"),
                     title=f"{args.model} on {n_species} unseen demo species: training text types "
                           f"(lines and bars at test text {default_type})",
                     matrix=matrix, matrix_title="zero-shot species top-1 (%) on unseen species")
    logger.info("wrote %s.md, .csv and .png", stem)


def _split_notes(evaluations: list[ModelEvaluation]) -> list[str]:
    """What the unseen split rules out, so that an empty column is not read as a finding."""
    zs = evaluations[0].zero_shot[0]
    genus, species = zs.at(Rank.GENUS), zs.at(Rank.SPECIES)
    if genus and species and genus.classes == species.classes:
        return ["The unseen split holds one species per genus, so no species mistake can stay inside the genus "
                "(the `genus` column of the mistakes is empty by construction), and species and genus have the "
                "same number of classes.", ""]
    return []


def _only(ev: ModelEvaluation, text_type: str) -> ModelEvaluation:
    from dataclasses import replace

    return replace(ev, zero_shot=tuple(zs for zs in ev.zero_shot if zs.text_type == text_type))


def emit_json(args: argparse.Namespace, evaluations: list[ModelEvaluation], device: str) -> None:
    """STYLE §20: one JSON line per result on stdout."""
    base = {"bench": "text_type_claims", "device": device, "commit": git_commit(), "model": args.model,
            "batch_size": args.batch_size, "epochs": args.epochs, "species": args.species, "seed": args.seed}
    for ev in evaluations:
        for zs in ev.zero_shot:
            print(json.dumps({**base, "train_type": ev.model, "test_type": zs.text_type,
                              "species_top1": species_top1(ev, zs.text_type),
                              "genus_top1": species_top1(ev, zs.text_type, Rank.GENUS), "images": ev.images}))
        for fs in ev.few_shot:
            print(json.dumps({**base, "train_type": ev.model, "shots": fs.shots, "few_shot_mean": fs.mean,
                              "few_shot_std": fs.std, "folds": fs.folds}))
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    import torch

    from training.logger import setup_logging

    setup_logging()
    if args.device == "cpu" and args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({platform.processor() or 'x86-64'}, " \
        f"{torch.get_num_threads()} torch thread(s))"
    catalog, images, draw_seconds = make_demo(args)
    runs = train_all(args, catalog, images)
    setup_logging()  # training's entry point set it up again; keep ours
    started = time.perf_counter()
    evaluations = evaluate_all(args, catalog, images, runs)
    timing = Timing(draw_seconds, sum(seconds for _, seconds in runs.values()), time.perf_counter() - started)
    n_images = evaluations[0].images
    n_species = evaluations[0].zero_shot[0].at(Rank.SPECIES).classes
    emit_json(args, evaluations, device)
    write_docs(args, argv, evaluations, n_images, n_species, timing, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
