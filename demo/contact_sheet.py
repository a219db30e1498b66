"""A contact sheet of a collection: one labelled row per family, one picture per species.

Families are picked round-robin over the classes (largest families first), then laid out in
taxonomic order with a header wherever the class changes, so relatives sit side by side.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from demo.constants import (
    SHEET_BACKGROUND, SHEET_CAPTION_HEIGHT, SHEET_COLOURS, SHEET_FAMILIES, SHEET_FAMILIES_PER_CLASS, SHEET_FONT,
    SHEET_FONT_BOLD, SHEET_FONT_ITALIC, SHEET_INK, SHEET_LABEL_WIDTH, SHEET_MARGIN, SHEET_MUTED, SHEET_PER_ROW,
    SHEET_RULE, SHEET_THUMB, SPLIT_TRAIN,
)
from index.collection.images import open_image
from taxonomy import Lineage, Rank
from taxonomy.columns import PATH_COLUMN, HeaderMap

logger = logging.getLogger(__name__)

HEADER_HEIGHT = 22


@dataclass(frozen=True)
class Sample:
    """The picture that stands for one species on the sheet."""

    lineage: Lineage
    path: str


def read_samples(catalog: Path) -> list[Sample]:
    """One picture per species of a catalog: its first training picture, else its first."""
    chosen: dict[str, tuple[bool, Sample]] = {}
    with catalog.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = HeaderMap.from_headers(reader.fieldnames or [])
        for row in reader:
            lineage = header.lineage(row)
            if lineage.deepest_rank != Rank.SPECIES:
                continue
            is_train = header.value(row, "split") in ("", SPLIT_TRAIN)
            known = chosen.get(lineage.key())
            if known is None or (is_train and not known[0]):
                chosen[lineage.key()] = (is_train, Sample(lineage, header.value(row, PATH_COLUMN)))
    return [sample for _, sample in chosen.values()]


def pick_families(samples: list[Sample], families: int) -> list[list[Sample]]:
    """`families` rows of samples in taxonomic order: the largest families of classes taken in turn
    from each kingdom (largest classes first), `SHEET_FAMILIES_PER_CLASS` per class."""
    by_family: dict[str, list[Sample]] = {}
    for sample in samples:
        by_family.setdefault(sample.lineage.key(Rank.FAMILY), []).append(sample)
    by_class: dict[str, list[str]] = {}
    for key in sorted(by_family, key=lambda k: (-len(by_family[k]), k)):
        by_class.setdefault(by_family[key][0].lineage.key(Rank.CLASS), []).append(key)
    by_kingdom: dict[str, list[str]] = {}
    for key in sorted(by_class, key=lambda k: (-sum(len(by_family[f]) for f in by_class[k]), k)):
        by_kingdom.setdefault(key.split("/")[0], []).append(key)
    queues = sorted(by_kingdom.values(), key=lambda q: -sum(len(by_family[f]) for c in q for f in by_class[c]))
    picked: list[str] = []
    for turn in range(max(len(queue) for queue in queues)):
        for queue in queues:
            if turn < len(queue):
                picked += by_class[queue[turn]][:SHEET_FAMILIES_PER_CLASS]
    return [sorted(by_family[key], key=lambda s: s.lineage.key()) for key in sorted(picked[:families])]


def _font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)
    except (ImportError, OSError):
        logger.debug("font %s not found; using Pillow's default", name)
        return ImageFont.load_default(size)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def make_contact_sheet(
    catalog: Path, images: Path, out: Path, families: int = SHEET_FAMILIES, per_row: int = SHEET_PER_ROW
) -> Path:
    """Render the sheet to `out` (a palettised PNG) and return its path.

    Raises:
        ValueError: the catalog holds no species-level rows.
    """
    rows = pick_families(read_samples(Path(catalog)), families)
    if not rows:
        raise ValueError(f"{catalog} has no rows named down to the species; nothing to show")
    thumb, cell = SHEET_THUMB, SHEET_THUMB + SHEET_MARGIN
    row_height = thumb + SHEET_CAPTION_HEIGHT + SHEET_MARGIN
    classes = [row[0].lineage.key(Rank.CLASS) for row in rows]
    headers = sum(1 for i, key in enumerate(classes) if i == 0 or key != classes[i - 1])
    width = SHEET_MARGIN * 2 + SHEET_LABEL_WIDTH + per_row * cell
    height = SHEET_MARGIN * 2 + len(rows) * row_height + headers * HEADER_HEIGHT
    sheet = Image.new("RGB", (width, height), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    bold, regular, small, italic = (_font(SHEET_FONT_BOLD, 14), _font(SHEET_FONT, 11), _font(SHEET_FONT, 10),
                                    _font(SHEET_FONT_ITALIC, 10))
    y = SHEET_MARGIN
    for i, row in enumerate(rows):
        lineage = row[0].lineage
        if i == 0 or classes[i] != classes[i - 1]:
            rule = y + HEADER_HEIGHT - 4
            draw.line([(SHEET_MARGIN, rule), (width - SHEET_MARGIN, rule)], fill=SHEET_RULE)
            title = f"{lineage.kingdom} · {lineage.phylum} · {lineage.cls}"
            draw.text((SHEET_MARGIN, y + 2), title, font=bold, fill=SHEET_INK)
            y += HEADER_HEIGHT
        x = SHEET_MARGIN
        draw.text((x, y + 8), lineage.family, font=bold, fill=SHEET_INK)
        draw.text((x, y + 28), f"order {lineage.order}", font=regular, fill=SHEET_MUTED)
        genera = sorted({s.lineage.genus for s in row})
        draw.text((x, y + 44), _fit(draw, f"{len(row)} species, {len(genera)} genera", regular, SHEET_LABEL_WIDTH - 10),
                  font=regular, fill=SHEET_MUTED)
        x += SHEET_LABEL_WIDTH
        for sample in row[:per_row]:
            picture = open_image(images, sample.path)
            sheet.paste(picture.resize((thumb, thumb), Image.Resampling.LANCZOS), (x, y))
            common, binomial = sample.lineage.common_name, sample.lineage.binomial
            draw.text((x, y + thumb + 2), _fit(draw, common, small, thumb), font=small, fill=SHEET_INK)
            draw.text((x, y + thumb + 13), _fit(draw, binomial, italic, thumb), font=italic, fill=SHEET_MUTED)
            x += cell
        y += row_height
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(SHEET_COLOURS, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    logger.info("contact sheet of %d families written to %s", len(rows), out)
    return out
