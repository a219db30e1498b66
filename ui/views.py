"""What the page shows, computed without streamlit: breadcrumbs, result summaries, trees, thumbnails, examples.

The components draw these; the tests check them directly.
"""
from __future__ import annotations

import base64
import html
import io
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps

from embed.predict import METHOD_SUM, Identification, TaxonPrediction, TreeRow
from embed.search import SearchHit, SearchService
from index.collection.images import ImageError, open_image
from index.records import ImageRecord
from taxonomy import Lineage, Rank, caption, parse_key

logger = logging.getLogger(__name__)

THUMBNAIL_PX = 256
THUMBNAIL_QUALITY = 85
DETAIL_MAX_PX = 2048  # the whole picture, uncropped; a larger one is scaled down to this longest side
DETAIL_QUALITY = 90
EXAMPLE_SPECIES = 3
EXAMPLE_TEXT_TYPE = "sci_com"  # `a photo of Felis catus with common name domestic cat.`
UNLABELLED = "(unlabelled)"
NO_FAMILY = "(no family)"
NO_GENUS = "(no genus)"
ITALIC_RANKS = frozenset({Rank.GENUS, Rank.SPECIES})


@dataclass(frozen=True)
class Crumb:
    """One part of a lineage breadcrumb: clicking it narrows the filter to `key`."""

    rank: Rank
    name: str
    key: str


def breadcrumb(lineage: Lineage, deepest: Rank = Rank.GENUS) -> list[Crumb]:
    """The named ranks of `lineage` from kingdom down to `deepest` (empty ranks skipped)."""
    return [Crumb(rank, lineage.get(rank), lineage.key(rank))
            for rank in Rank if rank <= deepest and lineage.get(rank)]


@dataclass(frozen=True)
class SummaryNode:
    """A family or genus of the results, with how many results fall in it."""

    name: str
    key: str
    count: int
    children: tuple["SummaryNode", ...] = ()


def summary_tree(hits: Sequence[SearchHit]) -> list[SummaryNode]:
    """Results counted per family, and per genus inside each family; largest first."""
    families: Counter[tuple[str, str]] = Counter()
    genera: Counter[tuple[str, str, str]] = Counter()
    for hit in hits:
        lineage = hit.lineage
        if lineage.is_empty:
            family = (UNLABELLED, "")
        else:
            family = (lineage.family or NO_FAMILY, lineage.key(Rank.FAMILY) if lineage.family else "")
        genus = (lineage.genus or NO_GENUS, lineage.key(Rank.GENUS) if lineage.genus else "")
        families[family] += 1
        genera[(family[1] or family[0], *genus)] += 1
    out = []
    for (name, key), count in sorted(families.items(), key=lambda item: (-item[1], item[0])):
        children = sorted(
            (SummaryNode(g_name, g_key, n) for (parent, g_name, g_key), n in genera.items() if parent == (key or name)),
            key=lambda node: (-node.count, node.name),
        )
        out.append(SummaryNode(name, key, count, tuple(children)))
    return out


def summary_html(nodes: Sequence[SummaryNode]) -> str:
    """The summary tree as compact rows: each family with its count, its genera indented below."""
    rows = []
    for family in nodes:
        rows.append(f'<div class="tol-sum tol-fam"><span>{html.escape(family.name)}</span><b>{family.count}</b></div>')
        rows.extend(f'<div class="tol-sum tol-gen"><i>{html.escape(genus.name)}</i><span>{genus.count}</span></div>'
                    for genus in family.children)
    return SUMMARY_STYLE + '<div class="tol-summary">' + "".join(rows) + "</div>"


SUMMARY_STYLE = """
<style>
.tol-summary {font-size: 0.88rem; line-height: 1.3;}
.tol-sum {display: flex; justify-content: space-between; gap: 0.5rem; padding: 0.12rem 0;}
.tol-sum > :first-child {overflow: hidden; text-overflow: ellipsis; white-space: nowrap;}
.tol-fam {font-weight: 600; color: #1f5135; border-top: 1px solid #eceef0; padding-top: 0.3rem; margin-top: 0.2rem;}
.tol-gen {padding-left: 0.9rem; color: #4b5563;}
</style>
"""


