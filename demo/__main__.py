"""`python -m demo`: the whole chain offline; `collection|contact-sheet`: the demo collection (SPEC §7).

Only argparse and the constants load here; `demo.commands` (numpy, Pillow, the NCBI indexes)
is imported once the arguments are checked, so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from demo.constants import (
    DEFAULT_UI_PORT, DEFAULT_WORKDIR, DEFAULT_PER_SPECIES, DEFAULT_SEED, DEFAULT_SIZE, DEFAULT_SPECIES, MAX_SIZE, MIN_SIZE, SHEET_FAMILIES,
    SHEET_PER_ROW,
)
from toolkit.cli import setup_logging

def add_collection_arguments(group: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The collection's settings, shared by the chain and `collection`."""
    group.add_argument("--species", type=int, default=DEFAULT_SPECIES, metavar="N",
                       help=f"number of real species (default {DEFAULT_SPECIES})")
    group.add_argument("--per-species", type=int, default=DEFAULT_PER_SPECIES, metavar="N",
                       help=f"pictures per species (default {DEFAULT_PER_SPECIES})")
    group.add_argument("--size", type=int, default=DEFAULT_SIZE, metavar="PX",
                       help=f"side of the square pictures, {MIN_SIZE}-{MAX_SIZE} (default {DEFAULT_SIZE})")
    group.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S",
                       help=f"chooses the species, the splits and every picture's variation (default {DEFAULT_SEED})")


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Without a command: the whole chain offline on the embedded defaults: the demo collection "
                    "(imaginary organisms on real NCBI taxa) -> the tiny model trained on it -> the build into "
                    "Qdrant -> zero-shot accuracy -> the search UI. Each step is skipped when its output is there "
                    "for the same settings, and resumes after a crash.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    chain = parser.add_argument_group("the chain (no command)")
    chain.add_argument("--workdir", type=Path, default=Path(DEFAULT_WORKDIR), metavar="DIR",
                       help=f"where the collection, model, catalog and store go (default: {DEFAULT_WORKDIR})")
    add_collection_arguments(chain)
    chain.add_argument("--epochs", type=int, metavar="N", help="training epochs (default: the demo run config's)")
    chain.add_argument("--no-ui", dest="serve", action="store_false", help="stop after the evaluation")
    chain.add_argument("--port", type=int, default=DEFAULT_UI_PORT, help=f"UI port (default {DEFAULT_UI_PORT})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    collection = commands.add_parser(
        "collection", help="draw the pictures and write a SPEC §2 catalog with train/val/unseen splits",
        description="Write DIR/images/<Genus_epithet>/*.jpg and DIR/catalog.csv; the same arguments "
                    "give the same bytes.",
    )
    collection.add_argument("--out", type=Path, required=True, metavar="DIR", help="collection folder")
    add_collection_arguments(collection)

    sheet = commands.add_parser(
        "contact-sheet", help="one labelled row of pictures per family of a collection",
        description="Render a PNG with one row per family (spread over the classes), one picture per species.",
    )
    sheet.add_argument("--catalog", type=Path, required=True, metavar="CSV", help="SPEC §2 catalog")
    sheet.add_argument("--images", type=Path, required=True, metavar="DIR", help="images root of the catalog")
    sheet.add_argument("--out", type=Path, required=True, metavar="PNG", help="where to write the sheet")
    sheet.add_argument("--families", type=int, default=SHEET_FAMILIES, metavar="N",
                       help=f"rows (default {SHEET_FAMILIES})")
    sheet.add_argument("--per-row", type=int, default=SHEET_PER_ROW, metavar="N",
                       help=f"species per row (default {SHEET_PER_ROW})")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the arguments; problems exit with status 2 and a message naming the allowed values."""
    parser = create_parser()
    args = parser.parse_args(argv)
    if args.command is None and args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")  # as `python -m training train` says
    if args.command in ("collection", None):
        if args.species < 1:
            parser.error(f"collection: --species must be at least 1, got {args.species}")
        if args.per_species < 1:
            parser.error(f"collection: --per-species must be at least 1, got {args.per_species}")
        if not MIN_SIZE <= args.size <= MAX_SIZE:
            parser.error(f"collection: --size must be between {MIN_SIZE} and {MAX_SIZE}, got {args.size}")
    if args.command == "contact-sheet":
        if not args.catalog.is_file():
            parser.error(f"contact-sheet: catalog file not found: {args.catalog}")
        if not args.images.is_dir():
            parser.error(f"contact-sheet: images folder not found: {args.images}")
        if args.families < 1 or args.per_row < 1:
            parser.error("contact-sheet: --families and --per-row must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    if args.command is None:
        from demo.chain import ChainOptions, run_chain

        return run_chain(ChainOptions(args.workdir, args.species, args.per_species, args.size, args.seed,
                                      args.epochs, args.serve, args.port))
    from demo import commands

    return commands.run(args)


if __name__ == "__main__":
    sys.exit(main())
