"""The paper's evaluation protocol (BioCLIP, Stevens et al. 2024, §4) as metric functions.

- Zero-shot top-1 and top-5 at every rank: class embeddings from SPEC §4's template averaging
  (`Encoder.encode_taxa`), the classes at rank r being the distinct rank-r taxa of the candidates.
- Few-shot: SimpleShot (Wang et al. 2019), a nearest-centroid classifier on image embeddings that
  are centred on the mean of the support embeddings and L2-normalised; k shots per species, averaged
  over seeded folds and reported with the standard deviation across folds.
- Mistakes: for each wrong species prediction, the rank of the lowest common ancestor of the
  prediction and the truth (`TaxonTree.lca_rank`): inside the genus is a near miss, "life" (another
  kingdom) the worst.

The metric functions take numpy arrays and lineages only, so a small case can be checked by hand;
`evaluate_embeddings` runs them all for one model, and `embed_collection` turns images into the
embeddings they need. Training's per-epoch zero-shot is `zero_shot_split`: the same functions, top-1
only, with the chance and majority levels beside it.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from taxonomy import Lineage, Rank, class_name, validate_text_type
from training.constants import ZERO_SHOT_BATCH_SIZE

if TYPE_CHECKING:
    from embed.encoder import Encoder
    from index.collection.entries import CatalogEntry

logger = logging.getLogger(__name__)

TOP_KS: tuple[int, int] = (1, 5)
DEFAULT_SHOTS: tuple[int, ...] = (0, 1, 5)  # 0 stands for zero-shot
DEFAULT_FOLDS = 5
DEFAULT_SEED = 0
FEW_SHOT_RANK = Rank.SPECIES
LIFE = "life"  # the lowest common ancestor of taxa in different kingdoms: the root of the tree
# Closest first: a mistake inside the genus, then the family, ..., then across kingdoms.
MISTAKE_LEVELS: tuple[str, ...] = (*(rank.label for rank in reversed(Rank) if rank < Rank.SPECIES), LIFE)
_EPS = 1e-12
_NEVER = np.iinfo(np.int64).max  # the position of a true class that is not a candidate


# --- records --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankAccuracy:
    """Zero-shot accuracy at one rank: `images` labelled at that rank among `classes` candidates."""

    rank: str
    top1: float
    top5: float
    classes: int
    images: int

    @property
    def chance(self) -> float:
        """Top-1 of a uniform random guess."""
        return 1.0 / self.classes if self.classes else 0.0


@dataclass(frozen=True)
class MistakeDepth:
    """How many wrong species predictions share their lowest common ancestor with the truth at `level`."""

    level: str  # a rank label (genus .. kingdom) or LIFE
    count: int
    fraction: float  # of all wrong species predictions


@dataclass(frozen=True)
class ZeroShotEvaluation:
    """Zero-shot results of one model under one test text type."""

    text_type: str
    ranks: tuple[RankAccuracy, ...]
    mistakes: tuple[MistakeDepth, ...]

    def at(self, rank: Rank | str) -> RankAccuracy | None:
        label = Rank.parse(rank).label
        return next((item for item in self.ranks if item.rank == label), None)


@dataclass(frozen=True)
class FewShotAccuracy:
    """SimpleShot accuracy with `shots` support images per class, over `folds` seeded draws."""

    shots: int
    mean: float
    std: float  # sample standard deviation across folds (0 for a single fold)
    folds: int
    classes: int
    queries: int  # query images per fold
    rank: str = FEW_SHOT_RANK.label


@dataclass(frozen=True)
class ModelEvaluation:
    """Everything measured for one model on one collection split."""

    model: str  # the label shown in tables and plots
    spec: str
    split: str  # "" for the whole collection
    images: int
    zero_shot: tuple[ZeroShotEvaluation, ...]
    few_shot: tuple[FewShotAccuracy, ...]

    def zero_shot_for(self, text_type: str) -> ZeroShotEvaluation | None:
        return next((item for item in self.zero_shot if item.text_type == text_type), None)

    def few_shot_for(self, shots: int) -> FewShotAccuracy | None:
        return next((item for item in self.few_shot if item.shots == shots), None)


# --- zero-shot ------------------------------------------------------------------------------------


def true_class_positions(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Where each row's true class falls when the classes are sorted by falling score (0 = first).

    Ties go to the lower class index, as `argmax` breaks them, so top-1 agrees with `argmax`.
    A negative `truth` (the true taxon is not a candidate) gets a position past any k: never a hit.
    """
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    if scores.ndim != 2 or truth.shape != (scores.shape[0],):
        raise ValueError(f"expected scores (N, C) and truth (N,), got {scores.shape} and {truth.shape}")
    n, n_classes = scores.shape
    known = truth >= 0
    if np.any(truth >= n_classes):
        raise ValueError(f"a true class index is >= the {n_classes} classes")
    safe = np.where(known, truth, 0)
    true_scores = scores[np.arange(n), safe][:, None]
    before = np.arange(n_classes)[None, :] < safe[:, None]
    positions = (scores > true_scores).sum(axis=1) + ((scores == true_scores) & before).sum(axis=1)
    return np.where(known, positions, _NEVER)


