import pytest

from taxonomy import Lineage, Rank, caption, class_name, template_texts

MAGPIE = Lineage.from_ranks(
    ["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"], "black-billed magpie")


@pytest.mark.parametrize("text_type, expected", [
    ("taxonomic", "a photo of Animalia Chordata Aves Passeriformes Corvidae Pica hudsonia."),
    ("scientific", "a photo of Pica hudsonia."),
    ("common", "a photo of black-billed magpie."),
    ("sci_com", "a photo of Pica hudsonia with common name black-billed magpie."),
    ("taxon_com", "a photo of Animalia Chordata Aves Passeriformes Corvidae Pica hudsonia with common name black-billed magpie."),
])
def test_the_five_text_types(text_type, expected):
    assert caption(MAGPIE, text_type) == expected


def test_empty_ranks_are_skipped():
    clownfish = Lineage.from_ranks(
        ["Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion", "ocellaris"], "clown anemonefish")
    assert caption(clownfish, "taxonomic") == "a photo of Animalia Chordata Actinopteri Pomacentridae Amphiprion ocellaris."


def test_common_falls_back_to_scientific_then_taxonomic():
    nameless = MAGPIE.with_common_name("")
    assert caption(nameless, "common") == "a photo of Pica hudsonia."
    assert caption(nameless, "sci_com") == "a photo of Pica hudsonia."
    assert caption(nameless, "taxon_com") == caption(nameless, "taxonomic")
    genus_only = MAGPIE.truncate(Rank.GENUS)
    assert caption(genus_only, "common") == "a photo of Animalia Chordata Aves Passeriformes Corvidae Pica."


@pytest.mark.parametrize("text_type", ["taxonomic", "scientific", "common", "sci_com", "taxon_com"])
def test_higher_ranks_use_the_truncated_taxonomic_string(text_type):
    family = MAGPIE.truncate(Rank.FAMILY)
    assert caption(family, text_type) == "a photo of Animalia Chordata Aves Passeriformes Corvidae."


def test_templates_are_openai_80_plus_plain():
    texts = template_texts(MAGPIE, "scientific")
    assert len(texts) == 81 and len(set(texts)) == 81
    assert texts[0] == "a bad photo of a Pica hudsonia."
    assert texts[-1] == "a photo of Pica hudsonia."
    with pytest.raises(ValueError, match="expected one of taxonomic, scientific"):
        class_name(MAGPIE, "latin")
