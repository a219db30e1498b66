"""Lineages, taxon keys, BioCLIP's text types, the ete3 tree and offline name resolution.

Never imports torch or streamlit: `index/` and tools without a model depend on it.
"""
from taxonomy.constants import DEFAULT_TEST_TEXT_TYPE, MIXED, RANK_LABELS, TEXT_TYPES, Rank
from taxonomy.lineage import Lineage, parse_key, point_id, rank_of_key
from taxonomy.text import caption, class_name, template_texts, validate_text_type

__all__ = [
    "DEFAULT_TEST_TEXT_TYPE", "MIXED", "RANK_LABELS", "TEXT_TYPES", "Rank", "Lineage", "parse_key",
    "point_id", "rank_of_key", "caption", "class_name", "template_texts", "validate_text_type",
]
