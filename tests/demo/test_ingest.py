"""The demo catalog goes into the SQL catalog with no problem at all."""
from index.catalog import Catalog
from index.collection.readers import read_collection


def test_the_demo_collection_ingests_with_zero_problems(tiny_demo_collection, tmp_path):
    collection = read_collection(tiny_demo_collection.catalog, tiny_demo_collection.images)
    with Catalog(str(tmp_path / "catalog.db")) as catalog:
        summary = catalog.ingest(collection)
        splits = {record.split for record in catalog.images()}
    assert (summary.skipped, summary.problems, summary.conflicts, summary.unknown_columns) == (0, [], [], ())
    assert summary.added == 12 * 4
    assert splits == {"train", "val", "unseen"}
