"""`python -m index ingest|stats`: fill the SQL catalog from a collection and summarise it.

Only argparse is imported here; `index.commands` (SQLAlchemy, Pillow) loads once a command runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2  # as argparse; kept here too so that `--help` needs no other module

DB_ARG = dict(metavar="URL", default=None,
              help="SQLAlchemy URL or SQLite file of the catalog (default: $TOL_DB, then ./var/catalog.db)")


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m index", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser(
        "ingest", help="add or update a collection's images (CSV catalog, class folders or plain images)",
        description="Check every image of a collection and record it; bad files are reported and skipped.")
    ingest.add_argument("--catalog", type=Path, metavar="CSV",
                        help="CSV catalog with filepath and rank columns (SPEC §2); omit for class or plain folders")
    ingest.add_argument("--images", type=Path, metavar="DIR", required=True,
                        help="the images root; catalog paths are relative to it")
    ingest.add_argument("--db", **DB_ARG)
    ingest.add_argument("--strict", action="store_true",
                        help="stop on inconsistent lineages instead of letting the majority win")
    ingest.add_argument("--workers", type=int, default=None, metavar="N", help="threads decoding images")

    stats = commands.add_parser("stats", help="counts per rank, kingdom and split, and the last ingest's problems")
    stats.add_argument("--db", **DB_ARG)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line.

    Raises:
        FileNotFoundError: `--catalog` or `--images` does not exist.
    """
    parser = create_parser()
    args = parser.parse_args(argv)
    if args.command == "ingest":
        if args.workers is not None and args.workers < 1:
            parser.error(f"--workers must be at least 1, got {args.workers}")
        if args.catalog is not None and not args.catalog.is_file():
            raise FileNotFoundError(f"catalog {args.catalog} not found" if not args.catalog.exists()
                                    else f"catalog {args.catalog} is not a file")
        if not args.images.is_dir():
            raise FileNotFoundError(f"images folder {args.images} not found" if not args.images.exists()
                                    else f"images folder {args.images} is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except FileNotFoundError as e:
        print(f"index: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    from index import commands

    return commands.run(args)


if __name__ == "__main__":
    sys.exit(main())