def top_k_accuracy(scores: np.ndarray, truth: np.ndarray, ks: Sequence[int] = TOP_KS) -> dict[int, float]:
    """The fraction of rows whose true class is among the k best scores, for each k."""
    positions = true_class_positions(scores, truth)
    if len(positions) == 0:
        return {k: 0.0 for k in ks}
    return {k: float(np.mean(positions < k)) for k in ks}


def rank_classes(candidates: Sequence[Lineage], rank: Rank) -> list[Lineage]:
    """The distinct taxa at `rank` among the candidates, sorted by key.

    Each class is its lineage truncated at `rank` (no names below it); a common name is kept when
    one of the candidates truncated there has one.
    """
    classes: dict[str, Lineage] = {}
    for lineage in candidates:
        if lineage.get(rank):
            truncated = lineage.truncate(rank)
            key = truncated.key(rank)
            if key not in classes or (not classes[key].common_name and truncated.common_name):
                classes[key] = truncated
    return [classes[key] for key in sorted(classes)]


def majority_levels(true_lineages: Sequence[Lineage]) -> dict[Rank, float]:
    """Top-1 of always answering the most frequent true taxon: the bar for unbalanced ranks."""
    levels: dict[Rank, float] = {}
    for rank in Rank:
        keys = [lineage.key(rank) for lineage in true_lineages if lineage.get(rank)]
        if keys:
            levels[rank] = max(keys.count(key) for key in set(keys)) / len(keys)
    return levels


@dataclass(frozen=True)
class RankPrediction:
    """Zero-shot at one rank: the accuracy and, per evaluated image, the predicted class (-1: not evaluated)."""

    accuracy: RankAccuracy
    predicted: np.ndarray  # (N,) index into `classes`
    classes: tuple[Lineage, ...]


def zero_shot_at_rank(image_embeddings: np.ndarray, true_lineages: Sequence[Lineage],
                      classes: Sequence[Lineage], class_embeddings: np.ndarray, rank: Rank) -> RankPrediction | None:
    """Top-1/top-5 of unit image embeddings against unit class embeddings at one rank (cosine similarity).

    Images without a name at `rank` are left out; an image whose true taxon is not among the classes
    counts as wrong. Returns None when there is no class or no labelled image.
    """
    images = np.asarray(image_embeddings, dtype=np.float32)
    if len(images) != len(true_lineages):
        raise ValueError(f"{len(images)} image embeddings but {len(true_lineages)} lineages")
    if len(classes) != len(class_embeddings):
        raise ValueError(f"{len(classes)} classes but {len(class_embeddings)} class embeddings")
    labelled = np.array([i for i, lineage in enumerate(true_lineages) if lineage.get(rank)], dtype=np.int64)
    predicted = np.full(len(images), -1, dtype=np.int64)
    if not len(classes) or not len(labelled):
        return None
    index = {lineage.key(rank): i for i, lineage in enumerate(classes)}
    truth = np.array([index.get(true_lineages[i].key(rank), -1) for i in labelled], dtype=np.int64)
    missing = int((truth < 0).sum())
    if missing:
        logger.warning("%d of %d images have a %s that is not among the %d classes: counted as wrong",
                       missing, len(labelled), rank.label, len(classes))
    scores = images[labelled] @ np.asarray(class_embeddings, dtype=np.float32).T
    hits = top_k_accuracy(scores, truth, TOP_KS)
    predicted[labelled] = scores.argmax(axis=1)
    accuracy = RankAccuracy(rank.label, hits[1], hits[5], len(classes), len(labelled))
    return RankPrediction(accuracy, predicted, tuple(classes))