def percent(score: float) -> str:
    return f"{100 * score:.1f}%" if score >= 0.001 else "<0.1%"


TREE_STYLE = """
<style>
.tol-tree {font-size: 0.9rem; line-height: 1.2;}
.tol-row {display: grid; grid-template-columns: 3.9rem minmax(0, 1fr) 4.5rem 3.4rem; align-items: center;
  column-gap: 0.5rem; padding: 0.16rem 0;}
.tol-rank {color: #8a8f98; font-size: 0.68rem; text-transform: uppercase; letter-spacing: 0.05em;}
.tol-name {white-space: nowrap; overflow: hidden; text-overflow: ellipsis;}
.tol-common {color: #6b7280; font-size: 0.8rem;}
.tol-bar {height: 0.45rem; background: #eef0f2; border-radius: 0.3rem; overflow: hidden;}
.tol-fill {display: block; height: 100%; border-radius: 0.3rem; background: #b7c9b0;}
.tol-path .tol-fill {background: #2e7d4f;}
.tol-path .tol-name {font-weight: 600; color: #1f5135;}
.tol-pct {text-align: right; font-variant-numeric: tabular-nums; color: #374151;}
.tol-top .tol-row {grid-template-columns: minmax(0, 1fr) 3.5rem 3.4rem;}
</style>
"""


def _bar_cells(score: float) -> str:
    width = max(0.0, min(100.0, 100 * score))
    return (f'<span class="tol-bar"><span class="tol-fill" style="width:{width:.1f}%"></span></span>'
            f'<span class="tol-pct">{html.escape(percent(score))}</span>')


def _name_cell(prediction: TaxonPrediction, indent: float = 0.0) -> str:
    name = html.escape(prediction.name)
    if prediction.rank in ITALIC_RANKS:
        name = f"<i>{name}</i>"
    common = f' <span class="tol-common">{html.escape(prediction.common_name)}</span>' if prediction.common_name else ""
    title = html.escape(prediction.taxon, quote=True)
    return f'<span class="tol-name" title="{title}" style="padding-left:{indent:.1f}rem">{name}{common}</span>'


def prediction_tree_html(rows: Sequence[TreeRow]) -> str:
    """The identification tree: one row per taxon, indented by depth, with its probability as a bar.

    Rows on the best-guess path are highlighted. Every name is escaped.
    """
    parts = [TREE_STYLE, '<div class="tol-tree">']
    for row in rows:
        p = row.prediction
        parts.append(
            f'<div class="tol-row{" tol-path" if row.on_path else ""}">'
            f'<span class="tol-rank">{p.rank.label}</span>{_name_cell(p, 0.7 * row.depth)}{_bar_cells(p.score)}</div>'
        )
    parts.append("</div>")
    return "".join(parts)


def headline_note(found: Identification, rank: Rank) -> str:
    """How the headline was chosen, and the most probable taxon of its rank when that is another one."""
    best = found.headline(rank)
    if best is None:
        return ""
    note = ("Best guess chosen top-down: the most probable kingdom, then at each rank the most probable "
            "taxon inside the one above")
    note += (" (species probabilities summed)." if found.method == METHOD_SUM
             else " (each rank's own vectors, within the parent).")
    top = found.top(best.rank, 1)
    if top and top[0].taxon != best.taxon:
        note += (f" The most probable {best.rank.label} on its own is {top[0].name} ({percent(top[0].score)}), "
                 f"outside the most probable branch.")
    return note


def candidate_limits(clade: str | None, excluded: bool, sets: Sequence[str]) -> str:
    """What restricts identify's candidates, in words ("" when nothing does)."""
    parts = []
    if clade:
        parts.append(f"{'outside' if excluded else 'inside'} {clade}")
    if sets:
        parts.append(f"of the set{'s' if len(sets) > 1 else ''} {', '.join(sets)}")
    return " and ".join(parts)


