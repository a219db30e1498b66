from taxonomy import Lineage, Rank
from taxonomy.taxon import taxa_of

MAGPIE = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"], "black-billed magpie")
JAY = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Cyanocitta", "cristata"], "blue jay")
MULBERRY = Lineage.from_ranks(["Plantae", "Streptophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba"])
GANNET = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Suliformes", "Sulidae", "Morus", "bassanus"])


def test_every_rank_is_enumerated_with_image_counts():
    taxa = taxa_of([MAGPIE, MAGPIE, JAY])
    by_key = {t.key: t for t in taxa}
    assert len(taxa) == 5 + 2 + 2
    assert by_key["Animalia/Chordata/Aves/Passeriformes/Corvidae"].n_images == 3
    magpie = by_key[MAGPIE.key()]
    assert (magpie.n_images, magpie.name, magpie.common_name, magpie.rank) == (2, "Pica hudsonia", "black-billed magpie", Rank.SPECIES)
    assert magpie.parent == "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica"
    family = by_key["Animalia/Chordata/Aves/Passeriformes/Corvidae"]
    assert family.common_name == "" and family.text("taxon_com") == "a photo of Animalia Chordata Aves Passeriformes Corvidae."
    assert by_key["Animalia"].parent == "" and by_key["Animalia"].depth == 0


def test_homonym_genera_stay_two_taxa():
    genera = [t for t in taxa_of([MULBERRY, GANNET]) if t.rank == Rank.GENUS]
    assert sorted(t.key for t in genera) == [
        "Animalia/Chordata/Aves/Suliformes/Sulidae/Morus", "Plantae/Streptophyta/Magnoliopsida/Rosales/Moraceae/Morus"]


def test_parent_skips_empty_ranks():
    clownfish = Lineage.from_ranks(["Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion", "ocellaris"])
    family = next(t for t in taxa_of([clownfish]) if t.rank == Rank.FAMILY)
    assert family.parent == "Animalia/Chordata/Actinopteri"
