"""Two processes on one catalog at once: nothing lost, nothing doubled, no raw IntegrityError."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from index.catalog import Catalog
from tests.index.conftest import MAGPIE, lineage_row, make_image, write_csv

REPO = Path(__file__).resolve().parents[2]


def test_two_ingests_of_one_collection_into_one_new_catalog(tmp_path):
    root = tmp_path / "images"
    rows = []
    for i in range(600):
        make_image(root / f"{i:04d}.png", size=(8, 8), colour=(i % 256, 0, 0))
        rows.append(lineage_row(f"{i:04d}.png", MAGPIE))
    csv_file = write_csv(tmp_path / "catalog.csv", rows)
    db = tmp_path / "catalog.db"
    command = [sys.executable, "-m", "index", "ingest", "--catalog", str(csv_file), "--images", str(root), "--db", str(db)]
    processes = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        assert "Traceback" not in err and "IntegrityError" not in err
    with Catalog(f"sqlite:///{db}") as catalog:
        stats = catalog.stats()
        assert (stats.images, stats.gone, stats.taxa_per_rank["species"]) == (600, 0, 1)