def top_taxa_html(predictions: Sequence[TaxonPrediction]) -> str:
    """The most probable taxa of one rank as a list with bars."""
    rows = "".join(f'<div class="tol-row">{_name_cell(p)}{_bar_cells(p.score)}</div>' for p in predictions)
    return f'{TREE_STYLE}<div class="tol-tree tol-top">{rows}</div>'


def _collection_image(root: str, path: str) -> Image.Image | None:
    """A collection image read only through `open_image` (which refuses any path leading outside
    `root`); None when it cannot be shown."""
    if not root or not path:
        return None
    try:
        return open_image(root, path)
    except ImageError as e:
        logger.warning("image refused: %s", e)
        return None


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def thumbnail_bytes(root: str, path: str, size: int = THUMBNAIL_PX) -> bytes | None:
    """A square JPEG thumbnail of a collection image, `size` px or its shorter side when that is smaller (the
    browser scales it; an upscaled copy would only weigh more); None when it cannot be shown."""
    image = _collection_image(root, path)
    if image is None:
        return None
    side = min(size, *image.size)
    return _jpeg(ImageOps.fit(image, (side, side)), THUMBNAIL_QUALITY)


def full_image_bytes(root: str, path: str, max_px: int = DETAIL_MAX_PX) -> bytes | None:
    """The whole collection image (not cropped; at most `max_px` on its longer side) as JPEG; None when
    it cannot be shown."""
    image = _collection_image(root, path)
    if image is None:
        return None
    image.thumbnail((max_px, max_px))
    return _jpeg(image, DETAIL_QUALITY)


def detail_fields(hit: SearchHit, record: ImageRecord | None) -> list[tuple[str, str]]:
    """Every field of an image, as (field, value): the catalog record when there is one (provenance,
    licence, sha256, size), else what the store's payload holds; then its names from kingdom to species."""
    fields: list[tuple[str, str]] = [("id", hit.id)]
    if record is not None:
        fields += [("path", record.path), ("root", record.root), ("sha256", record.sha256),
                   ("bytes", f"{record.bytes:,}"), ("width", str(record.width)), ("height", str(record.height)),
                   ("split", record.split), ("source", record.source), ("license", record.license),
                   ("status", record.status)]
        lineage = record.lineage
    else:
        fields += [("path", hit.path), ("split", hit.split), ("source", hit.source), ("license", hit.license)]
        lineage = hit.lineage
    fields += [("taxon", lineage.key() or UNLABELLED)]
    fields += [(rank.label, lineage.binomial if rank == Rank.SPECIES else lineage.get(rank)) for rank in Rank]
    fields.append(("common_name", lineage.common_name))
    return [(name, value if value not in ("", None) else "–") for name, value in fields]


@dataclass(frozen=True)
class Example:
    """A query text offered to the user, from the taxa in the store."""

    label: str
    text: str


def examples(service: SearchService, species: int = EXAMPLE_SPECIES) -> list[Example]:
    """The best-represented species (by common name where there is one) and the largest family."""
    out = []
    for option in service.clade_options(Rank.SPECIES)[:species]:
        lineage = parse_key(option.key).with_common_name(option.common_name)
        out.append(Example(option.common_name or option.name, caption(lineage, EXAMPLE_TEXT_TYPE)))
    families = service.clade_options(Rank.FAMILY)
    if families:
        family = families[0]
        out.append(Example(f"{family.name} (family)", caption(parse_key(family.key), EXAMPLE_TEXT_TYPE)))
    return out


def hit_title(hit: SearchHit) -> tuple[str, str]:
    """(common name or scientific name, scientific name or "") for a result card."""
    if hit.lineage.is_empty:
        return UNLABELLED, ""
    if hit.common_name:
        return hit.common_name, hit.name
    return hit.name, ""


def short_label(hit: SearchHit) -> str:
    """A collection image by its names only (the caption of a query image)."""
    title, scientific = hit_title(hit)
    return f"{title} ({scientific})" if scientific else title


def option_label(hit: SearchHit) -> str:
    """How a collection image is listed in the picker."""
    title, scientific = hit_title(hit)
    name = f"{title} ({scientific})" if scientific else title
    return f"{name} — {hit.path}"