def mistake_depths(true_lineages: Sequence[Lineage], predicted_lineages: Sequence[Lineage]) -> tuple[MistakeDepth, ...]:
    """Where wrong species predictions meet the truth in the tree, closest level first (genus .. life).

    Pairs whose species keys agree are right and not counted. Every level is listed, zeros included.
    """
    from taxonomy.tree import TaxonTree

    if len(true_lineages) != len(predicted_lineages):
        raise ValueError(f"{len(true_lineages)} true lineages but {len(predicted_lineages)} predictions")
    wrong = [(t, p) for t, p in zip(true_lineages, predicted_lineages)
             if t.key(Rank.SPECIES) != p.key(Rank.SPECIES)]
    counts: Counter[str] = Counter()
    if wrong:
        tree = TaxonTree.from_lineages([lineage for pair in wrong for lineage in pair])
        for truth, prediction in wrong:
            rank = tree.lca_rank(truth.key(), prediction.key())
            counts[LIFE if rank is None else rank.label] += 1
    total = len(wrong)
    return tuple(MistakeDepth(level, counts[level], counts[level] / total if total else 0.0)
                 for level in MISTAKE_LEVELS)


def class_embeddings(encoder: "Encoder", candidates: Sequence[Lineage], text_type: str,
                     cache: dict[str, np.ndarray] | None = None,
                     ranks: Sequence[Rank] | None = None) -> dict[Rank, tuple[list[Lineage], np.ndarray]]:
    """The candidates' classes at each rank (default: all seven) and their template-averaged embeddings.

    The templates only see the class string, so vectors are kept in `cache` by that string: above
    species every text type names a taxon by its taxonomic string, and a second text type with the
    same cache only encodes its species. Pass one cache per model, never across models.
    """
    validate_text_type(text_type)
    cache = {} if cache is None else cache
    ranks = sorted(Rank if ranks is None else set(ranks))
    per_rank = {rank: rank_classes(candidates, rank) for rank in ranks}
    todo: dict[str, Lineage] = {}
    for rank in ranks:
        for lineage in per_rank[rank]:
            name = class_name(lineage, text_type)
            if name not in cache:
                todo.setdefault(name, lineage)
    if todo:
        cache.update(zip(todo, encoder.encode_taxa(list(todo.values()), text_type)))
    out: dict[Rank, tuple[list[Lineage], np.ndarray]] = {}
    for rank in ranks:
        names = per_rank[rank]
        vectors = [cache[class_name(lineage, text_type)] for lineage in names]
        out[rank] = (names, np.stack(vectors) if vectors else np.zeros((0, encoder.dim), np.float32))
    return out


def zero_shot(image_embeddings: np.ndarray, true_lineages: Sequence[Lineage],
              classes: dict[Rank, tuple[list[Lineage], np.ndarray]], text_type: str) -> ZeroShotEvaluation:
    """Zero-shot at every rank plus the depth of the species mistakes, from precomputed class embeddings."""
    ranks: list[RankAccuracy] = []
    mistakes = mistake_depths([], [])
    for rank in Rank:
        names, vectors = classes.get(rank, ([], np.zeros((0, 0), np.float32)))
        result = zero_shot_at_rank(image_embeddings, true_lineages, names, vectors, rank)
        if result is None:
            continue
        ranks.append(result.accuracy)
        if rank == Rank.SPECIES:
            evaluated = np.flatnonzero(result.predicted >= 0)
            mistakes = mistake_depths([true_lineages[i] for i in evaluated],
                                      [result.classes[result.predicted[i]] for i in evaluated])
    return ZeroShotEvaluation(text_type, tuple(ranks), mistakes)


# --- few-shot (SimpleShot) ------------------------------------------------------------------------


def centre_normalise(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """SimpleShot's CL2N: subtract the support mean, then scale each row to unit length."""
    centred = np.asarray(vectors, dtype=np.float64) - mean
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), _EPS)


