"""Lineages, taxon keys, BioCLIP's text types, the ete3 tree and offline name resolution.

Never imports torch or streamlit: `index/` and tools without a model depend on it. The tree (ete3),
the resolver (taxoniq) and validation load on first use, so `import taxonomy` stays cheap.
"""
from importlib import import_module

from taxonomy.constants import DEFAULT_TEST_TEXT_TYPE, MIXED, RANK_LABELS, TEXT_TYPES, Rank
from taxonomy.lineage import Lineage, parse_key, point_id, rank_of_key
from taxonomy.text import caption, class_name, template_texts, validate_text_type

_LAZY = {
    "TaxonTree": "taxonomy.tree",
    "resolve_scientific": "taxonomy.resolver",
    "resolve_scientific_all": "taxonomy.resolver",
    "resolve_common": "taxonomy.resolver",
    "close_matches": "taxonomy.resolver",
    "Conflict": "taxonomy.validate",
    "InconsistentLineageError": "taxonomy.validate",
    "find_conflicts": "taxonomy.validate",
    "reconcile": "taxonomy.validate",
}

__all__ = [
    "DEFAULT_TEST_TEXT_TYPE", "MIXED", "RANK_LABELS", "TEXT_TYPES", "Rank", "Lineage", "parse_key",
    "point_id", "rank_of_key", "caption", "class_name", "template_texts", "validate_text_type", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'taxonomy' has no attribute {name!r}")
