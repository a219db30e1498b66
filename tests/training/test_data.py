import io
import json
import tarfile

import pytest
import torch
from PIL import Image
from torchvision import transforms

from taxonomy import TEXT_TYPES, Lineage, caption
from training.constants import SHARD_SIZES_FILE, SHARD_TEXT_KEYS
from training.data import GlobalBatchSampler, ShardStream, decode_shard_image, read_split, seeded_transform
from training.distributed import DistInfo
from training.shards import shard_spec, write_shards

CPU = torch.device("cpu")


def info(rank: int, world: int) -> DistInfo:
    return DistInfo(rank, rank, world, CPU)


def test_processes_together_see_the_one_process_batch():
    one = list(GlobalBatchSampler(50, 8, info(0, 1), seed=3, epochs=2))
    two = [list(GlobalBatchSampler(50, 4, info(rank, 2), seed=3, epochs=2)) for rank in range(2)]
    assert len(one) == len(two[0]) == len(two[1]) == 2 * (50 // 8)
    for whole, first, second in zip(one, *two):
        assert whole == first + second  # same images and the same augmentation seeds
    indices = [i for batch in one[:6] for i, _ in batch]
    assert len(set(indices)) == len(indices)  # an epoch draws without replacement
    assert [i for i, _ in one[0]] != [i for i, _ in one[6]]  # each epoch has its own order


def test_a_resumed_sampler_continues_where_it_stopped():
    full = list(GlobalBatchSampler(50, 4, info(1, 2), seed=0, epochs=3))
    steps = 50 // 8
    resumed = list(GlobalBatchSampler(50, 4, info(1, 2), seed=0, epochs=3, start_epoch=1, start_step=2))
    assert resumed == full[steps + 2:]


def test_too_small_a_collection_for_one_batch_is_an_error():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        GlobalBatchSampler(10, 8, info(0, 2), seed=0, epochs=1)


def test_augmentation_is_fixed_by_the_sample_seed_and_leaves_the_global_rng_alone():
    image = Image.effect_noise((48, 48), 60).convert("RGB")
    augment = transforms.Compose([transforms.RandomResizedCrop(32, scale=(0.3, 1.0)), transforms.ToTensor()])
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = seeded_transform(augment, image, 5)
    assert torch.equal(torch.rand(1), expected_next)
    assert torch.equal(first, seeded_transform(augment, image, 5))
    assert not torch.equal(first, seeded_transform(augment, image, 6))


@pytest.fixture(scope="module")
def shards(training_collection, tmp_path_factory):
    catalog, images = training_collection.catalog, training_collection.images
    root, entries = read_split(str(catalog), str(images), "train")
    out = tmp_path_factory.mktemp("shards")
    return write_shards(root, entries, out, per_shard=20, seed=0), entries


def test_shards_have_treeoflife_keys_and_our_captions(shards):
    paths, entries = shards
    assert [p.name for p in paths] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    sizes = json.loads((paths[0].parent / SHARD_SIZES_FILE).read_text())
    assert sizes == {"shard-000000.tar": 20, "shard-000001.tar": 20, "shard-000002.tar": 8}
    assert shard_spec(paths).endswith("shard-{000000..000002}.tar")
    with tarfile.open(paths[0]) as tar:
        members = {m.name.split(".", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()[:9]}
    assert set(members) >= {"jpg", *SHARD_TEXT_KEYS.values(), "taxonomic_name.txt", "common_name.txt"}
    assert Image.open(io.BytesIO(members["jpg"])).format == "JPEG"
    texts = {key: members[key].decode() for key in SHARD_TEXT_KEYS.values()}
    lineage = next(e.lineage for e in entries if caption(e.lineage, "taxon_com") == texts["taxon_com.txt"])
    assert texts == {SHARD_TEXT_KEYS[t]: caption(lineage, t) for t in TEXT_TYPES}


def _identity_tokenizer(texts: list[str]) -> torch.Tensor:
    return torch.tensor([[len(text), sum(map(ord, text)) % 9973] for text in texts])


def _stream_batches(paths, rank, world, skip, n):
    to_tensor = transforms.Compose([transforms.Resize(16), transforms.CenterCrop(16), transforms.ToTensor()])
    stream = ShardStream([str(p) for p in paths], to_tensor, _identity_tokenizer, info(rank, world),
                         batch_size=4, seed=1, epoch=0, skip_batches=skip, buffer_size=8)
    iterator = iter(stream)
    return [next(iterator) for _ in range(n)]


def test_shard_streams_split_processes_and_resume_without_replaying(shards):
    paths, _ = shards
    full = _stream_batches(paths, 0, 2, skip=0, n=5)
    resumed = _stream_batches(paths, 0, 2, skip=2, n=3)
    for a, b in zip(full[2:], resumed):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert full[0][0].shape == (4, 3, 16, 16) and full[0][1].shape == (4, 5, 2)
    other = _stream_batches(paths, 1, 2, skip=0, n=1)
    assert not torch.equal(full[0][1], other[0][1])  # the other process reads other shards


def test_higher_rank_captions_name_an_ancestor_for_the_given_share():
    from taxonomy import Rank
    from training.data import caption_lineage

    magpie = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"],
                                "black-billed magpie")
    assert {caption_lineage(magpie, 0.0, seed) for seed in range(50)} == {magpie}
    drawn = [caption_lineage(magpie, 0.5, seed) for seed in range(1000)]
    above = [lineage for lineage in drawn if lineage != magpie]
    assert 400 < len(above) < 600
    assert {lineage.deepest_rank for lineage in above} == set(Rank) - {Rank.SPECIES}
    assert all(lineage.key() == magpie.key(lineage.deepest_rank) for lineage in above)
    assert drawn == [caption_lineage(magpie, 0.5, seed) for seed in range(1000)]


def test_a_shard_image_is_decoded_by_the_safe_opener(tmp_path, monkeypatch):
    from tests.index.conftest import EPS, fake_ghostscript

    ran = fake_ghostscript(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match=r"^shard sample k1: cannot decode its jpg: EPS is not an accepted image format"):
        decode_shard_image("k1", EPS)
    assert not ran.exists()
    grey = io.BytesIO()
    Image.new("I;16", (4, 4), 128 * 257).save(grey, "PNG")
    assert decode_shard_image("k2", grey.getvalue()).getpixel((0, 0)) == (128, 128, 128)
