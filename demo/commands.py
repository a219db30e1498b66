"""The subcommands of `python -m demo`: plain functions over parsed arguments."""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)


@contextmanager
def tqdm_progress(description: str) -> Iterator[Callable[[float, str], None]]:
    """A `progress(fraction, message)` callback drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    steps = 1000  # the callback gives fractions; a thousand steps are fine enough for a bar
    with tqdm(total=steps, desc=description, bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}") as bar:
        def update(fraction: float, message: str) -> None:
            bar.update(round(fraction * steps) - bar.n)
            bar.set_postfix_str(message, refresh=False)

        yield update


def collection(args: argparse.Namespace) -> int:
    from demo.collection import make_collection

    with tqdm_progress("demo collection") as progress:
        paths = make_collection(args.out, args.species, args.per_species, args.size, args.seed, progress)
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
