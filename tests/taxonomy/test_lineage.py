import pytest

from taxonomy import Lineage, Rank, parse_key, point_id, rank_of_key


def test_rank_is_depth_with_labels():
    assert [r.label for r in Rank] == ["kingdom", "phylum", "class", "order", "family", "genus", "species"]
    assert Rank.parse("Genus") is Rank.GENUS and Rank.parse(6) is Rank.SPECIES
    with pytest.raises(ValueError, match="expected one of kingdom, phylum"):
        Rank.parse("tribe")


def test_normalisation_trims_capitalises_and_maps_ncbi_kingdoms():
    lin = Lineage.from_ranks(
        {"kingdom": " Metazoa", "phylum": "chordata", "class": "AVES", "order": "passeriformes ",
         "family": "corvidae", "genus": "pica", "species": "Pica  Hudsonia"}, "black-billed  magpie")
    assert lin.names == ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia")
    assert lin.common_name == "black-billed magpie"
    assert Lineage.from_ranks(["Viridiplantae"]).kingdom == "Plantae"
    assert Lineage.from_ranks(["Archaeplastida"]).kingdom == "Plantae"
    assert Lineage.from_ranks(["Chloroplastida"]).kingdom == "Plantae"


def test_binomial_without_genus_fills_the_genus():
    lin = Lineage.from_ranks({"kingdom": "Animalia", "species": "Pica hudsonia"})
    assert (lin.genus, lin.species) == ("Pica", "hudsonia")


def test_keys_keep_empty_ranks_as_empty_segments():
    lin = Lineage.from_ranks(["Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion", "ocellaris"])
    assert lin.key() == "Animalia/Chordata/Actinopteri//Pomacentridae/Amphiprion/ocellaris"
    assert lin.key(Rank.FAMILY) == "Animalia/Chordata/Actinopteri//Pomacentridae"
    assert lin.keys() == [
        "Animalia", "Animalia/Chordata", "Animalia/Chordata/Actinopteri",
        "Animalia/Chordata/Actinopteri//Pomacentridae", "Animalia/Chordata/Actinopteri//Pomacentridae/Amphiprion",
        "Animalia/Chordata/Actinopteri//Pomacentridae/Amphiprion/ocellaris",
    ]
    assert rank_of_key(lin.key(Rank.FAMILY)) is Rank.FAMILY
    assert parse_key(lin.key(Rank.GENUS)).names == lin.truncate(Rank.GENUS).names


def test_homonyms_have_distinct_keys_and_ids():
    mulberry = Lineage.from_ranks(["Plantae", "Streptophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus"])
    gannet = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Suliformes", "Sulidae", "Morus"])
    assert mulberry.genus == gannet.genus and mulberry.key() != gannet.key()
    assert point_id(mulberry.key()) != point_id(gannet.key())
    assert point_id(gannet.key()) == point_id("Animalia/Chordata/Aves/Suliformes/Sulidae/Morus")


def test_empty_lineage():
    lin = Lineage.from_ranks({})
    assert lin.is_empty and lin.key() == "" and lin.keys() == [] and lin.deepest_rank is None
    with pytest.raises(ValueError, match="at most 7 ranks"):
        Lineage.from_ranks(list("abcdefgh"))
