"""`python -m training eval`: the paper's evaluation of one or more models on a labelled collection.

    python -m training eval --model SPEC [--model SPEC ...] --catalog CSV --images DIR [--split S]
        [--text-type T[,T...]|all] [--ranks R[,R...]|all] [--shots 0,1,5] [--folds 5] [--support-split S]
        [--classes CSV]
        [--format table|csv|markdown] [--plot PNG] [--device auto|cpu|cuda]

Results go to stdout in the chosen format, messages to stderr. Only argparse and the metric modules'
constants load up front; torch and open_clip load when the command runs.
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from taxonomy import DEFAULT_TEST_TEXT_TYPE, TEXT_TYPES, Lineage, Rank, validate_text_type
from embed.constants import AUTO_DEVICE
from training.constants import DEVICES
from training.evaluate import DEFAULT_FOLDS, DEFAULT_SEED, DEFAULT_SHOTS, ModelEvaluation, parse_ranks, parse_shots
from training.report import DEFAULT_FORMAT, FORMATS

logger = logging.getLogger(__name__)

DESCRIPTION = ("Zero-shot top-1/top-5 per rank, SimpleShot few-shot and the tree depth of species mistakes, "
               "for one or more models on a labelled collection (BioCLIP's protocol).")
ALL_TEXT_TYPES = "all"
DEFAULT_DEVICE = AUTO_DEVICE
DEFAULT_EVAL_BATCH_SIZE = 128
DEFAULT_EVAL_WORKERS = 0  # small evaluations decode faster in-process than by starting workers


@dataclass(frozen=True)
class EvalConfig:
    """One `eval` invocation, validated."""

    models: tuple[str, ...]
    images: str
    catalog: str | None = None
    split: str | None = None
    support_split: str | None = None
    classes: str | None = None
    text_types: tuple[str, ...] = (DEFAULT_TEST_TEXT_TYPE,)
    shots: tuple[int, ...] = DEFAULT_SHOTS
    ranks: tuple[Rank, ...] = tuple(Rank)
    folds: int = DEFAULT_FOLDS
    seed: int = DEFAULT_SEED
    format: str = DEFAULT_FORMAT
    plot: str | None = None
    device: str = DEFAULT_DEVICE
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE
    workers: int = DEFAULT_EVAL_WORKERS


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `eval` flags on a parser; `parser.error` is what validation reports through."""
    data = parser.add_argument_group("data")
    data.add_argument("--catalog", help="CSV catalog of the collection (SPEC §2); optional with class folders")
    data.add_argument("--images", required=True, help="images root of the collection")
    data.add_argument("--split", help="evaluate only this split of the catalog (default: every labelled image)")
    data.add_argument("--support-split", help="draw few-shot support images from this split instead of from "
                                              "the other images of each species in the evaluated one")
    data.add_argument("--classes", help="CSV of candidate taxa (rank columns) instead of the evaluated "
                                        "collection's own taxa")
    model = parser.add_argument_group("models")
    model.add_argument("--model", action="append", required=True, dest="models", metavar="SPEC",
                       help="open_clip spec: hf-hub:ORG/REPO, a model folder, tol-tiny, ViT-B-16[:TAG]; repeat to "
                            "compare models")
    model.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE, help="auto: cuda when available")
    model.add_argument("--batch-size", type=int, default=DEFAULT_EVAL_BATCH_SIZE, help="images per forward pass")
    model.add_argument("--workers", type=int, default=DEFAULT_EVAL_WORKERS, help="image decoding processes")
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--text-type", default=DEFAULT_TEST_TEXT_TYPE,
                          help=f"test text type(s), comma-separated, or {ALL_TEXT_TYPES}: {', '.join(TEXT_TYPES)} "
                               f"(default {DEFAULT_TEST_TEXT_TYPE})")
    protocol.add_argument("--ranks", default="all",
                          help="zero-shot ranks, comma-separated, or all (default); fewer ranks, fewer texts to embed")
    protocol.add_argument("--shots", default=",".join(map(str, DEFAULT_SHOTS)),
                          help="comma-separated: 0 = zero-shot, k > 0 = k-shot SimpleShot (default 0,1,5)")
    protocol.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help="seeded few-shot draws averaged")
    protocol.add_argument("--seed", type=int, default=DEFAULT_SEED)
    output = parser.add_argument_group("output")
    output.add_argument("--format", choices=FORMATS, default=DEFAULT_FORMAT, help="stdout format")
    output.add_argument("--plot", metavar="PNG", help="also save accuracy per rank and the mistakes histogram")
    parser.set_defaults(eval_parser=parser)
    return parser


def add_eval_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Register `eval` on `python -m training`'s subcommands."""
    return add_arguments(subparsers.add_parser("eval", help=DESCRIPTION, description=DESCRIPTION))


