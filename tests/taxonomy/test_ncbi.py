"""Every taxon of an NCBI clade, from the real taxoniq data (SPEC §2 reference taxa)."""
from __future__ import annotations

import pytest

from taxonomy import Rank
from taxonomy.ncbi import clade_taxa, species_problem

FELIDAE = "Animalia/Chordata/Mammalia/Carnivora/Felidae"


@pytest.fixture(scope="module")
def felidae():
    return clade_taxa(["Felidae"])


def test_a_clade_gives_its_taxa_at_every_rank_with_ancestors_and_common_names(felidae):
    by_key = {t.key: t for t in felidae.taxa}
    assert felidae.clades == (FELIDAE,)
    for key in ("Animalia", "Animalia/Chordata", "Animalia/Chordata/Mammalia", "Animalia/Chordata/Mammalia/Carnivora",
                FELIDAE, f"{FELIDAE}/Panthera", f"{FELIDAE}/Panthera/leo", f"{FELIDAE}/Felis/catus"):
        assert key in by_key, key
    assert by_key[f"{FELIDAE}/Panthera/leo"].common_name == "lion"
    assert by_key[f"{FELIDAE}/Acinonyx/jubatus"].common_name == "cheetah"
    assert by_key[f"{FELIDAE}/Neofelis/nebulosa"].common_name == "Clouded leopard"  # NCBI's capitalisation
    assert by_key["Animalia/Chordata/Mammalia"].common_name == "mammals"
    assert by_key[f"{FELIDAE}/Panthera/leo"].rank == Rank.SPECIES
    assert by_key[f"{FELIDAE}/Panthera"].rank == Rank.GENUS
    assert felidae.count(Rank.FAMILY) == 1 and felidae.count(Rank.KINGDOM) == 1
    assert felidae.count(Rank.SPECIES) >= 40 and felidae.count(Rank.GENUS) >= 15
    assert all(t.n_images == 0 for t in felidae.taxa)


def test_names_that_are_not_species_are_left_out_and_counted(felidae):
    felis = sorted(t.lineage.species for t in felidae.taxa if t.key.startswith(f"{FELIDAE}/Felis/"))
    assert felis == ["catus", "chaus", "margarita", "nigripes", "silvestris"]  # no `sp.`, hybrids, env. samples
    assert felidae.skipped["hybrid"] >= 4  # Felis chaus x Felis catus, Panthera leo x Panthera tigris, ...
    assert felidae.skipped["sp."] >= 2 and felidae.skipped["environmental"] >= 2
    assert not any(" " in t.lineage.species or "." in t.lineage.species for t in felidae.taxa)


@pytest.mark.parametrize("name,reason", [
    ("Felis catus", ""), ("Felis sp.", "sp."), ("Felis sp. NG192", "sp."), ("Felis cf. catus", "cf./aff."),
    ("Felis chaus x Felis catus", "hybrid"), ("Felis environmental sample", "environmental"),
    ("uncultured Felis", "environmental"), ("Lynx catus", "not a binomial of its genus"),
    ("Felis catus2", "not a binomial of its genus"), ("Felis catus lybica", "not a binomial of its genus"),
])
def test_species_names_are_judged_by_reason(name, reason):
    assert species_problem(name, "Felis") == reason


def test_a_genus_homonym_gives_both_clades_and_a_taxid_works():
    morus = clade_taxa(["Morus"])
    assert {k.split("/")[0] for k in morus.clades} == {"Animalia", "Plantae"}
    assert clade_taxa(["9681"]).clades == (FELIDAE,)


def test_an_unknown_clade_names_close_matches():
    with pytest.raises(ValueError, match="unknown NCBI clade 'Felidea'.*close matches: .*Felidae"):
        clade_taxa(["Felidea"])
