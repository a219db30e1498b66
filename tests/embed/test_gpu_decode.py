"""GPU JPEG decoding, run on the CPU: which files go to the GPU path, the same pixels and vectors as the
CPU path, and the fallbacks when the GPU decoder refuses a batch or an image."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from embed.data import image_loader
from embed.encoder import Encoder
from embed.gpu_decode import (
    GpuPreprocess, RawJpeg, RoutingDataset, gpu_image_batches, gpu_preprocess_supported, jpeg_for_gpu,
    use_gpu_decoding,
)
from index.collection.entries import image_point_id
from index.records import ImageRecord
from taxonomy import Lineage

LINEAGE = Lineage.from_ranks({"kingdom": "Animalia", "genus": "Pica", "species": "hudsonia"}, "")


def _pixels(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1)
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


def _jpeg(width: int, height: int, seed: int = 0, mode: str = "RGB", exif_orientation: int | None = None) -> bytes:
    image = Image.fromarray(_pixels(width, height, seed)).convert(mode)
    out = io.BytesIO()
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    image.save(out, format="JPEG", quality=92, **kwargs)
    return out.getvalue()


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(_pixels(width, height, 3)).save(out, format="PNG")
    return out.getvalue()


FILES = {
    "plain.jpg": _jpeg(120, 90),
    "tall.jpg": _jpeg(50, 97, seed=1),
    "small.jpg": _jpeg(40, 30, seed=2),  # upsampled to the model's size
    "grey.jpg": _jpeg(80, 80, seed=4, mode="L"),
    "picture.png": _png(70, 100),  # another format: the CPU
    "rotated.jpg": _jpeg(100, 60, seed=5, exif_orientation=6),  # EXIF orientation: the CPU
    "cmyk.jpg": _jpeg(64, 64, seed=6, mode="CMYK"),  # CMYK: the CPU
    "truncated.jpg": _jpeg(200, 150, seed=7)[:1500],  # no end marker: the CPU, which names it
    "notes.jpg": b"not an image at all, just text",
}
GPU_FILES = {"plain.jpg", "tall.jpg", "small.jpg", "grey.jpg"}
BAD_FILES = {"truncated.jpg", "notes.jpg"}


@pytest.fixture
def records(tmp_path):
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    return [ImageRecord(id=image_point_id(name), root=str(tmp_path), path=name, sha256="0" * 64, bytes=len(data),
                        width=1, height=1, lineage=LINEAGE) for name, data in FILES.items()]


def test_plain_jpegs_go_to_the_gpu_and_every_other_file_to_the_cpu(records, tiny):
    dataset = RoutingDataset(records, tiny.preprocess)
    kinds = {}
    for i in range(len(dataset)):
        _, item = dataset[i]
        kinds[records[i].path] = ("gpu" if isinstance(item, RawJpeg) else "cpu" if isinstance(item, torch.Tensor)
                                  else "failed")
    assert {p for p, k in kinds.items() if k == "gpu"} == GPU_FILES
    assert {p for p, k in kinds.items() if k == "failed"} == BAD_FILES
    assert {p for p, k in kinds.items() if k == "cpu"} == {"picture.png", "rotated.jpg", "cmyk.jpg"}
    assert not jpeg_for_gpu("x.png", FILES["picture.png"])


def test_the_gpu_path_gives_the_cpu_paths_pixels_and_vectors(records, tiny):
    """Both run on the CPU here; on a GPU only the decoder's device differs."""
    cpu = list(image_loader(records, tiny.preprocess, batch_size=4, workers=0))
    gpu = list(gpu_image_batches(records, tiny.preprocess, tiny.preprocess_cfg, "cpu", batch_size=4, workers=1))
    assert [b.indices for b in gpu] == [b.indices for b in cpu]
    assert [tuple(i for i, _ in b.failures) for b in gpu] == [tuple(i for i, _ in b.failures) for b in cpu]
    reasons = {records[i].path: r for b in gpu for i, r in b.failures}
    assert set(reasons) == BAD_FILES and "truncated" in reasons["truncated.jpg"]
    a = torch.cat([b.pixels for b in cpu if b.indices])
    b = torch.cat([b.pixels for b in gpu if b.indices])
    assert a.shape == b.shape
    # Rounding of two decoders and two bicubic resizes: a few 8-bit levels at most, a fraction on average.
    level = 1 / 255 / 0.2613  # one 8-bit level in normalised units
    diff = (a - b).abs()
    assert diff.mean() < 1.5 * level and diff.max() < 40 * level
    encoder = Encoder(tiny)
    va, vb = encoder.encode_images(a), encoder.encode_images(b)
    assert (va * vb).sum(axis=1).min() > 0.999


