"""`python -m training train ...` (also under torchrun), `shards ...` and `eval ...`.

Only argparse is imported up front; torch loads when a command runs, so `--help` is instant.
"""
from __future__ import annotations

import argparse
import sys

from training import eval_cli, params, shards
from training.constants import EXIT_FAILED


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description="BioCLIP training on open_clip.")
    commands = parser.add_subparsers(dest="command", required=True)
    params.create_parser(commands.add_parser("train", help=params.DESCRIPTION, description=params.DESCRIPTION))
    shards.add_arguments(commands.add_parser(
        "shards", help="write a collection as webdataset shards in TreeOfLife-10M's layout",
        description=shards.__doc__.splitlines()[0]))
    eval_cli.add_eval_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = create_parser().parse_args(argv)
    if args.command == "train":
        from training.main import main as train

        try:
            train(argv[1:])  # parsed again by params.parse_args, which validates and loads the run config
        except (ValueError, FileNotFoundError) as e:  # a refused checkpoint, a device that is not there, ...
            print(f"python -m training train: error: {e}", file=sys.stderr)
            raise SystemExit(EXIT_FAILED) from None
    elif args.command == "shards":
        from training.logger import setup_logging

        setup_logging()
        shards.run(args)
    elif args.command == "eval":
        eval_cli.run_eval(args)


if __name__ == "__main__":
    main()