@dataclass(frozen=True)
class CardAction:
    """A button under each result card: `action` is what a click asks for, `icon` a Material Symbol's name."""

    action: str
    label: str
    icon: str
    help: str


DETAILS = CardAction("detail", "Details", "info", "The whole image, its catalog record and its look-alikes")
LOOK_ALIKES = CardAction("alike", "Look-alikes", "image_search", "Images that look like this one")
IDENTIFY_THIS = CardAction("identify", "Identify", "biotech", "The taxa this image is closest to")
CARD_ACTIONS: tuple[CardAction, ...] = (DETAILS, LOOK_ALIKES, IDENTIFY_THIS)
NARROW = "narrow"  # a part of a card's breadcrumb: only this clade
CRUMB_SEPARATOR = "›"


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _button(action: str, target: str, label: str, help: str, icon: str = "") -> str:
    symbol = f'<span class="tol-icon" aria-hidden="true">{icon}</span>' if icon else ""
    named = f' aria-label="{_attr(label)}"' if icon else ""  # on a phone only the icon shows
    return (f'<button type="button" data-action="{_attr(action)}" data-target="{_attr(target)}" '
            f'title="{_attr(help)}"{named}>{symbol}<span class="tol-label">{html.escape(label)}</span></button>')


def card_html(hit: SearchHit, picture: bytes | None) -> str:
    """A result card: the thumbnail (`picture`, JPEG bytes), the names and score one line each (cut with an
    ellipsis, in full on hover), the lineage as a breadcrumb whose parts narrow the filter, and the actions.

    Each button names its action and its target (`data-action`, `data-target`); the card names its image
    (`data-id`).
    """
    title, scientific = hit_title(hit)
    score = f"{hit.score:.3f}" if hit.score is not None else "–"
    full_score = f"similarity {hit.score!r}" if hit.score is not None else "no score"
    meta = " · ".join(part for part in (score, hit.split) if part)
    if picture is not None:
        image = f'<img src="data:image/jpeg;base64,{base64.b64encode(picture).decode("ascii")}" alt="{_attr(title)}">'
    else:
        image = '<div class="tol-no-image">image unavailable</div>'
    lines = [f'<div class="tol-card-title" title="{_attr(title)}">{html.escape(title)}</div>']
    if scientific:
        lines.append(f'<div title="{_attr(scientific)}"><i>{html.escape(scientific)}</i></div>')
    lines.append(f'<div class="tol-card-meta" title="{_attr(full_score)}">{html.escape(meta)}</div>')
    actions = [_button(a.action, hit.id, a.label, a.help, a.icon) for a in CARD_ACTIONS]
    return (f'<div class="tol-card" data-id="{_attr(hit.id)}">{image}<div class="tol-card-text">{"".join(lines)}'
            f'</div>{crumbs_html(hit.lineage)}<div class="tol-actions">{"".join(actions)}</div></div>')


def crumbs_html(lineage: Lineage) -> str:
    """kingdom › phylum › ... › species, each part a button that narrows the filter to its clade."""
    crumbs = breadcrumb(lineage, Rank.SPECIES)
    parts = [_button(NARROW, crumb.key, crumb.name + ("" if crumb is crumbs[-1] else f" {CRUMB_SEPARATOR}"),
                     f"Only this {crumb.rank.label}: {crumb.key}") for crumb in crumbs]
    return f'<div class="tol-crumbs">{"".join(parts)}</div>'


def taxa_html(hits: Sequence[SearchHit], rank_label: str) -> str:
    """The closest taxa, one button each ("name (common name) · score") that narrows the filter to the taxon."""
    buttons = []
    for hit in hits:
        label = hit.name + (f" ({hit.common_name})" if hit.common_name else "")
        buttons.append(_button(NARROW, hit.taxon, f"{label} · {hit.score:.3f}",
                               f"Only this {rank_label}: {hit.taxon} ({hit.n_images} images)"))
    return f'<div class="tol-taxa">{"".join(buttons)}</div>'
