"""BioCLIP's five text types and the zero-shot template set (SPEC §4)."""
from __future__ import annotations

from taxonomy.constants import MIXED, TEXT_TYPES, Rank
from taxonomy.lineage import Lineage
from taxonomy.templates import OPENAI_IMAGENET_TEMPLATES


def validate_text_type(text_type: str, allow_mixed: bool = False) -> str:
    allowed = TEXT_TYPES + ((MIXED,) if allow_mixed else ())
    if text_type not in allowed:
        raise ValueError(f"unknown text type {text_type!r}; expected one of {', '.join(allowed)}")
    return text_type


def _taxonomic(lineage: Lineage) -> str:
    return " ".join(name for name in lineage.names if name)


def class_name(lineage: Lineage, text_type: str) -> str:
    """The class string of a taxon, without `a photo of` and the full stop.

    A taxon above species rank has no binomial and is named by its truncated taxonomic string,
    whatever the type; `common` falls back to scientific, then taxonomic.
    """
    validate_text_type(text_type)
    taxonomic = _taxonomic(lineage)
    scientific = lineage.binomial
    common = lineage.common_name if lineage.deepest_rank == Rank.SPECIES else ""
    if not scientific:
        return taxonomic
    if text_type == "taxonomic":
        return taxonomic
    if text_type == "scientific":
        return scientific
    if text_type == "common":
        return common or scientific
    if text_type == "sci_com":
        return f"{scientific} with common name {common}" if common else scientific
    return f"{taxonomic} with common name {common}" if common else taxonomic


def caption(lineage: Lineage, text_type: str) -> str:
    """The training caption: `a photo of <class string>.`"""
    return f"a photo of {class_name(lineage, text_type)}."


# SPEC §4's template set: OpenAI's 80 ImageNet templates plus `a photo of {c}.`
TEMPLATE_COUNT = len(OPENAI_IMAGENET_TEMPLATES) + 1


def template_texts(lineage: Lineage, text_type: str, templates: int = TEMPLATE_COUNT) -> list[str]:
    """The class string in each of OpenAI's 80 templates, plus `a photo of {c}.` (SPEC §4).

    `templates` < 81 trades quality for speed: `a photo of {c}.` alone (1), then the first OpenAI ones.
    """
    return label_texts(class_name(lineage, text_type), templates)


def label_texts(name: str, templates: int = TEMPLATE_COUNT) -> list[str]:
    """Any label (pybioclip's --cls) in the templates of `template_texts`."""
    if isinstance(templates, bool) or not isinstance(templates, int) or not 1 <= templates <= TEMPLATE_COUNT:
        raise ValueError(f"templates must be an integer from 1 to {TEMPLATE_COUNT}, got {templates!r}")
    plain = f"a photo of {name}."
    if templates < TEMPLATE_COUNT:
        return [plain] + [template.format(name) for template in OPENAI_IMAGENET_TEMPLATES[:templates - 1]]
    texts = [template.format(name) for template in OPENAI_IMAGENET_TEMPLATES]
    return texts if plain in texts else texts + [plain]
