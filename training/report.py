"""Evaluation results as text tables, markdown, tidy CSV and a matplotlib figure.

Pure formatting: nothing here computes a metric. The CSV is tidy (one measured value per row), so
it loads straight into a spreadsheet or a DataFrame; the tables are for people.
"""
from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from taxonomy import Rank
from training.evaluate import MISTAKE_LEVELS, TOP_KS, ModelEvaluation

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("table", "csv", "markdown")
DEFAULT_FORMAT = "table"
MISSING = "-"
HISTOGRAM_WIDTH = 30  # characters of the longest bar in the text histogram
PLOT_DPI = 120
PLOT_SIZE = (12.0, 4.6)  # inches, two panels
HEATMAP_SIZE = (17.0, 4.8)  # inches, three panels


@dataclass(frozen=True)
class MetricRow:
    """One measured value: the rows of the CSV output.

    `metric` is `zero_shot` (k = 1 or 5: top-k), `few_shot` (k = shots, `std` across folds) or
    `mistake` (k = 0, `rank` = where a wrong species prediction meets the truth, `value` = fraction of
    the wrong predictions, `images` = their count).
    """

    model: str
    spec: str
    split: str
    text_type: str
    metric: str
    rank: str
    k: int
    value: float
    std: float
    classes: int
    images: int


CSV_COLUMNS: tuple[str, ...] = tuple(MetricRow.__dataclass_fields__)


def metric_rows(evaluations: Sequence[ModelEvaluation]) -> list[MetricRow]:
    """Every number of every evaluation, one per row."""
    rows: list[MetricRow] = []
    for ev in evaluations:
        for zs in ev.zero_shot:
            for acc in zs.ranks:
                for k in TOP_KS:
                    value = acc.top1 if k == 1 else acc.top5
                    rows.append(MetricRow(ev.model, ev.spec, ev.split, zs.text_type, "zero_shot", acc.rank, k,
                                          value, 0.0, acc.classes, acc.images))
            for mistake in zs.mistakes:
                rows.append(MetricRow(ev.model, ev.spec, ev.split, zs.text_type, "mistake", mistake.level, 0,
                                      mistake.fraction, 0.0, 0, mistake.count))
        for fs in ev.few_shot:
            rows.append(MetricRow(ev.model, ev.spec, ev.split, "", "few_shot", fs.rank, fs.shots, fs.mean, fs.std,
                                  fs.classes, fs.queries))
    return rows


def to_csv(evaluations: Sequence[ModelEvaluation]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in metric_rows(evaluations):
        writer.writerow({key: (f"{value:.6f}" if isinstance(value, float) else value)
                         for key, value in asdict(row).items()})
    return buffer.getvalue()


def render(headers: Sequence[str], rows: Sequence[Sequence[object]], style: str = "table") -> str:
    """A plain aligned table (`table`) or a GitHub markdown table (`markdown`)."""
    cells = [[str(cell) for cell in row] for row in rows]
    if style == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines)
    if style != "table":
        raise ValueError(f"unknown table style {style!r}; expected table or markdown")
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    line = lambda items: "  ".join(str(item).ljust(width) for item, width in zip(items, widths)).rstrip()
    return "\n".join([line(headers), line("-" * w for w in widths), *(line(row) for row in cells)])


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _has_many_text_types(evaluations: Sequence[ModelEvaluation]) -> bool:
    return len({zs.text_type for ev in evaluations for zs in ev.zero_shot}) > 1


def zero_shot_table(evaluations: Sequence[ModelEvaluation]) -> tuple[list[str], list[list[str]]]:
    """Rows = model x text type, columns = ranks, cells = `top-1 / top-5` in percent."""
    headers = ["model", "text type", *(rank.label for rank in Rank), "images"]
    rows = []
    for ev in evaluations:
        for zs in ev.zero_shot:
            cells = []
            for rank in Rank:
                acc = zs.at(rank)
                cells.append(f"{_pct(acc.top1)} / {_pct(acc.top5)}" if acc else MISSING)
            rows.append([ev.model, zs.text_type, *cells, str(ev.images)])
    return headers, rows


