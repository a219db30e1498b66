"""`python -m taxonomy`: resolve names offline, draw a collection's tree, list the ranks (SPEC §7).

Only argparse runs here; `commands` (ete3, taxoniq) is imported after the arguments are checked,
so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from taxonomy.constants import CLOSE_MATCH_COUNT, RESOLVE_FORMATS, TREE_FORMATS
from toolkit.cli import setup_logging


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m taxonomy", description="Taxonomy tools: NCBI name resolution and collection trees."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    resolve = commands.add_parser(
        "resolve", help="scientific or common names -> NCBI lineages (offline)",
        description="Resolve each NAME as a scientific name, else as a common name, on the NCBI taxonomy.",
    )
    resolve.add_argument("names", nargs="+", metavar="NAME", help='e.g. "Pica hudsonia" "black-billed magpie"')
    resolve.add_argument("--format", choices=RESOLVE_FORMATS, default=RESOLVE_FORMATS[0], help="output format")
    resolve.add_argument(
        "--matches", type=int, default=CLOSE_MATCH_COUNT, metavar="N",
        help=f"close matches suggested for an unknown name (default {CLOSE_MATCH_COUNT})",
    )

    tree = commands.add_parser(
        "tree", help="the taxon tree of a CSV catalog",
        description="Print the tree of every taxon of a SPEC §2 CSV catalog, with image counts.",
    )
    tree.add_argument("--catalog", type=Path, required=True, metavar="CSV", help="catalog with rank columns")
    tree.add_argument("--format", choices=TREE_FORMATS, default=TREE_FORMATS[0], help="output format")
    tree.add_argument("--within", metavar="KEY", help="only the clade with this key, e.g. Animalia/Chordata/Aves")
    tree.add_argument(
        "--strict", action="store_true",
        help="fail on inconsistent lineages instead of keeping the majority parent of each name",
    )

    commands.add_parser("list-ranks", help="the seven ranks, kingdom first")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the arguments; problems exit with status 2 and a message naming them."""
    parser = create_parser()
    args = parser.parse_args(argv)
    if args.command == "resolve":
        args.names = [" ".join(name.split()) for name in args.names]
        if not all(args.names):
            parser.error("resolve: a NAME is empty; give scientific names (Pica hudsonia) or common names")
        if args.matches < 1:
            parser.error(f"resolve: --matches must be at least 1, got {args.matches}")
    if args.command == "tree":
        if not args.catalog.is_file():
            parser.error(f"tree: catalog file not found: {args.catalog}")
        if args.within is not None:
            args.within = args.within.strip().strip("/")
            if not args.within:
                parser.error("tree: --within needs a taxon key such as Animalia/Chordata/Aves")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.WARNING)
    from taxonomy import commands

    return commands.run(args)


if __name__ == "__main__":
    sys.exit(main())
