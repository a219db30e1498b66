"""Training data: a collection (catalog + images) or webdataset shards, split across processes.

Determinism is what makes `--resume` exact and DDP comparable with one process:

- a collection is shuffled per epoch with a generator seeded by (seed, epoch); global batch `k` is
  positions `[k*B, (k+1)*B)` of that order and process `r` takes its `r`-th slice, so N processes
  see together exactly the batch that one process with `N x` the batch size sees;
- each sample's augmentation is seeded by (seed, epoch, position), not by the worker or the rank;
- resuming at step `k` of an epoch starts the order at position `k*B` without reading the skipped images.

Shards are read as streams (webdataset): per epoch the shard list is shuffled by (seed, epoch) and
dealt to the (process, loader worker) pairs; with fewer shards than pairs, every pair reads all
shards and keeps every n-th sample. Each worker's stream is shuffled with a seeded buffer and batched
in the worker, so a resumed run skips the batches already seen without decoding them.
"""
from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from embed.data import ImageDataset
from index.collection.images import ImageError, decode_image
from index.collection.readers import read_collection
from index.collection.entries import CatalogEntry
from taxonomy import Lineage, Rank
from taxonomy.constants import TEXT_TYPES
from training.constants import (
    PREFETCH_FACTOR,
    SHARD_IMAGE_KEY,
    SHARD_SIZES_FILE,
    SHARD_TEXT_KEYS,
    SHUFFLE_BUFFER,
)
from training.distributed import DistInfo
from training.text import lineage_captions

logger = logging.getLogger(__name__)

Transform = Callable[[Image.Image], torch.Tensor]
Tokenizer = Callable[[list[str]], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]  # images [B, 3, H, W], tokens [B, 5, context]

_MIX = 1_000_003  # odd multipliers that spread (seed, epoch, position) over distinct seeds
_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """The augmentation seed of the sample at `position` of `epoch`'s order (any process, any worker)."""
    return ((seed * _MIX + epoch) * _MIX + position) & _MASK


def seeded_transform(transform: Transform, image: Image.Image, seed: int) -> torch.Tensor:
    """Apply a random transform with its draws fixed by `seed`, leaving the global RNGs as they were.

    Seeds the CPU generator directly: `torch.manual_seed` also visits every accelerator (0.3 ms a call).
    Python's `random` too, for transforms that draw from it (timm's crops).
    """
    generator = torch.default_generator
    torch_state, python_state = generator.get_state(), random.getstate()
    generator.manual_seed(seed)
    random.seed(seed)
    try:
        return transform(image)
    finally:
        generator.set_state(torch_state)
        random.setstate(python_state)


class CaptionTokens:
    """Tokens of the five captions of a lineage, `[5, context]`, computed once per lineage."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[Lineage, torch.Tensor] = {}

    def __call__(self, lineage: Lineage) -> torch.Tensor:
        tokens = self._cache.get(lineage)
        if tokens is None:
            tokens = self._cache[lineage] = self.tokenizer(lineage_captions(lineage))
        return tokens


def read_split(catalog: str | None, images: str, split: str | None) -> tuple[Path, list[CatalogEntry]]:
    """The labelled entries of one split of a collection (all of them when split is None)."""
    collection = read_collection(Path(catalog) if catalog else None, Path(images))
    for problem in collection.problems[:10]:
        logger.warning("skipped: %s", problem)
    labelled = [entry for entry in collection.entries if not entry.lineage.is_empty]
    if split is None:
        return collection.root, labelled
    chosen = [entry for entry in labelled if entry.split == split]
    if not chosen:
        splits = sorted({entry.split or "(none)" for entry in labelled})
        raise ValueError(f"no labelled images in split {split!r} of {catalog or images}; splits present: "
                         f"{', '.join(splits) or 'none'}")
    return collection.root, chosen


def caption_lineage(lineage: Lineage, higher_rank_p: float, seed: int) -> Lineage:
    """The lineage a sample's caption names: itself, or with probability p a named ancestor.

    TreeOfLife-10M labels many images only to genus, family or above; their captions are the
    truncated taxonomic string (SPEC §4). Drawing such captions for some samples teaches a small
    model the strings that zero-shot uses above species. Uniform over kingdom..genus.
    """
    if higher_rank_p <= 0:
        return lineage
    rng = random.Random(seed)
    if rng.random() >= higher_rank_p:
        return lineage
    rank = Rank(rng.randrange(Rank.SPECIES))
    return lineage.truncate(rank) if lineage.get(rank) else lineage


class CollectionDataset(ImageDataset):
    """The collection's `ImageDataset`, indexed by `(index, augmentation seed)` pairs from `GlobalBatchSampler`.

    Items are (pixels, caption tokens); an unreadable image raises (training data is checked at ingest).
    """

    def __init__(self, root: Path, entries: Sequence[CatalogEntry], transform: Transform, tokenizer: Tokenizer,
                 higher_rank_p: float = 0.0) -> None:
        super().__init__(entries, transform, root)
        self.tokens = CaptionTokens(tokenizer)
        self.higher_rank_p = higher_rank_p

    @property
    def entries(self) -> list[CatalogEntry]:
        return self.records  # type: ignore[return-value]

    def __getitem__(self, item: tuple[int, int]) -> Batch:  # type: ignore[override]
        index, seed = item
        image = seeded_transform(self.transform, self.open(index), seed)
        return image, self.tokens(caption_lineage(self.entries[index].lineage, self.higher_rank_p, seed))


class GlobalBatchSampler:
    """This process's slice of every global batch, epoch after epoch, from a start position on."""

    def __init__(self, size: int, batch_size: int, info: DistInfo, seed: int,
                 epochs: int, start_epoch: int = 0, start_step: int = 0) -> None:
        self.size = size
        self.batch_size = batch_size  # per process
        self.global_batch = batch_size * info.world_size
        self.rank = info.rank
        self.seed = seed
        self.epochs = epochs
        self.start_epoch = start_epoch
        self.start_step = start_step
        if self.steps_per_epoch == 0:
            raise ValueError(f"{size} training images are fewer than one global batch of {self.global_batch} "
                             f"({batch_size} x {info.world_size} processes); lower --batch-size")

    @property
    def steps_per_epoch(self) -> int:
        return self.size // self.global_batch  # the incomplete last batch is dropped, as in open_clip

    def order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * _MIX + epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def __len__(self) -> int:
        return (self.epochs - self.start_epoch) * self.steps_per_epoch - self.start_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for epoch in range(self.start_epoch, self.epochs):
            order = self.order(epoch)
            first = self.start_step if epoch == self.start_epoch else 0
            for step in range(first, self.steps_per_epoch):
                start = step * self.global_batch + self.rank * self.batch_size
                yield [(order[p], sample_seed(self.seed, epoch, p)) for p in range(start, start + self.batch_size)]


