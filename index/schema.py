"""The Qdrant schema of SPEC §5: collection names, payload fields, keyword indexes, vector names.

Both stores (`index.edge_store`, `index.client_store`) read their literals from here, so the
embedded shards and a server collection carry the same schema.
"""
from __future__ import annotations

import re

from taxonomy import RANK_LABELS

IMAGES = "images"
TAXA = "taxa"
COLLECTIONS: tuple[str, ...] = (IMAGES, TAXA)

# Where the store lives (SPEC §6, §7): a flag wins over the environment, the environment over this.
DEFAULT_STORE = "./var/qdrant"
STORE_ENV = "TOL_STORE"
API_KEY_ENV = "TOL_QDRANT_API_KEY"
SHARDS_ENV = "TOL_QDRANT_SHARDS"  # shard number of new collections on a server or cluster
REPLICATION_ENV = "TOL_QDRANT_REPLICATION"  # replication factor of new collections on a cluster
FREE_MARGIN_ENV = "TOL_STORE_FREE_MARGIN_MB"  # free space an embedded store keeps beyond its shards' needs
MEMORY_LOCATION = ":memory:"
URL_SCHEMES: tuple[str, ...] = ("http", "https")

# Payload field names shared by both collections.
TAXON = "taxon"
LINEAGE = "lineage"
RANK = "rank"
COMMON_NAME = "common_name"
SPLIT = "split"
SOURCE = "source"
SOURCES = "sources"  # taxa: the sets that brought a taxon
CATALOG_SOURCE = "catalog"  # in `sources`: the collection's own catalog holds the taxon
SPECIES = "species"  # the binomial, `Pica hudsonia`, in both collections

IMAGE_FIELDS: tuple[str, ...] = (
    *RANK_LABELS, COMMON_NAME, TAXON, LINEAGE, RANK,
    "path", "sha256", SOURCE, SPLIT, "license", "width", "height",
)
TAXON_FIELDS: tuple[str, ...] = (
    RANK, "name", TAXON, "parent", LINEAGE, *RANK_LABELS, COMMON_NAME, "depth", "n_images", "text", SOURCES,
)
PAYLOAD_FIELDS: dict[str, tuple[str, ...]] = {IMAGES: IMAGE_FIELDS, TAXA: TAXON_FIELDS}

# Keyword payload indexes, created on both collections before any point is written. They are
# also the only fields `facet_counts` and `group_by` accept: the engine facets only indexed fields.
KEYWORD_INDEX_FIELDS: tuple[str, ...] = (*RANK_LABELS, TAXON, LINEAGE, RANK, SPLIT, SOURCE, SOURCES)
# The fields whose values get payload-aware HNSW links (Qdrant's filterable HNSW: extra links among
# the points of each value holding more than the full-scan threshold, built with the graph).
# `lineage` covers every clade filter; the rank fields would repeat its links, so they are off.
HNSW_LINK_FIELDS: tuple[str, ...] = (LINEAGE, RANK)

DISTANCE = "Cosine"

# A vector name is a model's short name (`bioclip`, `bioclip-2`, `tol-tiny`); the server keeps
# each named vector in a folder of that name, so path characters are refused.
_VECTOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_DIM = 65536


def check_collection(collection: str) -> str:
    """`collection` if it is one of ours; the error names the allowed ones."""
    if collection not in COLLECTIONS:
        raise ValueError(f"unknown collection {collection!r}; expected one of {', '.join(COLLECTIONS)}")
    return collection


def check_vector_name(name: str) -> str:
    """`name` if it can name a vector: a model's short name such as `bioclip` or `tol-tiny`."""
    if not isinstance(name, str) or not _VECTOR_NAME.fullmatch(name):
        raise ValueError(
            f"invalid vector name {name!r}: expected a model's short name such as 'bioclip' or "
            "'tol-tiny' (1-64 letters, digits, '_', '-' or '.', starting with a letter or digit)"
        )
    return name


def check_dim(dim: int) -> int:
    """`dim` if it is a valid vector dimension."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
        raise ValueError(f"invalid vector dimension {dim!r}: expected an integer from 1 to {MAX_DIM}")
    return dim


def check_keyword_field(field: str, what: str) -> str:
    """`field` if it has a keyword index; `what` says which argument it came from."""
    if field not in KEYWORD_INDEX_FIELDS:
        raise ValueError(
            f"{what} {field!r} is not an indexed keyword field; expected one of {', '.join(KEYWORD_INDEX_FIELDS)}"
        )
    return field