def classes_table(evaluations: Sequence[ModelEvaluation]) -> tuple[list[str], list[list[str]]]:
    """How many candidate classes each rank had (chance = 1 / classes), from the first evaluation."""
    first = next((zs for ev in evaluations for zs in ev.zero_shot), None)
    headers = ["", *(rank.label for rank in Rank)]
    if first is None:
        return headers, []
    counts = [str(acc.classes) if (acc := first.at(rank)) else MISSING for rank in Rank]
    chance = [_pct(acc.chance) if (acc := first.at(rank)) else MISSING for rank in Rank]
    return headers, [["classes", *counts], ["chance top-1 %", *chance]]


def few_shot_table(evaluations: Sequence[ModelEvaluation]) -> tuple[list[str], list[list[str]]]:
    """Rows = models, columns = k-shot, cells = `mean ± std` in percent over the folds."""
    shots = sorted({fs.shots for ev in evaluations for fs in ev.few_shot})
    headers = ["model", *(f"{k}-shot" for k in shots), "classes", "folds"]
    rows = []
    for ev in evaluations:
        if not ev.few_shot:
            continue
        cells = [f"{_pct(fs.mean)} ± {_pct(fs.std)}" if (fs := ev.few_shot_for(k)) else MISSING for k in shots]
        rows.append([ev.model, *cells, str(ev.few_shot[0].classes), str(ev.few_shot[0].folds)])
    return headers, rows


def mistakes_table(evaluations: Sequence[ModelEvaluation]) -> tuple[list[str], list[list[str]]]:
    """Rows = model x text type, columns = where wrong species predictions meet the truth (counts)."""
    headers = ["model", "text type", "wrong", *MISTAKE_LEVELS]
    rows = []
    for ev in evaluations:
        for zs in ev.zero_shot:
            wrong = sum(m.count for m in zs.mistakes)
            rows.append([ev.model, zs.text_type, str(wrong), *(str(m.count) for m in zs.mistakes)])
    return headers, rows