# --- shards --------------------------------------------------------------------------------------


def expand_shards(spec: str) -> list[str]:
    """`dir/shard-{000000..000009}.tar` (brace ranges, `::`-separated lists) -> file names."""
    import braceexpand

    urls = [url for part in spec.split("::") for url in braceexpand.braceexpand(part)]
    missing = [url for url in urls if "://" not in url and not Path(url).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(urls)} shards not found, e.g. {missing[0]!r} (from {spec!r})")
    return urls


def count_shard_samples(urls: list[str], given: int | None) -> int:
    """The sample count: --train-num-samples, else the sizes.json files next to the shards."""
    if given:
        return given
    total = 0
    sizes_cache: dict[Path, dict[str, int]] = {}
    for url in urls:
        folder = Path(url).parent
        if folder not in sizes_cache:
            sizes_file = folder / SHARD_SIZES_FILE
            if not sizes_file.is_file():
                raise ValueError(f"no {sizes_file} to count the samples of {url}; pass --train-num-samples N "
                                 "(`python -m training shards` writes sizes.json)")
            sizes_cache[folder] = json.loads(sizes_file.read_text(encoding="utf-8"))
        name = Path(url).name
        if name not in sizes_cache[folder]:
            raise ValueError(f"{name} is not listed in {folder / SHARD_SIZES_FILE}; pass --train-num-samples N")
        total += int(sizes_cache[folder][name])
    return total


@lru_cache(maxsize=1 << 16)
def _shard_tokens(tokenizer: Tokenizer, captions: tuple[str, ...]) -> torch.Tensor:
    return tokenizer(list(captions))


def decode_shard_image(key: str, data: bytes) -> Image.Image:
    try:
        return decode_image(f"shard sample {key}", data)
    except ImageError as e:
        raise ValueError(f"shard sample {key}: cannot decode its {SHARD_IMAGE_KEY}: {e.reason}") from e


