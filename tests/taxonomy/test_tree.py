"""The ete3 taxon tree, built from real NCBI lineages (one per image)."""
import pytest

from taxonomy import Lineage, Rank
from taxonomy.resolver import resolve_scientific
from taxonomy.tree import TaxonTree, UnknownTaxonError

MAGPIE = "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica/hudsonia"
GANNET = "Animalia/Chordata/Aves/Suliformes/Sulidae/Morus/bassanus"
MULBERRY = "Plantae/Streptophyta/Magnoliopsida/Rosales/Moraceae/Morus/alba"
CLOWNFISH = "Animalia/Chordata/Actinopteri//Pomacentridae/Amphiprion/ocellaris"
PICA = "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica"
IMAGES = {"Pica hudsonia": 3, "Morus bassanus": 1, "Morus alba": 2, "Amphiprion ocellaris": 1, "Pica pica": 1}


@pytest.fixture(scope="module")
def tree() -> TaxonTree:
    lineages = [resolve_scientific(name) for name, count in IMAGES.items() for _ in range(count)]
    return TaxonTree.from_lineages(lineages)


def test_nodes_are_named_by_key_with_rank_names_and_image_counts(tree):
    assert tree.root.name == "Life" and tree.root.n_images == 8
    assert tree.features(MAGPIE) == {
        "rank": "species", "scientific_name": "Pica hudsonia", "common_name": "Black-billed magpie", "n_images": 3,
    }
    assert tree.features(PICA) == {"rank": "genus", "scientific_name": "Pica", "common_name": "", "n_images": 4}
    assert tree.node("Animalia").n_images == 6
    assert [child.name for child in tree.root.children] == ["Animalia", "Plantae"]


def test_homonym_genera_stay_two_nodes(tree):
    morus = [node for node in tree.root.traverse() if getattr(node, "scientific_name", "") == "Morus"]
    assert sorted(node.name for node in morus) == [
        "Animalia/Chordata/Aves/Suliformes/Sulidae/Morus",
        "Plantae/Streptophyta/Magnoliopsida/Rosales/Moraceae/Morus",
    ]
    assert tree.lca_rank(GANNET, MULBERRY) is None


def test_an_empty_rank_is_skipped(tree):
    assert tree.node("Animalia/Chordata/Actinopteri//Pomacentridae").up.name == "Animalia/Chordata/Actinopteri"
    assert "Animalia/Chordata/Actinopteri/" not in tree


def test_taxa_match_the_enumeration(tree):
    taxa = tree.taxa()
    assert len(taxa) == len(tree) == 23
    assert [taxon.key for taxon in taxa][:2] == ["Animalia", "Plantae"]
    assert tree.taxon(MAGPIE).n_images == 3


def test_lowest_common_ancestor_and_its_rank(tree):
    assert tree.lca(MAGPIE, "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica/pica") == PICA
    assert tree.lca_rank(MAGPIE, GANNET) == Rank.CLASS
    assert tree.lca(MAGPIE, CLOWNFISH) == "Animalia/Chordata"
    assert tree.lca_rank(MAGPIE, CLOWNFISH) == Rank.PHYLUM
    assert tree.lca(MAGPIE, MULBERRY) == ""
    assert tree.lca(MAGPIE, PICA) == PICA
    assert tree.lca_rank(MAGPIE, MAGPIE) == Rank.SPECIES


def test_distance_counts_edges(tree):
    assert tree.distance(MAGPIE, MAGPIE) == 0
    assert tree.distance(MAGPIE, PICA) == 1
    assert tree.distance(MAGPIE, GANNET) == 8
    assert tree.distance(MAGPIE, CLOWNFISH) == 9  # the clownfish has no order: one edge fewer
    assert tree.distance(MAGPIE, MULBERRY) == 14


def test_subtree_of_a_clade(tree):
    birds = tree.subtree("Animalia/Chordata/Aves")
    assert birds.root.name == "Animalia/Chordata/Aves" and birds.root.n_images == 5
    assert len(birds) == 10
    assert MAGPIE in birds and MULBERRY not in birds
    assert birds.lca_rank(MAGPIE, GANNET) == Rank.CLASS
    assert MAGPIE in tree  # the original tree is untouched
    assert tree.node("Animalia/Chordata/Aves").up.name == "Animalia/Chordata"


def test_newick_keeps_internal_names_and_reads_back(tree):
    from ete3 import Tree  # after taxonomy.tree, which silences ete3's import-time warning

    text = tree.newick()
    assert text.endswith('"Life":1;')
    assert f'"{PICA}"' in text
    names = {node.name for node in Tree(text, format=1, quoted_node_names=True).traverse()}
    assert names == {"Life"} | {taxon.key for taxon in tree.taxa()}


def test_ascii_view_shows_names_common_names_and_counts(tree):
    drawing = tree.ascii()
    assert "-Life [8]" in drawing
    assert "-Corvidae [4]-Pica [4]" in drawing
    assert "/-Pica hudsonia (Black-billed magpie) [3]" in drawing
    assert "-Moraceae [2]-Morus [2]-Morus alba (white mulberry) [2]" in drawing
    assert "Animalia/" not in drawing
    assert not hasattr(tree.root, "_drawn")


def test_unknown_key_names_close_keys(tree):
    with pytest.raises(UnknownTaxonError, match="unknown taxon key 'Animalia/Chordata/Ave'.*Animalia/Chordata/Aves"):
        tree.node("Animalia/Chordata/Ave")
    with pytest.raises(KeyError):
        tree.lca(MAGPIE, "Fungi")


def test_taxa_without_their_ancestors_are_rejected():
    from taxonomy.taxon import Taxon

    orphan = Taxon(Lineage("Animalia", "Chordata"), Rank.PHYLUM, 1)
    with pytest.raises(ValueError, match="no parent 'Animalia'"):
        TaxonTree.from_taxa([orphan])


def test_empty_lineages_make_an_empty_tree():
    tree = TaxonTree.from_lineages([Lineage()])
    assert len(tree) == 0 and tree.root.n_images == 0 and tree.newick() == '"Life":1;'
