"""The ete3 tree of every taxon of a collection, nodes named by taxon key (SPEC §3).

A root node ("Life") sits above the kingdoms; an empty rank is skipped, so a family's parent may be
a class. Homonyms in different lineages (genus Morus in Plantae and in Aves) are different nodes.
"""
from __future__ import annotations

import difflib
import logging
import warnings
from collections.abc import Iterable

with warnings.catch_warnings():
    # ete3 3.1.3 imports the `cgi` module for its web plugin; nothing here uses it.
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*'cgi'")
    from ete3 import TreeNode

from taxonomy.constants import (
    CLOSE_MATCH_COUNT,
    TREE_ASCII_ATTRIBUTE,
    TREE_FEATURES,
    TREE_ROOT_NAME,
    Rank,
)
from taxonomy.lineage import Lineage
from taxonomy.taxon import Taxon, taxa_of

logger = logging.getLogger(__name__)

ROOT_KEY = ""  # the key of the empty lineage names the root


class UnknownTaxonError(KeyError):
    """A taxon key that is not in the tree; the message names close keys that are."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _label(taxon: Taxon) -> str:
    common = f" ({taxon.common_name})" if taxon.common_name else ""
    return f"{taxon.name}{common} [{taxon.n_images}]"


class TaxonTree:
    """Every taxon of a set of lineages as an ete3 tree, with rank, names and image counts per node.

    Node features: `rank` (label, "" for the root), `scientific_name`, `common_name`, `n_images`,
    `label` (what the ASCII view shows). `node.name` is the taxon key.
    """

    def __init__(self, root: TreeNode, taxa: dict[str, Taxon]) -> None:
        self.root = root
        self._taxa = taxa
        self._nodes: dict[str, TreeNode] = {}
        self._depth: dict[str, int] = {}
        for node in root.traverse("preorder"):
            key = ROOT_KEY if node is root and node.name == TREE_ROOT_NAME else node.name
            self._nodes[key] = node
            self._depth[key] = 0 if node is root else self._depth[self._key(node.up)] + 1

    @classmethod
    def from_lineages(cls, lineages: Iterable[Lineage]) -> "TaxonTree":
        """The tree of `lineages`, one per image so that counts are image counts."""
        return cls.from_taxa(taxa_of(lineages))

    @classmethod
    def from_taxa(cls, taxa: Iterable[Taxon]) -> "TaxonTree":
        """The tree of already enumerated taxa (every ancestor of each taxon must be among them)."""
        ordered = sorted(taxa, key=lambda taxon: (taxon.rank, taxon.key))
        root = TreeNode(name=TREE_ROOT_NAME)
        total = sum(taxon.n_images for taxon in ordered if taxon.parent == ROOT_KEY)
        root.add_features(rank="", scientific_name=TREE_ROOT_NAME, common_name="", n_images=total)
        root.add_feature(TREE_ASCII_ATTRIBUTE, f"{TREE_ROOT_NAME} [{total}]")
        nodes: dict[str, TreeNode] = {ROOT_KEY: root}
        by_key: dict[str, Taxon] = {}
        for taxon in ordered:
            parent = nodes.get(taxon.parent)
            if parent is None:
                raise ValueError(
                    f"taxon {taxon.key!r} has no parent {taxon.parent!r} among the taxa given; "
                    "pass every ancestor (taxa_of does) or build with TaxonTree.from_lineages"
                )
            node = parent.add_child(name=taxon.key)
            node.add_features(
                rank=taxon.rank.label,
                scientific_name=taxon.name,
                common_name=taxon.common_name,
                n_images=taxon.n_images,
            )
            node.add_feature(TREE_ASCII_ATTRIBUTE, _label(taxon))
            nodes[taxon.key] = node
            by_key[taxon.key] = taxon
        logger.debug("tree of %d taxa", len(by_key))
        return cls(root, by_key)

    def _key(self, node: TreeNode) -> str:
        return ROOT_KEY if node is self.root and node.name == TREE_ROOT_NAME else node.name

    def __len__(self) -> int:
        """The number of taxa (the "Life" root is not one)."""
        return len(self._taxa)

    def __contains__(self, key: object) -> bool:
        return key in self._nodes

    def node(self, key: str) -> TreeNode:
        """The ete3 node of a taxon key; "" is the root. Unknown keys raise `UnknownTaxonError`."""
        try:
            return self._nodes[key]
        except KeyError:
            close = difflib.get_close_matches(key, list(self._nodes), CLOSE_MATCH_COUNT)
            hint = f"; close keys: {', '.join(close)}" if close else ""
            raise UnknownTaxonError(
                f"unknown taxon key {key!r}: not among the {len(self)} taxa of this tree "
                f"(keys are kingdom..rank names joined by '/'){hint}"
            ) from None

    def taxon(self, key: str) -> Taxon:
        """The `Taxon` record of a key (the root has none)."""
        self.node(key)
        if key not in self._taxa:
            raise UnknownTaxonError(f"{key!r} is the root of this tree, not a taxon")
        return self._taxa[key]

    def taxa(self) -> list[Taxon]:
        """Every taxon in the tree, by rank, then key."""
        return sorted(self._taxa.values(), key=lambda taxon: (taxon.rank, taxon.key))

    def children(self, key: str) -> list[str]:
        return [child.name for child in self.node(key).children]

    def lca(self, key_a: str, key_b: str) -> str:
        """The key of the lowest common ancestor of two taxa ("" when only the root is shared)."""
        node_a, node_b = self.node(key_a), self.node(key_b)
        ancestors = {id(node) for node in (node_a, *node_a.iter_ancestors())}
        for node in (node_b, *node_b.iter_ancestors()):
            if id(node) in ancestors:
                return self._key(node)
        raise AssertionError("two nodes of one tree share at least the root")

    def lca_rank(self, key_a: str, key_b: str) -> Rank | None:
        """The rank of the lowest common ancestor, or None when it is the "Life" root."""
        rank = self.node(self.lca(key_a, key_b)).rank
        return Rank.parse(rank) if rank else None

    def distance(self, key_a: str, key_b: str) -> int:
        """The number of edges between two taxa (skipped empty ranks add no edge)."""
        common = self.lca(key_a, key_b)
        return self._depth[key_a] + self._depth[key_b] - 2 * self._depth[common]

    def subtree(self, key: str) -> "TaxonTree":
        """The tree of one clade, rooted at that clade's own node (a copy)."""
        if key == ROOT_KEY:
            return TaxonTree(self.root.copy(), dict(self._taxa))
        clade = self.node(key).copy()
        clade.up = None
        taxa = {node.name: self._taxa[node.name] for node in clade.traverse()}
        return TaxonTree(clade, taxa)

    def newick(self) -> str:
        """Newick with every internal node named by its key, root included (quoted names)."""
        return self.root.write(format=1, format_root_node=True, quoted_node_names=True)

    def ascii(self) -> str:
        """The tree drawn by ete3, each node as `name (common name) [images]`."""
        # ete3 draws a single-child chain without a connector; a leading dash keeps the names apart.
        for node in self.root.traverse():
            label = getattr(node, TREE_ASCII_ATTRIBUTE)
            indent = "" if node is self.root or node.is_leaf() else "-"
            node.add_feature(_DRAWN, indent + label)
        drawing = self.root.get_ascii(show_internal=True, attributes=[_DRAWN])
        for node in self.root.traverse():
            node.del_feature(_DRAWN)
        return drawing.strip("\n")

    def features(self, key: str) -> dict[str, object]:
        """The node's features by name (rank, scientific_name, common_name, n_images)."""
        node = self.node(key)
        return {feature: getattr(node, feature) for feature in TREE_FEATURES}


_DRAWN = "_drawn"
