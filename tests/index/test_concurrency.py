"""Two processes on one catalog at once, on SQLite and PostgreSQL: nothing lost, nothing doubled, no raw IntegrityError."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from index.catalog import Catalog
from index.collection.readers import read_collection
from tests.index.conftest import MAGPIE, lineage_row, make_image, write_csv

ROUNDS = 10  # before the fix, most rounds on PostgreSQL failed

REPO = Path(__file__).resolve().parents[2]


def test_two_ingests_of_one_collection_into_one_new_catalog(tmp_path, db_url):
    root = tmp_path / "images"
    rows = []
    for i in range(600):
        make_image(root / f"{i:04d}.png", size=(8, 8), colour=(i % 256, 0, 0))
        rows.append(lineage_row(f"{i:04d}.png", MAGPIE))
    csv_file = write_csv(tmp_path / "catalog.csv", rows)
    command = [sys.executable, "-m", "index", "ingest", "--catalog", str(csv_file), "--images", str(root), "--db", db_url]
    processes = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        assert "Traceback" not in err and "IntegrityError" not in err
    with Catalog(db_url) as catalog:
        stats = catalog.stats()
        assert (stats.images, stats.gone, stats.taxa_per_rank["species"]) == (600, 0, 1)


def test_two_ingests_ending_at_once_leave_one_set_of_taxa(db_url, collection):
    """Both rebuild the taxa at the end: neither may fail on the other's rows."""
    csv_file, root = collection
    catalogs = [Catalog(db_url), Catalog(db_url)]
    catalogs[0].ingest(read_collection(csv_file, root))  # the rounds below change no image: they end together
    errors: list[BaseException] = []

    def ingest(catalog: Catalog, start: threading.Barrier) -> None:
        start.wait()
        try:
            catalog.ingest(read_collection(csv_file, root))
        except BaseException as e:  # noqa: BLE001  (reported by the test thread)
            errors.append(e)

    try:
        for _ in range(ROUNDS):
            start = threading.Barrier(len(catalogs))
            threads = [threading.Thread(target=ingest, args=(catalog, start)) for catalog in catalogs]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        assert errors == []
        assert len(catalogs[1].taxa()) == 9 and len(catalogs[1].taxa("species")) == 2
    finally:
        for catalog in catalogs:
            catalog.close()