def mistakes_histogram(evaluations: Sequence[ModelEvaluation]) -> str:
    """A text histogram of the lowest-common-ancestor rank of wrong species predictions."""
    blocks = []
    for ev in evaluations:
        for zs in ev.zero_shot:
            wrong = sum(m.count for m in zs.mistakes)
            lines = [f"{ev.model} ({zs.text_type}): {wrong} wrong species predictions"]
            most = max((m.count for m in zs.mistakes), default=0) or 1
            width = max(len(level) for level in MISTAKE_LEVELS)
            for m in zs.mistakes:
                bar = "#" * round(HISTOGRAM_WIDTH * m.count / most)
                lines.append(f"  {m.level.ljust(width)} {bar} {m.count} ({_pct(m.fraction)} %)")
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_report(evaluations: Sequence[ModelEvaluation], fmt: str = DEFAULT_FORMAT) -> str:
    """The whole report in one of FORMATS."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return to_csv(evaluations)
    split = next((ev.split for ev in evaluations), "")
    where = f"split {split!r}" if split else "all images"
    sections: list[tuple[str, tuple[list[str], list[list[str]]]]] = []
    if any(ev.zero_shot for ev in evaluations):
        sections.append((f"Zero-shot accuracy, top-1 / top-5 (%), {where}", zero_shot_table(evaluations)))
        sections.append(("Candidate classes per rank", classes_table(evaluations)))
    if any(ev.few_shot for ev in evaluations):
        first = next(fs for ev in evaluations for fs in ev.few_shot)
        sections.append((f"Few-shot (SimpleShot, {first.rank}), mean ± std over {first.folds} folds (%)",
                         few_shot_table(evaluations)))
    if any(ev.zero_shot for ev in evaluations):
        sections.append(("Wrong species predictions by rank of the lowest common ancestor with the truth",
                         mistakes_table(evaluations)))
    out = []
    for title, (headers, rows) in sections:
        heading = f"### {title}" if fmt == "markdown" else title
        out.append(f"{heading}\n\n{render(headers, rows, fmt)}")
    if any(ev.zero_shot for ev in evaluations):
        histogram = mistakes_histogram(evaluations)
        out.append(f"### Histogram of mistakes\n\n```\n{histogram}\n```" if fmt == "markdown"
                   else f"Histogram of mistakes\n\n{histogram}")
    return "\n\n".join(out) + "\n"


# --- the figure -----------------------------------------------------------------------------------


def _series_label(ev: ModelEvaluation, text_type: str, many_types: bool) -> str:
    return f"{ev.model} ({text_type})" if many_types else ev.model


def plot_evaluations(evaluations: Sequence[ModelEvaluation], path: str | Path, title: str = "",
                     matrix: tuple[list[str], list[str], list[list[float]]] | None = None,
                     matrix_title: str = "") -> Path:
    """Accuracy per rank (one line per model and text type; top-1 solid, top-5 dashed, chance dotted)
    beside the histogram of species mistakes; `matrix` (row labels, column labels, values in 0..1)
    adds a heatmap panel. Written as PNG.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: a file is all we want
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    panels = 3 if matrix is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=HEATMAP_SIZE if matrix is not None else PLOT_SIZE,
                             gridspec_kw={"width_ratios": [1.2, 1, 1.1][:panels]})
    acc_ax, hist_ax = axes[0], axes[1]
    many = _has_many_text_types(evaluations)
    ranks = [rank.label for rank in Rank]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    series = [(ev, zs) for ev in evaluations for zs in ev.zero_shot]
    chance_drawn = False
    for i, (ev, zs) in enumerate(series):
        colour = colours[i % len(colours)]
        xs = [j for j, rank in enumerate(ranks) if zs.at(rank)]
        top1 = [100 * zs.at(ranks[j]).top1 for j in xs]
        top5 = [100 * zs.at(ranks[j]).top5 for j in xs]
        acc_ax.plot(xs, top1, "o-", color=colour, label=_series_label(ev, zs.text_type, many))
        acc_ax.plot(xs, top5, "--", color=colour, alpha=0.5)
        if not chance_drawn:
            acc_ax.plot(xs, [100 * zs.at(ranks[j]).chance for j in xs], ":", color="grey", label="chance")
            chance_drawn = True
    acc_ax.set_xticks(range(len(ranks)), ranks, rotation=30)
    acc_ax.set_ylim(0, 102)
    acc_ax.set_ylabel("zero-shot accuracy (%)")
    acc_ax.set_title("Zero-shot top-1 (solid) and top-5 (dashed) per rank", fontsize=10)
    acc_ax.grid(alpha=0.3)
    if series:
        acc_ax.legend(fontsize=7, loc="lower left")

    width = 0.8 / max(1, len(series))
    for i, (ev, zs) in enumerate(series):
        offsets = np.arange(len(MISTAKE_LEVELS)) + (i - (len(series) - 1) / 2) * width
        hist_ax.bar(offsets, [100 * m.fraction for m in zs.mistakes], width, color=colours[i % len(colours)],
                    label=_series_label(ev, zs.text_type, many))
    hist_ax.set_xticks(range(len(MISTAKE_LEVELS)), MISTAKE_LEVELS, rotation=30)
    hist_ax.set_ylabel("% of wrong species predictions")
    hist_ax.set_title("Where species mistakes meet the truth\n(rank of the lowest common ancestor)", fontsize=10)
    hist_ax.grid(alpha=0.3, axis="y")

    if matrix is not None:
        row_labels, column_labels, values = matrix
        heat_ax = axes[2]
        grid = 100 * np.asarray(values, dtype=float)
        image = heat_ax.imshow(grid, cmap="viridis", vmin=0, vmax=max(1.0, float(np.nanmax(grid))))
        heat_ax.set_xticks(range(len(column_labels)), column_labels, rotation=30)
        heat_ax.set_yticks(range(len(row_labels)), row_labels)
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                heat_ax.text(c, r, f"{grid[r, c]:.1f}", ha="center", va="center", fontsize=8,
                             color="white" if grid[r, c] < 0.6 * np.nanmax(grid) else "black")
        heat_ax.set_xlabel("test text type")
        heat_ax.set_ylabel("training text type")
        heat_ax.set_title(matrix_title, fontsize=10)
        fig.colorbar(image, ax=heat_ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=PLOT_DPI)
    plt.close(fig)
    logger.info("plot written to %s", path)
    return path
