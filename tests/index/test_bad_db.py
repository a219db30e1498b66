"""An unusable `--db` is one line naming the value and what is accepted, in every tool, and touches nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from index.catalog import Catalog
from index.config import CatalogLocationError
from index.constants import DB_ACCEPTED
from index.schema import MEMORY_LOCATION
from tests.index.conftest import MAGPIE, lineage_row, make_image, write_csv

REPO = Path(__file__).resolve().parents[2]
NOT_A_DATABASE = "field notes, not a database\n"


def _run(module: str, *argv: str, cwd: Path, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`python -m module argv`; the modules in `blocked` cannot be imported, as if not installed."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TOL_")}
    environment["PYTHONPATH"] = str(REPO)
    start = ["-m", module]
    if blocked:
        start = ["-c", f"import runpy, sys; sys.modules.update(dict.fromkeys({blocked!r})); "
                       f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"]
    return subprocess.run([sys.executable, *start, *argv], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=300)


def _workdir(tmp_path: Path) -> Path:
    """A working folder holding a folder with a file in it, and a text file: what a bad --db may name."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "keep.txt").write_text("kept")
    (tmp_path / "notes.db").write_text(NOT_A_DATABASE)
    return tmp_path


def _untouched(workdir: Path) -> None:
    assert (workdir / "photos" / "keep.txt").read_text() == "kept"
    assert sorted(p.name for p in (workdir / "photos").iterdir()) == ["keep.txt"]
    assert (workdir / "notes.db").read_text() == NOT_A_DATABASE
    assert sorted(p.name for p in workdir.iterdir()) == ["notes.db", "photos"]  # no var/, no postgres/


CASES = [
    ("photos", "'photos': it is a folder, not an SQLite file"),
    ("notes.db", "'notes.db': it is not an SQLite database"),
    ("postgres//x", "'postgres//x': a database URL needs '://' after its kind"),
    ("foo://", "'foo://': SQLAlchemy knows no database kind 'foo'"),
    # psycopg is installed with the tests: the missing driver is simulated by blocking its import.
    ("postgresql+psycopg://u:secret@localhost/db",
     "'postgresql+psycopg://u:***@localhost/db': its driver 'psycopg' is not installed "
     "(pip install 'tree-of-life-search[postgres]')"),
]
MISSING_DRIVER = CASES[-1][0]


@pytest.mark.parametrize(("db", "reason"), CASES)
def test_index_stats_names_the_bad_db_in_one_line(tmp_path, db, reason):
    workdir = _workdir(tmp_path)
    result = _run("index", "stats", "--db", db, cwd=workdir, blocked=("psycopg",) if db == MISSING_DRIVER else ())
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"index: error: cannot open the catalog database {reason}")
    assert line.endswith(f"; expected {DB_ACCEPTED}")
    _untouched(workdir)


@pytest.mark.parametrize(("db", "reason"), [CASES[0], CASES[1]])
def test_embed_status_and_search_name_the_bad_db_in_one_line(tmp_path, db, reason):
    workdir = _workdir(tmp_path)
    for command in (["status"], ["search", "--text", "a photo of Pica hudsonia.", "--model", "tol-tiny"]):
        result = _run("embed", *command, "--store", MEMORY_LOCATION, "--db", db, cwd=workdir)
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.splitlines()
        assert f" failed: cannot open the catalog database {reason}" in line
        assert line.endswith(f"; expected {DB_ACCEPTED}")
        _untouched(workdir)


def test_ingest_into_a_text_file_leaves_it_as_it_was(tmp_path):
    workdir = _workdir(tmp_path)
    images = workdir / "photos"
    make_image(images / "magpie.jpg")
    catalog = write_csv(workdir / "catalog.csv", [lineage_row("magpie.jpg", MAGPIE)])
    result = _run("index", "ingest", "--catalog", str(catalog), "--images", str(images), "--db", "notes.db",
                  cwd=workdir)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("index: error: cannot open the catalog database 'notes.db': it is not an SQLite")
    assert (workdir / "notes.db").read_text() == NOT_A_DATABASE


def test_a_good_catalog_still_opens_and_an_empty_file_becomes_one(tmp_path):
    with Catalog(str(tmp_path / "c.db")) as catalog:
        assert catalog.stats().images == 0
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:  # again, now that the file exists
        assert catalog.stats().images == 0
    (tmp_path / "empty.db").touch()
    with Catalog(str(tmp_path / "empty.db")) as catalog:
        assert catalog.stats().images == 0
    with pytest.raises(CatalogLocationError, match="its folder cannot be created"):
        Catalog(str(tmp_path / "empty.db" / "inside.db"))
