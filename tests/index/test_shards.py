"""Webdataset shards in TreeOfLife-10M's layout read as a collection (SPEC §2): brace specs, paths and ids,
lineages from the text keys, bad samples as problems, and ingest reading the images from inside the tars."""
from __future__ import annotations

import pytest

from index.catalog import Catalog
from index.collection.entries import image_point_id
from index.collection.images import ImageError, inspect_image, open_image
from index.collection.shards import expand_shards, read_shards, sample_lineage, shard_order
from taxonomy import Lineage
from tests.collections import SPECIES, make_shards


def test_a_brace_spec_expands_as_webdataset_does(tmp_path):
    make_shards(tmp_path, shards=3, per_shard=1)
    paths = expand_shards(str(tmp_path / "shard-{000000..000002}.tar"))
    assert [p.name for p in paths] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert len(expand_shards(f"{tmp_path}/shard-{{000000,000002}}.tar::{tmp_path}/shard-000001.tar")) == 3


def test_a_missing_shard_or_a_bad_pattern_is_a_one_line_error(tmp_path):
    make_shards(tmp_path, shards=2, per_shard=1)
    with pytest.raises(FileNotFoundError, match=r"shard-000002.tar' not found \(2 of 4 missing\)"):
        expand_shards(str(tmp_path / "shard-{000000..000003}.tar"))
    with pytest.raises(ValueError, match="bad brace pattern") as error:
        expand_shards(str(tmp_path / "shard-{000000..000001.tar"))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="not a .tar shard name"):
        expand_shards(str(tmp_path / "shard-{000000..000001}"))
    with pytest.raises(ValueError, match="empty spec"):
        expand_shards(" ")


def test_the_text_keys_give_the_lineage():
    full = {"taxonomic_name.txt": "Animalia Chordata Aves Passeriformes Corvidae Pica hudsonia",
            "common_name.txt": "black-billed magpie"}
    assert sample_lineage(full) == Lineage.from_ranks(list(SPECIES[0][:7]), common_name="black-billed magpie")
    # TreeOfLife-10M leaves a missing rank out: the binomial puts genus and epithet where they belong.
    gap = {"taxonomic_name.txt": "Animalia Chordata Actinopteri Pomacentridae Amphiprion ocellaris",
           "scientific_name.txt": "Amphiprion ocellaris"}
    assert sample_lineage(gap) == Lineage.from_ranks(list(SPECIES[3][:7]))
    # Only the caption: `a photo of ...` is read the same way; `sci.txt` and `com.txt` stand in for the names.
    caption = {"taxon.txt": "a photo of Animalia Chordata Actinopteri Pomacentridae Amphiprion ocellaris.",
               "sci.txt": "Amphiprion ocellaris", "com.txt": "clown anemonefish"}
    assert sample_lineage(caption) == Lineage.from_ranks(list(SPECIES[3][:7]), common_name="clown anemonefish")
    # A higher-rank taxon fills the ranks from kingdom down; no names is an unlabelled image.
    assert sample_lineage({"taxonomic_name.txt": "Animalia Chordata Aves"}).key() == "Animalia/Chordata/Aves"
    assert sample_lineage({}).is_empty
    with pytest.raises(ValueError, match="8 names"):
        sample_lineage({"taxonomic_name.txt": "A B C D E F g h"})


def test_each_sample_is_an_entry_under_its_shards_path(tmp_path):
    make_shards(tmp_path / "tol", shards=2, per_shard=4)
    collection = read_shards(str(tmp_path / "tol" / "shard-{000000..000001}.tar"))
    assert collection.root == (tmp_path / "tol").resolve() and collection.kind == "shards"
    assert [e.path for e in collection.entries[:2]] == ["shard-000000.tar/s0-0000.jpg", "shard-000000.tar/s0-0001.jpg"]
    assert len(collection.entries) == 8 and not collection.problems
    amphiprion = collection.entries[3]
    assert amphiprion.lineage.key() == "Animalia/Chordata/Actinopteri//Pomacentridae/Amphiprion/ocellaris"
    assert amphiprion.lineage.common_name == "clown anemonefish"
    image = open_image(collection.root, amphiprion.path)
    assert image.mode == "RGB" and image.size == (40, 32)
    assert inspect_image(collection.root, amphiprion.path).width == 40
    with pytest.raises(ImageError, match="no member s0-9999.jpg in the shard"):
        open_image(collection.root, "shard-000000.tar/s0-9999.jpg")
    order = shard_order(str(tmp_path / "tol" / "shard-{000000..000001}.tar"))
    assert [order(e.path) for e in collection.entries] == [0] * 4 + [1] * 4
    assert order("Pica_hudsonia/0001.jpg") is None


def test_bad_samples_are_problems_naming_the_shard_and_the_key_and_the_rest_is_ingested(tmp_path):
    extra = {
        "no-image": {"taxonomic_name.txt": b"Animalia Chordata Aves"},
        "truncated": {"jpg": b"\xff\xd8\xff\xe0" + b"\0" * 64, "taxonomic_name.txt": b"Animalia Chordata Aves"},
        "too-many": {"jpg": b"\xff\xd8\xff", "taxonomic_name.txt": b"A B C D E F g h"},
        "bad-text": {"jpg": b"\xff\xd8\xff", "taxonomic_name.txt": b"\xff\xfe"},
    }
    paths = make_shards(tmp_path / "tol", shards=2, per_shard=3, extra=extra)
    spec = str(tmp_path / "tol" / "shard-{000000..000001}.tar")
    collection = read_shards(spec)
    reasons = {p.path: (p.origin, p.reason) for p in collection.problems}
    assert set(reasons) == {"no-image", "too-many", "bad-text"}
    assert reasons["no-image"] == (str(paths[1]), "no image member (expected one of .jpg, .jpeg, .png, .webp)")
    with Catalog(str(tmp_path / "c.db")) as catalog:
        summary = catalog.ingest(collection)
        assert summary.added == 6
        (truncated,) = [p for p in summary.problems if p.path == "shard-000001.tar/truncated.jpg"]
        assert truncated.origin == str(paths[1])
        assert {r.id for r in catalog.images()} == {image_point_id(e.path) for e in collection.entries
                                                    if "truncated" not in e.path}
        # Ingested again: nothing changed, and nothing is hashed again (size and mtime from the tar).
        again = catalog.ingest(read_shards(spec))
        assert (again.added, again.updated, again.unchanged, again.gone) == (0, 0, 6, 0)


def test_a_file_that_is_not_a_tar_is_a_problem_and_the_other_shards_are_read(tmp_path):
    make_shards(tmp_path, shards=2, per_shard=2)
    (tmp_path / "shard-000002.tar").write_bytes(b"not a tar at all" * 100)
    collection = read_shards(str(tmp_path / "shard-{000000..000002}.tar"))
    assert len(collection.entries) == 4
    (problem,) = collection.problems
    assert problem.origin.endswith("shard-000002.tar") and "not a readable tar" in problem.reason