def test_a_refused_batch_is_decoded_one_by_one_and_a_refused_image_on_the_cpu(records, tiny, monkeypatch):
    import torchvision.io

    real = torchvision.io.decode_jpeg
    calls = {"batch": 0, "single": 0}

    def flaky(data, *args, **kwargs):
        if isinstance(data, list):
            calls["batch"] += 1
            raise RuntimeError("nvjpeg: batch refused")
        calls["single"] += 1
        if data.numel() == len(FILES["tall.jpg"]):
            raise RuntimeError("nvjpeg: unsupported")
        return real(data, *args, **kwargs)

    monkeypatch.setattr(torchvision.io, "decode_jpeg", flaky)
    cpu = list(image_loader(records, tiny.preprocess, batch_size=len(records), workers=0))
    gpu_decoder = GpuPreprocess(tiny.preprocess_cfg, "cpu", tiny.preprocess)
    jpegs = [torch.frombuffer(bytearray(FILES[n]), dtype=torch.uint8) for n in sorted(GPU_FILES)]
    pixels, kept, failed = gpu_decoder(sorted(GPU_FILES), jpegs)
    assert calls == {"batch": 1, "single": len(GPU_FILES)}
    assert kept == list(range(len(GPU_FILES))) and failed == [] and gpu_decoder.fallbacks == 1
    # The one the GPU refused went through the CPU's own preprocessing: identical pixels.
    tall = sorted(GPU_FILES).index("tall.jpg")
    index = [r.path for r in records].index("tall.jpg")
    expected = cpu[0].pixels[cpu[0].indices.index(index)]
    assert torch.equal(pixels[tall], expected)
    # A JPEG the CPU cannot read either is a failure with the CPU's reason.
    pixels, kept, failed = gpu_decoder(["tall.jpg"], [torch.frombuffer(bytearray(FILES["tall.jpg"][:400]),
                                                                       dtype=torch.uint8)])
    assert kept == [] and len(failed) == 1 and failed[0][0] == 0 and "cannot decode" in failed[0][1]


def test_gpu_decoding_only_for_cuda_and_open_clip_preprocessing(tiny):
    assert gpu_preprocess_supported(tiny.preprocess_cfg)
    assert use_gpu_decoding("cuda", tiny.preprocess_cfg)
    assert not use_gpu_decoding("cpu", tiny.preprocess_cfg)
    assert not use_gpu_decoding("cuda", {**tiny.preprocess_cfg, "resize_mode": "squash"})
    with pytest.raises(ValueError, match="shortest"):
        GpuPreprocess({**tiny.preprocess_cfg, "resize_mode": "longest"}, "cpu", tiny.preprocess)


def test_images_of_one_size_are_resized_together_as_each_alone(tiny):
    decoder = GpuPreprocess(tiny.preprocess_cfg, "cpu", tiny.preprocess)
    names = ["a.jpg", "b.jpg", "c.jpg"]
    jpegs = [torch.frombuffer(bytearray(_jpeg(*size, seed=seed)), dtype=torch.uint8)
             for size, seed in (((120, 90), 0), ((50, 97), 1), ((120, 90), 2))]
    together, kept, failed = decoder(names, jpegs)
    alone = [decoder([n], [j])[0][0] for n, j in zip(names, jpegs)]
    assert kept == [0, 1, 2] and failed == []
    for a, b in zip(together, alone):
        assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(together[0], together[2])  # two pictures, not one twice


def test_a_batch_carries_its_jpegs_as_one_tensor(records, tiny):
    from embed.gpu_decode import collate_mixed

    dataset = RoutingDataset(records, tiny.preprocess)
    batch = collate_mixed([dataset[i] for i in range(len(dataset))])
    assert batch.jpeg_bytes.ndim == 1 and len(batch.jpegs) == len(GPU_FILES)
    assert [bytes(j.numpy()) for j in batch.jpegs] == [FILES[records[i].path] for i in batch.jpeg_indices]
