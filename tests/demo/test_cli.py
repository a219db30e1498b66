"""`python -m demo`: argument checks, a fast --help, and one real run of each subcommand."""
import json
import subprocess
import sys
import time

import pytest

from demo.__main__ import parse_args
from demo.constants import DEFAULT_PER_SPECIES, DEFAULT_SEED, DEFAULT_SIZE, DEFAULT_SPECIES


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "demo", *argv], capture_output=True, text=True, timeout=120)


def test_collection_defaults(tmp_path):
    args = parse_args(["collection", "--out", str(tmp_path)])
    assert (args.species, args.per_species, args.size, args.seed) == (
        DEFAULT_SPECIES, DEFAULT_PER_SPECIES, DEFAULT_SIZE, DEFAULT_SEED)


@pytest.mark.parametrize("argv, message", [
    (["--species", "0"], "--species"), (["--per-species", "0"], "--per-species"), (["--size", "4"], "--size"),
])
def test_bad_collection_arguments_exit_2_naming_the_range(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["collection", "--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2  # argparse's usage error
    assert message in capsys.readouterr().err


def test_contact_sheet_needs_an_existing_catalog(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["contact-sheet", "--catalog", str(tmp_path / "no.csv"), "--images", str(tmp_path),
                    "--out", str(tmp_path / "sheet.png")])
    assert "catalog file not found" in capsys.readouterr().err


def test_help_is_fast():
    start = time.perf_counter()
    result = _run("--help")
    assert result.returncode == 0 and "contact-sheet" in result.stdout
    assert time.perf_counter() - start < 1.0


@pytest.mark.slow
def test_collection_then_contact_sheet_from_the_command_line(tmp_path):
    made = _run("collection", "--out", str(tmp_path / "c"), "--species", "4", "--per-species", "2", "--size", "48")
    assert made.returncode == 0, made.stderr
    paths = json.loads(made.stdout)
    assert sum(1 for _ in open(paths["catalog"], encoding="utf-8")) == 1 + 4 * 2
    sheet = _run("contact-sheet", "--catalog", paths["catalog"], "--images", paths["images"],
                 "--out", str(tmp_path / "sheet.png"))
    assert sheet.returncode == 0, sheet.stderr
    assert (tmp_path / "sheet.png").stat().st_size > 1000