def create_parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(prog="python -m training eval", description=DESCRIPTION))


def _text_types(value: str) -> tuple[str, ...]:
    if value.strip() == ALL_TEXT_TYPES:
        return TEXT_TYPES
    types = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not types:
        raise ValueError(f"empty --text-type; expected some of {', '.join(TEXT_TYPES)} or {ALL_TEXT_TYPES}")
    for text_type in types:
        validate_text_type(text_type)
    return types


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """Validate parsed flags; bad values exit through the parser's `error` with what is allowed."""
    parser: argparse.ArgumentParser = getattr(args, "eval_parser", None) or create_parser()
    try:
        text_types = _text_types(args.text_type)
        shots = parse_shots(args.shots)
        ranks = parse_ranks(getattr(args, "ranks", "all"))
    except ValueError as e:
        parser.error(str(e))
    if not Path(args.images).is_dir():
        parser.error(f"--images {args.images!r}: no such folder")
    for name in ("catalog", "classes"):
        value = getattr(args, name)
        if value and not Path(value).is_file():
            parser.error(f"--{name} {value!r}: no such file")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        parser.error(f"--plot {args.plot!r}: expected a .png file name")
    for name in ("folds", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.workers < 0:
        parser.error(f"--workers must be 0 or more, got {args.workers}")
    if args.support_split and args.support_split == args.split:
        parser.error("--support-split must differ from --split (the support would contain the queries)")
    return EvalConfig(tuple(args.models), args.images, args.catalog, args.split, args.support_split, args.classes,
                      text_types, shots, ranks, args.folds, args.seed, args.format, args.plot, args.device,
                      args.batch_size, args.workers)


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    return config_from_args(create_parser().parse_args(argv))


def read_classes(path: str | Path) -> list[Lineage]:
    """Candidate taxa from a CSV with rank columns (any of SPEC §2's headers; `filepath` not needed)."""
    from taxonomy.columns import HeaderMap

    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = HeaderMap.from_headers(list(reader.fieldnames or []))
        if not columns.has_taxonomy:
            raise ValueError(f"{path}: no rank column; expected some of kingdom .. species or scientificName")
        lineages = [lineage for row in reader if not (lineage := columns.lineage(row)).is_empty]
    if not lineages:
        raise ValueError(f"{path}: no candidate taxa")
    return list(dict.fromkeys(lineages))


def evaluate_models(config: EvalConfig) -> list[ModelEvaluation]:
    """Load each model in turn, embed the collection, and measure it."""
    from embed.device import resolve_device
    from embed.encoder import Encoder
    from embed.models import load_model
    from training.data import read_split
    from training.evaluate import embed_collection, evaluate_embeddings

    device = resolve_device(config.device)
    root, entries = read_split(config.catalog, config.images, config.split)
    truth = [entry.lineage for entry in entries]
    candidates = read_classes(config.classes) if config.classes else None
    support_entries = read_split(config.catalog, config.images, config.support_split)[1] \
        if config.support_split else None
    logger.info("%d images to evaluate%s, %s", len(entries), f" (split {config.split})" if config.split else "",
                f"{len(support_entries)} support images" if support_entries else "few-shot support from them")
    results = []
    for spec in config.models:
        encoder = Encoder(load_model(spec, device=device))
        embeddings = embed_collection(encoder, root, entries, config.workers, config.batch_size)
        support = None
        if support_entries is not None:
            support = (embed_collection(encoder, root, support_entries, config.workers, config.batch_size),
                       [entry.lineage for entry in support_entries])
        results.append(evaluate_embeddings(encoder, spec, embeddings, truth, candidates, config.text_types,
                                           config.shots, config.folds, config.seed, support, config.split or "",
                                           config.ranks))
        del encoder
    return results


def run_eval(args: argparse.Namespace) -> list[ModelEvaluation]:
    """Validate, evaluate every model, print the report to stdout and save the plot if asked."""
    return evaluate_and_report(config_from_args(args))


def evaluate_and_report(config: EvalConfig) -> list[ModelEvaluation]:
    """Evaluate every model of `config`, print the report to stdout and save the plot if asked."""
    from training.logger import setup_logging
    from training.report import format_report, plot_evaluations

    setup_logging()
    try:
        results = evaluate_models(config)
    except (ValueError, FileNotFoundError) as e:
        logger.error("%s", e)
        raise SystemExit(1) from e
    sys.stdout.write(format_report(results, config.format))
    sys.stdout.flush()
    if config.plot:
        plot_evaluations(results, config.plot, title=f"{config.images} ({config.split or 'all images'})")
    return results


def main(argv: list[str] | None = None) -> None:
    run_eval(create_parser().parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