class ShardStream(IterableDataset):
    """One epoch's endless stream of batches for this process and loader worker.

    Endless (the shard list repeats) so that every process yields exactly `steps_per_epoch`
    batches, which DDP needs; the training loop stops taking batches at the epoch's end.
    """

    def __init__(self, urls: list[str], transform: Transform, tokenizer: Tokenizer, info: DistInfo,
                 batch_size: int, seed: int, epoch: int, skip_batches: int = 0,
                 buffer_size: int = SHUFFLE_BUFFER) -> None:
        self.urls = urls
        self.buffer_size = buffer_size
        self.transform = transform
        self.tokenizer = tokenizer
        self.rank = info.rank
        self.world_size = info.world_size
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = epoch
        self.skip_batches = skip_batches

    def _raw_samples(self, slot: int, slots: int) -> Iterator[dict[str, Any]]:
        import webdataset as wds

        order = list(self.urls)
        random.Random(self.seed * _MIX + self.epoch).shuffle(order)
        mine = order[slot::slots] if len(order) >= slots else order
        every = 1 if len(order) >= slots else slots
        position = 0
        while True:  # endless; see the class docstring
            for sample in wds.tarfile_samples([{"url": url} for url in mine]):
                if every == 1 or position % every == slot:
                    yield sample
                position += 1

    def __iter__(self) -> Iterator[Batch]:
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        slot, slots = self.rank * workers + worker_id, self.world_size * workers
        rng = random.Random((self.seed * _MIX + self.epoch) * _MIX + slot)
        # The DataLoader takes batches from its workers in turn, so worker w made batches w, w+W, ...
        skip = max(0, math.ceil((self.skip_batches - worker_id) / workers))
        buffer: list[dict[str, Any]] = []
        batch: list[tuple[dict[str, Any], int]] = []
        produced = 0
        for sample in self._raw_samples(slot, slots):
            if len(buffer) < self.buffer_size:
                buffer.append(sample)
                continue
            i = rng.randrange(len(buffer))
            buffer[i], sample = sample, buffer[i]
            batch.append((sample, rng.getrandbits(63)))
            if len(batch) == self.batch_size:
                if produced >= skip:
                    yield self._collate(batch)
                produced += 1
                batch = []

    def _collate(self, batch: list[tuple[dict[str, Any], int]]) -> Batch:
        images, tokens = [], []
        for sample, seed in batch:
            key = sample.get("__key__", "?")
            missing = [k for k in (SHARD_IMAGE_KEY, *SHARD_TEXT_KEYS.values()) if k not in sample]
            if missing:
                raise ValueError(f"shard sample {key} has no {', '.join(missing)}; expected TreeOfLife-10M's keys "
                                 f"{SHARD_IMAGE_KEY}, {', '.join(SHARD_TEXT_KEYS.values())}")
            image = decode_shard_image(key, sample[SHARD_IMAGE_KEY])
            images.append(seeded_transform(self.transform, image, seed))
            captions = tuple(sample[SHARD_TEXT_KEYS[t]].decode("utf-8").strip() for t in TEXT_TYPES)
            tokens.append(_shard_tokens(self.tokenizer, captions))
        return torch.stack(images), torch.stack(tokens)


# --- what the training loop sees -----------------------------------------------------------------


@dataclass(frozen=True)
class TrainData:
    """Batches for this process from a start position, and how many make an epoch."""

    steps_per_epoch: int
    num_samples: int
    batches: Callable[[int, int], Iterator[Batch]]  # (start_epoch, start_step) -> batches to the end


def _loader_options(workers: int, pin_memory: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": pin_memory}
    if workers > 0:
        options["prefetch_factor"] = PREFETCH_FACTOR
    return options


def collection_data(root: Path, entries: list[CatalogEntry], transform: Transform, tokenizer: Tokenizer,
                    info: DistInfo, batch_size: int, seed: int, epochs: int, workers: int,
                    higher_rank_p: float = 0.0) -> TrainData:
    dataset = CollectionDataset(root, entries, transform, tokenizer, higher_rank_p)
    steps = GlobalBatchSampler(len(dataset), batch_size, info, seed, epochs).steps_per_epoch

    def batches(start_epoch: int, start_step: int) -> Iterator[Batch]:
        sampler = GlobalBatchSampler(len(dataset), batch_size, info, seed, epochs, start_epoch, start_step)
        loader = DataLoader(dataset, batch_sampler=sampler,
                            **_loader_options(workers, info.device.type == "cuda"))
        yield from loader

    return TrainData(steps, len(dataset), batches)


def shard_data(spec: str, num_samples: int | None, transform: Transform, tokenizer: Tokenizer,
               info: DistInfo, batch_size: int, seed: int, epochs: int, workers: int) -> TrainData:
    urls = expand_shards(spec)
    total = count_shard_samples(urls, num_samples)
    steps = total // (batch_size * info.world_size)
    if steps == 0:
        raise ValueError(f"{total} samples in {spec!r} are fewer than one global batch of "
                         f"{batch_size * info.world_size}; lower --batch-size")

    def batches(start_epoch: int, start_step: int) -> Iterator[Batch]:
        for epoch in range(start_epoch, epochs):
            skip = start_step if epoch == start_epoch else 0
            # A buffer larger than a worker's share would repeat samples before the first batch.
            buffer = max(1, min(SHUFFLE_BUFFER, total // (info.world_size * max(1, workers))))
            stream = ShardStream(urls, transform, tokenizer, info, batch_size, seed, epoch, skip, buffer)
            loader = DataLoader(stream, batch_size=None, **_loader_options(workers, info.device.type == "cuda"))
            iterator = iter(loader)
            for _ in range(steps - skip):
                yield next(iterator)
            del iterator  # stops this epoch's workers

    return TrainData(steps, total, batches)