def nearest_centroid(support: np.ndarray, support_labels: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """SimpleShot's prediction: the label of the nearest class centroid (Euclidean) after CL2N.

    Labels are integers; the centroid of a class is the mean of its centred, normalised support vectors.
    """
    support = np.asarray(support, dtype=np.float64)
    mean = support.mean(axis=0)
    s, q = centre_normalise(support, mean), centre_normalise(queries, mean)
    labels = np.unique(support_labels)
    centroids = np.stack([s[support_labels == label].mean(axis=0) for label in labels])
    distances = ((q[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return labels[distances.argmin(axis=1)]


def _draw_fold(rng: np.random.Generator, labels: np.ndarray, shots: int, support_labels: np.ndarray | None,
               classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Support indices and query indices of one fold (support indices point into the support set)."""
    support, queries = [], []
    for label in classes:
        own = np.flatnonzero(labels == label)
        if support_labels is None:
            chosen = rng.choice(own, size=shots, replace=False)
            support.append(chosen)
            queries.append(np.setdiff1d(own, chosen))
        else:
            support.append(rng.choice(np.flatnonzero(support_labels == label), size=shots, replace=False))
            queries.append(own)
    return np.concatenate(support), np.concatenate(queries)


def few_shot_accuracy(embeddings: np.ndarray, labels: Sequence[str], shots: int, folds: int = DEFAULT_FOLDS,
                      seed: int = DEFAULT_SEED, support: np.ndarray | None = None,
                      support_labels: Sequence[str] | None = None) -> FewShotAccuracy | None:
    """SimpleShot accuracy with `shots` support images per class, mean and spread over `folds` seeded folds.

    Without `support`, each fold draws the support from the evaluated images themselves (a class needs
    more than `shots` images; the rest are its queries). With `support` (say a training split), each
    fold draws `shots` support images per class from it, and every evaluated image of that class is a
    query. Classes that cannot give `shots` support images (and one query) are left out, with a warning.
    Returns None when fewer than two classes remain.
    """
    if shots < 1:
        raise ValueError(f"few-shot needs at least 1 shot, got {shots}")
    if folds < 1:
        raise ValueError(f"few-shot needs at least 1 fold, got {folds}")
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if len(embeddings) != len(labels):
        raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
    names = sorted(set(labels) | set(support_labels or ()))
    code = {name: i for i, name in enumerate(names)}
    y = np.array([code[name] for name in labels], dtype=np.int64)
    if support is None:
        pool, pool_y = embeddings, None
        counts = Counter(y.tolist())
        usable = [c for c, n in counts.items() if n > shots]
    else:
        if support_labels is None or len(support) != len(support_labels):
            raise ValueError("support embeddings need one label each")
        pool = np.asarray(support, dtype=np.float64)
        pool_y = np.array([code[name] for name in support_labels], dtype=np.int64)
        support_counts = Counter(pool_y.tolist())
        usable = [c for c in set(y.tolist()) if support_counts[c] >= shots]
    classes = np.array(sorted(usable), dtype=np.int64)
    left_out = len(set(y.tolist())) - len(classes)
    if left_out:
        why = f"at most {shots} images" if support is None else f"fewer than {shots} support images"
        logger.warning("%d-shot: %d of %d classes left out (they have %s)", shots, left_out, len(set(y.tolist())), why)
    if len(classes) < 2:
        logger.warning("%d-shot: fewer than two classes with enough images; no few-shot result", shots)
        return None
    accuracies = []
    query_count = 0
    for fold in range(folds):
        rng = np.random.default_rng([seed, shots, fold])
        support_index, query_index = _draw_fold(rng, y, shots, pool_y, classes)
        support_y = (y if pool_y is None else pool_y)[support_index]
        predicted = nearest_centroid(pool[support_index], support_y, embeddings[query_index])
        accuracies.append(float(np.mean(predicted == y[query_index])))
        query_count = len(query_index)
    spread = float(np.std(accuracies, ddof=1)) if folds > 1 else 0.0
    return FewShotAccuracy(shots, float(np.mean(accuracies)), spread, folds, len(classes), query_count)


# --- one model ------------------------------------------------------------------------------------


def parse_ranks(text: str) -> tuple[Rank, ...]:
    """`"genus,species"` -> (Rank.GENUS, Rank.SPECIES); `all` -> every rank. Unknown names raise ValueError."""
    if text.strip() == "all":
        return tuple(Rank)
    ranks = {Rank.parse(part) for part in text.split(",") if part.strip()}
    if not ranks:
        raise ValueError(f"no rank in {text!r}; expected some of {', '.join(r.label for r in Rank)} or all")
    return tuple(sorted(ranks))


def parse_shots(text: str) -> tuple[int, ...]:
    """`"0,1,5"` -> (0, 1, 5); 0 is zero-shot. The error says what is accepted."""
    try:
        shots = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"bad --shots {text!r}; expected comma-separated whole numbers such as 0,1,5") from None
    if not shots or shots[0] < 0:
        raise ValueError(f"bad --shots {text!r}; expected comma-separated whole numbers >= 0 such as 0,1,5")
    return shots


def evaluate_embeddings(encoder: "Encoder", label: str, embeddings: np.ndarray, true_lineages: Sequence[Lineage],
                        candidates: Sequence[Lineage] | None = None, text_types: Sequence[str] = ("taxon_com",),
                        shots: Sequence[int] = DEFAULT_SHOTS, folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED,
                        support: tuple[np.ndarray, Sequence[Lineage]] | None = None, split: str = "",
                        ranks: Sequence[Rank] | None = None) -> ModelEvaluation:
    """Zero-shot (if 0 is in `shots`) under each text type, and few-shot for each k > 0, of one model.

    `candidates` default to the evaluated lineages; `support` is (embeddings, lineages) of a separate
    support split, else few-shot support comes from the evaluated images. `ranks` limits the zero-shot
    ranks (default: all seven); the texts of 81 templates per class are most of an evaluation's cost.
    """
    candidates = list(true_lineages) if candidates is None else list(candidates)
    zero: list[ZeroShotEvaluation] = []
    if 0 in shots:
        cache: dict[str, np.ndarray] = {}
        for text_type in text_types:
            classes = class_embeddings(encoder, candidates, text_type, cache, ranks)
            zero.append(zero_shot(embeddings, true_lineages, classes, text_type))
    few: list[FewShotAccuracy] = []
    with_species = [i for i, lineage in enumerate(true_lineages) if lineage.get(FEW_SHOT_RANK)]
    labels = [true_lineages[i].key(FEW_SHOT_RANK) for i in with_species]
    support_vectors, support_labels = None, None
    if support is not None:
        kept = [i for i, lineage in enumerate(support[1]) if lineage.get(FEW_SHOT_RANK)]
        support_vectors = np.asarray(support[0])[kept]
        support_labels = [support[1][i].key(FEW_SHOT_RANK) for i in kept]
    for k in shots:
        if k == 0:
            continue
        result = few_shot_accuracy(np.asarray(embeddings)[with_species], labels, k, folds, seed,
                                   support_vectors, support_labels)
        if result is not None:
            few.append(result)
    return ModelEvaluation(label, encoder.loaded.spec, split, len(true_lineages), tuple(zero), tuple(few))


def embed_collection(encoder: "Encoder", root: Path, entries: Sequence["CatalogEntry"], workers: int = 0,
                     batch_size: int | None = None) -> np.ndarray:
    """Unit image embeddings of the entries with the model's eval transform, in entry order.

    The images are read by the build's `embed.data.image_loader`; an unreadable one raises its ImageError.
    """
    from embed.data import image_loader
    from index.collection.images import ImageError

    model = encoder.loaded.model
    was_training = model.training
    model.eval()
    try:
        loader = image_loader(entries, encoder.loaded.preprocess, batch_size or ZERO_SHOT_BATCH_SIZE, workers,
                              root=root)
        chunks = []
        for batch in loader:
            if batch.failures:
                position, reason = batch.failures[0]
                raise ImageError(entries[position].path, reason)
            chunks.append(encoder.encode_images(batch.pixels))
        return np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)
    finally:
        model.train(was_training)


# --- training's per-epoch zero-shot ---------------------------------------------------------------


@dataclass(frozen=True)
class ZeroShotResult:
    """Per-epoch zero-shot of a training run, as written to its metrics file."""

    top1: dict[str, float]  # rank label -> accuracy
    chance: dict[str, float]  # one over the number of classes
    majority: dict[str, float]  # share of the most frequent class among the images
    images: int
    text_type: str

    def as_dict(self) -> dict[str, object]:
        return {"top1": self.top1, "chance": self.chance, "majority": self.majority, "images": self.images,
                "text_type": self.text_type}


def zero_shot_split(encoder: "Encoder", root: Path, entries: Sequence["CatalogEntry"], candidates: Sequence[Lineage],
                    text_type: str, workers: int = 0) -> ZeroShotResult:
    """Zero-shot top-1 per rank of a split's images among the candidates (model switched to eval and back)."""
    embeddings = embed_collection(encoder, root, entries, workers)
    truth = [entry.lineage for entry in entries]
    model = encoder.loaded.model
    was_training = model.training
    model.eval()  # the class texts too are encoded in eval mode
    try:
        result = zero_shot(embeddings, truth, class_embeddings(encoder, candidates, text_type), text_type)
    finally:
        model.train(was_training)
    return ZeroShotResult({accuracy.rank: accuracy.top1 for accuracy in result.ranks},
                          {accuracy.rank: accuracy.chance for accuracy in result.ranks},
                          {rank.label: level for rank, level in majority_levels(truth).items()},
                          len(entries), text_type)
