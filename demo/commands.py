"""The subcommands of `python -m demo`: plain functions over parsed arguments."""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

from toolkit.cli import ProgressBars

logger = logging.getLogger(__name__)


def collection(args: argparse.Namespace) -> int:
    return write_collection(args.out, args.species, args.per_species, args.size, args.seed)


def write_collection(out: Path, species: int, per_species: int, size: int, seed: int) -> int:
    """`python -m demo collection`: the collection under a progress bar, then its paths as JSON on stdout."""
    from demo.collection import make_collection

    # The callback gives fractions; a thousand steps are fine enough for a bar.
    with ProgressBars("demo collection", 1000, show_message=True,
                      bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}") as progress:
        paths = make_collection(out, species, per_species, size, seed, progress)
    print(json.dumps({"catalog": str(paths.catalog), "images": str(paths.images)}))
    return 0


def contact_sheet(args: argparse.Namespace) -> int:
    from demo.contact_sheet import make_contact_sheet

    path = make_contact_sheet(args.catalog, args.images, args.out, families=args.families, per_row=args.per_row)
    print(json.dumps({"contact_sheet": str(path)}))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "collection": collection,
    "contact-sheet": contact_sheet,
}


def run(args: argparse.Namespace) -> int:
    return COMMANDS[args.command](args)
