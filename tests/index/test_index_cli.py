"""`python -m index`: argument checks, cheap --help, and end-to-end runs with exact output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.__main__ import create_parser, main, parse_args
from tests.index.conftest import (
    HEADER, JAY, MAGPIE, lineage_row, make_image, make_noisy_jpeg, make_png_bomb, truncate, write_csv,
)

REPO = Path(__file__).resolve().parents[2]


def _run(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "TOL_DB"}
    environment.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, "-m", "index", *argv], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=60)


def test_parse_args_checks_paths_and_values(tmp_path):
    args = parse_args(["ingest", "--images", str(tmp_path), "--db", "sqlite://", "--strict"])
    assert (args.command, args.images, args.catalog, args.db, args.strict) == (
        "ingest", tmp_path, None, "sqlite://", True)
    with pytest.raises(FileNotFoundError, match="catalog .*nope.csv not found"):
        parse_args(["ingest", "--catalog", str(tmp_path / "nope.csv"), "--images", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="images folder .*gone not found"):
        parse_args(["ingest", "--images", str(tmp_path / "gone")])
    with pytest.raises(SystemExit) as usage:
        parse_args(["ingest", "--images", str(tmp_path), "--workers", "0"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit):
        parse_args(["ingest"])  # --images is required
    assert parse_args(["stats"]).db is None
    assert set(create_parser()._subparsers._group_actions[0].choices) == {"ingest", "stats"}


def test_missing_paths_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["ingest", "--images", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err == f"index: error: images folder {tmp_path / 'nowhere'} not found\n"


def test_help_is_fast_and_import_is_light(tmp_path):
    start = time.perf_counter()
    shown = _run("--help", cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert shown.returncode == 0 and "ingest" in shown.stdout and "stats" in shown.stdout
    assert elapsed < 1.0, f"python -m index --help took {elapsed:.2f} s"
    code = "import sys, json, index, index.__main__; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                                           text=True, check=True).stdout))
    assert not loaded & {"sqlalchemy", "PIL", "torch", "open_clip", "streamlit", "tqdm"}


@pytest.mark.slow
def test_ingest_a_folder_of_good_and_bad_files_end_to_end(tmp_path):
    root = tmp_path / "images"
    make_image(root / "magpie.jpg")
    make_image(root / "jay.png", colour=(0, 0, 200))
    (root / "empty.jpg").write_bytes(b"")
    truncate(make_noisy_jpeg(root / "cut.jpg"))
    (root / "notes.jpg").write_text("field notes")
    (root / "out.jpg").symlink_to(make_image(tmp_path / "secret.jpg"))
    make_png_bomb(root / "bomb.png")
    rows = [lineage_row("magpie.jpg", MAGPIE, "train"), lineage_row("jay.png", JAY, "val"),
            lineage_row("empty.jpg", JAY), lineage_row("cut.jpg", JAY), lineage_row("notes.jpg", JAY),
            lineage_row("../../etc/passwd", JAY), lineage_row("out.jpg", JAY), lineage_row("bomb.png", JAY),
            ["nolabel.jpg", "", "", "", "", "", "", "", "", ""]]
    catalog = write_csv(tmp_path / "catalog.csv", rows, HEADER + ["camera"])
    resolved = root.resolve()

    ingested = _run("ingest", "--catalog", str(catalog), "--images", str(root), cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert ingested.stdout.splitlines() == [
        "added: 2", "updated: 0", "unchanged: 0", "gone: 0", "skipped: 7",
        "unknown columns ignored: camera",
        f"{catalog}:10: nolabel.jpg: no rank given (none of kingdom, phylum, class, order, family, genus, "
        "species, scientificName)",
        f"{catalog}:4: empty.jpg: empty file (0 bytes)",
        f"{catalog}:5: cut.jpg: truncated image",
        f"{catalog}:6: notes.jpg: not an image file (unrecognised format)",
        f"{catalog}:7: ../../etc/passwd: path leading outside the images root {resolved}",
        f"{catalog}:8: out.jpg: symlink pointing outside the images root {resolved}",
        f"{catalog}:9: bomb.png: decompression bomb: more pixels than the limit of 89478485 (Image size "
        "(900000000 pixels) exceeds limit of 178956970 pixels, could be decompression bomb DOS attack.)",
    ]
    assert "Traceback" not in ingested.stderr
    assert (tmp_path / "var" / "catalog.db").is_file()  # the default catalog, relative to the working folder

    again = _run("ingest", "--catalog", str(catalog), "--images", str(root), cwd=tmp_path)
    assert again.stdout.splitlines()[:5] == ["added: 0", "updated: 0", "unchanged: 2", "gone: 0", "skipped: 7"]

    stats = _run("stats", cwd=tmp_path)
    assert stats.returncode == 0
    lines = stats.stdout.splitlines()
    assert lines[:18] == [
        "images present: 2", "images gone: 0", "taxa per rank:", "  kingdom: 1", "  phylum: 1", "  class: 1",
        "  order: 1", "  family: 1", "  genus: 2", "  species: 2", "images per kingdom:", "  Animalia: 2",
        "images per split:", "  train: 1", "  val: 1", "embedded per model:",
        lines[16], f"  {catalog}:10: nolabel.jpg: no rank given (none of kingdom, phylum, class, order, family, "
                   "genus, species, scientificName)"]
    assert lines[16].startswith("last ingest: ") and lines[16].endswith(f" {resolved}: 7 problems")
    assert len(lines) == 17 + 7


@pytest.mark.slow
def test_class_folders_with_the_db_from_the_environment(tmp_path):
    root = tmp_path / "inat"
    make_image(root / "train" / "00001_Animalia_Chordata_Aves_Passeriformes_Corvidae_Pica_hudsonia" / "1.jpg")
    (root / "train" / "00001_Animalia_Chordata_Aves_Passeriformes_Corvidae_Pica_hudsonia" / "2.jpg").write_bytes(b"")
    db = tmp_path / "env" / "catalog.db"
    result = _run("ingest", "--images", str(root), cwd=tmp_path, env={"TOL_DB": str(db)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "added: 1", "updated: 0", "unchanged: 0", "gone: 0", "skipped: 1",
        f"{root.resolve()}: train/00001_Animalia_Chordata_Aves_Passeriformes_Corvidae_Pica_hudsonia/2.jpg: "
        "empty file (0 bytes)"]
    assert db.is_file() and not (tmp_path / "var").exists()
    stats = _run("stats", "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert "  train: 1" in stats.stdout.splitlines()


@pytest.mark.slow
def test_nothing_readable_or_unusable_input_fails(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_text("text")
    nothing = _run("ingest", "--images", str(tmp_path / "bad"), "--db", str(tmp_path / "c.db"), cwd=tmp_path)
    assert nothing.returncode == 1
    assert nothing.stdout.splitlines()[4] == "skipped: 1"
    assert f"index: error: no image of {tmp_path / 'bad'} could be read" in nothing.stderr

    missing = _run("ingest", "--catalog", str(tmp_path / "none.csv"), "--images", str(tmp_path), cwd=tmp_path)
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == f"index: error: catalog {tmp_path / 'none.csv'} not found\n"

    conflict = write_csv(tmp_path / "conflict.csv", [
        ["x.jpg", "Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia", "", ""],
        ["y.jpg", "Animalia", "Chordata", "Aves", "Passeriformes", "Laniidae", "Pica", "hudsonia", "", ""]])
    make_image(tmp_path / "bad" / "y.jpg")
    strict = _run("ingest", "--catalog", str(conflict), "--images", str(tmp_path / "bad"), "--strict",
                  "--db", str(tmp_path / "c.db"), cwd=tmp_path)
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert "1 inconsistent lineage" in strict.stderr and f"{conflict}:3" in strict.stderr

    bad_db = _run("stats", "--db", "nonsense://x", cwd=tmp_path)
    assert bad_db.returncode == 2 and "Traceback" not in bad_db.stderr
    assert bad_db.stderr.startswith("index: error: cannot open the catalog database")
