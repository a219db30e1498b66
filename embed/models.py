"""Model specs (SPEC §7) -> open_clip models, and the model folder that training writes.

Accepted specs, all passed to open_clip unchanged after a check:

- `hf-hub:ORG/REPO` (`hf-hub:imageomics/bioclip`, `hf-hub:imageomics/bioclip-2`): the Hugging Face Hub;
- a folder, or `local-dir:FOLDER`, holding `open_clip_config.json` + `open_clip_model.safetensors`;
- a preset of `embed/configs/` (`tol-tiny`): random weights, with a warning;
- an open_clip built-in name (`ViT-B-16`, random weights) or `NAME:PRETRAINED` (a tag, or a weights file).

torch and open_clip are imported inside functions so that `import embed` stays cheap.
"""
from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from embed.configs import CONFIG_DIR, list_configs
from embed.constants import (
    HF_HUB_PREFIX,
    KNOWN_HUB_DIMS,
    LOCAL_DIR_PREFIX,
    OPEN_CLIP_CONFIG_FILE,
    OPEN_CLIP_WEIGHTS_FILE,
    PRETRAINED_SEPARATOR,
    RANDOM_INIT_SEED,
    TRAINED_MODEL_FOLDER,
    WEIGHTS_HASH_CHARS,
    SAFETENSORS_HEADER_OFFSET,
    TORCH_LEGACY_MAGIC,
    TORCH_ZIP_MAGIC,
    WEIGHTS_FORMS,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

ACCEPTED_FORMS = (
    f"{HF_HUB_PREFIX}ORG/REPO (e.g. {HF_HUB_PREFIX}imageomics/bioclip), "
    f"a folder with {OPEN_CLIP_CONFIG_FILE} + {OPEN_CLIP_WEIGHTS_FILE} (or {LOCAL_DIR_PREFIX}FOLDER), "
    "a preset of embed/configs ({presets}), "
    "or an open_clip built-in name (e.g. ViT-B-16) optionally with :PRETRAINED (a tag or a weights file)"
)
# Weights files open_clip finds in a model folder; .bin/.pth go through torch.load(weights_only=True).
_WEIGHTS_PATTERNS = ("*.safetensors", "*.bin", "*.pth")
_VECTOR_NAME_UNSAFE = re.compile(r"[^a-z0-9._-]+")


class ModelUnavailableError(RuntimeError):
    """The spec is well formed, but its config or weights cannot be fetched (offline Hub, ...)."""


@dataclass(frozen=True)
class ResolvedSpec:
    """What a spec means: which open_clip name and pretrained value build it."""

    spec: str
    kind: str  # "hf-hub" | "folder" | "preset" | "builtin"
    open_clip_name: str
    pretrained: str | None = None

    @property
    def has_weights(self) -> bool:
        return self.kind in ("hf-hub", "folder") or self.pretrained is not None


@dataclass(frozen=True)
class LoadedModel:
    """An open_clip model in eval mode with everything needed to feed it."""

    model: "torch.nn.Module"
    preprocess: Callable[[Any], "torch.Tensor"]  # eval transform: PIL image -> CHW tensor
    train_preprocess: Callable[[Any], "torch.Tensor"]
    tokenizer: Callable[..., "torch.Tensor"]
    vector_name: str  # the named vector of this model in Qdrant (SPEC §5)
    dim: int
    spec: str
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg.get("size", self.model_cfg["vision_cfg"]["image_size"])
        return int(size[0] if isinstance(size, (list, tuple)) else size)


def _accepted_forms() -> str:
    return ACCEPTED_FORMS.format(presets=", ".join(list_configs()))


def _local_folder(spec: str) -> Path | None:
    """The folder a spec names (`local-dir:X` or an existing directory), else None."""
    if spec.startswith(LOCAL_DIR_PREFIX):
        return Path(spec[len(LOCAL_DIR_PREFIX):]).expanduser()
    path = Path(spec).expanduser()
    return path if path.is_dir() else None


@dataclass(frozen=True)
class ParsedSpec:
    """What a spec's text names, read without torch, open_clip or the Hub: the one parser of model specs."""

    spec: str  # as given, stripped
    kind: str  # "hf-hub" | "folder" | "name" (a preset, an open_clip built-in name, or a model-config file)
    name: str  # the Hub repo `ORG/REPO`, or the open_clip name before `:`
    pretrained: str = ""  # after `NAME:`: a pretrained tag or a weights file
    folder: Path | None = None  # the model folder

    @property
    def is_config_file(self) -> bool:
        """A model-config JSON file (`training`: a model trained from scratch, registered under its stem)."""
        return self.kind == "name" and Path(self.spec).suffix == ".json"


def parse_spec(spec: str) -> ParsedSpec:
    """Split a spec (SPEC §7) into its kind and parts, as open_clip's `parse_model_name` does.

    Raises:
        ValueError: an empty spec, naming the accepted forms.
    """
    spec = spec.strip()
    if not spec:
        raise ValueError(f"empty model spec; expected {_accepted_forms()}")
    if spec.startswith(HF_HUB_PREFIX):
        return ParsedSpec(spec, "hf-hub", spec[len(HF_HUB_PREFIX):])
    folder = _local_folder(spec)
    if folder is not None:
        return ParsedSpec(spec, "folder", folder.name, folder=folder)
    name, _, pretrained = spec.partition(PRETRAINED_SEPARATOR)
    return ParsedSpec(spec, "name", name, pretrained)


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights a spec names, and the vector name they get in Qdrant (SPEC §5).

    A vector name follows the weights: a model folder's name carries a short hash of its weights
    file, so `runs/a/model` and `runs/b/model` never share a vector. `fingerprint` says exactly
    which weights; the catalog refuses a second fingerprint under a name it knows.
    """

    vector_name: str
    fingerprint: str


def _weights_file(folder: Path) -> Path | None:
    preferred = folder / OPEN_CLIP_WEIGHTS_FILE
    if preferred.is_file():
        return preferred
    found = sorted(p for pattern in _WEIGHTS_PATTERNS for p in folder.glob(pattern) if p.is_file())
    return found[0] if found else None


@cache
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a weights file, computed once per content version (`size`, `mtime_ns`) and process."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def weights_sha256(path: Path) -> str:
    stat = path.stat()
    return _file_sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)


def _safe_name(name: str) -> str:
    return _VECTOR_NAME_UNSAFE.sub("-", name.lower()).strip("-")


def model_identity(spec: str) -> ModelIdentity:
    """The vector name and weights fingerprint of a spec, e.g. `bioclip`, `demo-3f2a9c1b`, `tol-tiny`.

    Cheap: needs neither torch nor open_clip (a weights file is hashed once per process), so the
    UI and `status` can call it freely.
    """
    parsed = parse_spec(spec)
    if parsed.kind == "hf-hub":
        repo = parsed.name.rstrip("/")
        return ModelIdentity(repo.split("/")[-1].lower(), HF_HUB_PREFIX + repo)
    if parsed.folder is not None:
        folder = parsed.folder.resolve()
        weights = _weights_file(folder)
        if weights is None:
            _check_folder(folder)  # raises, naming what is missing
        digest = weights_sha256(weights)
        # What training writes is `<run>/model`: the run's name says more than "model".
        base = folder.parent.name if folder.name == TRAINED_MODEL_FOLDER and folder.parent.name else folder.name
        return ModelIdentity(f"{_safe_name(base)}-{digest[:WEIGHTS_HASH_CHARS]}", f"sha256:{digest}")
    name, pretrained = parsed.name, parsed.pretrained
    if not pretrained:
        return ModelIdentity(_safe_name(name), f"random:{name}:seed{RANDOM_INIT_SEED}")
    weights = Path(pretrained).expanduser()
    if weights.is_file():
        digest = weights_sha256(weights)
        return ModelIdentity(f"{_safe_name(name)}-{_safe_name(weights.stem)}-{digest[:WEIGHTS_HASH_CHARS]}",
                             f"sha256:{digest}")
    tag = Path(pretrained).stem if ("/" in pretrained or "." in pretrained) else pretrained
    return ModelIdentity(_safe_name(f"{name}-{tag}"), f"open_clip:{name}:{pretrained}")


def model_vector_name(spec: str) -> str:
    """The Qdrant vector name of a model spec (see `model_identity`)."""
    return model_identity(spec).vector_name


def model_dim(spec: str) -> int | None:
    """The vector dimension a spec makes, read from its config without building it; None when unknown
    (a Hub model other than BioCLIP's, whose config is not at hand offline)."""
    resolved = resolve_spec(spec)
    if resolved.kind == "hf-hub":
        return KNOWN_HUB_DIMS.get(resolved.spec.rstrip("/"))
    if resolved.kind == "folder":
        folder = parse_spec(spec).folder
        assert folder is not None
        config = json.loads((folder / OPEN_CLIP_CONFIG_FILE).read_text())
        return int(config.get("model_cfg", config)["embed_dim"])
    import open_clip

    return int(open_clip.get_model_config(resolved.open_clip_name)["embed_dim"])


@cache
def register_presets() -> None:
    """Make every `embed/configs/*.json` an open_clip model name (once per process)."""
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)


def resolve_spec(spec: str) -> ResolvedSpec:
    """Check a spec and say how open_clip builds it.

    Raises:
        ValueError: an unknown spec, naming the accepted forms.
        FileNotFoundError: a folder without its config or weights, or a missing weights file.
    """
    parsed = parse_spec(spec)
    spec = parsed.spec
    if parsed.kind == "hf-hub":
        repo = parsed.name
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ValueError(f"bad Hugging Face Hub spec {spec!r}; expected {HF_HUB_PREFIX}ORG/REPO")
        return ResolvedSpec(spec, "hf-hub", spec)
    if parsed.folder is not None:
        _check_folder(parsed.folder)
        return ResolvedSpec(spec, "folder", LOCAL_DIR_PREFIX + str(parsed.folder.resolve()))

    import open_clip

    register_presets()
    name, pretrained = parsed.name, parsed.pretrained
    if name not in open_clip.list_models():
        looks_like_path = "/" in spec or spec.startswith(".")
        hint = f" (no folder {spec!r} exists)" if looks_like_path else ""
        raise ValueError(f"unknown model spec {spec!r}{hint}; expected {_accepted_forms()}")
    kind = "preset" if name in list_configs() else "builtin"
    if not pretrained:
        return ResolvedSpec(spec, kind, name)
    if Path(pretrained).expanduser().is_file():
        _check_weights_file(Path(pretrained).expanduser(), spec)
        return ResolvedSpec(spec, kind, name, str(Path(pretrained).expanduser()))
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained not in tags:
        looks_like_path = "/" in pretrained or "." in pretrained
        known = ", ".join(tags) if tags else "none"
        if looks_like_path:
            raise FileNotFoundError(f"weights file {pretrained!r} of model spec {spec!r} not found; expected "
                                    f"{name}:FILE with {WEIGHTS_FORMS}, or {name}:TAG (known tags: {known})")
        raise ValueError(
            f"unknown pretrained tag {pretrained!r} for {name}; known tags: {known}, or give a weights file path"
        )
    return ResolvedSpec(spec, kind, name, pretrained)


def _check_weights_file(path: Path, spec: str) -> None:
    """Refuse a file that does not start as weights do, before open_clip unpickles it."""
    with path.open("rb") as handle:
        head = handle.read(len(TORCH_LEGACY_MAGIC))
    is_torch = head.startswith(TORCH_ZIP_MAGIC) or head == TORCH_LEGACY_MAGIC
    is_safetensors = path.suffix == ".safetensors" and head[SAFETENSORS_HEADER_OFFSET:].startswith(b"{")
    if not (is_torch or is_safetensors):
        raise ValueError(f"model spec {spec!r}: {str(path)!r} is not a weights file; expected {WEIGHTS_FORMS}")


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {str(folder)!r} not found")
    if not (folder / OPEN_CLIP_CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"model folder {str(folder)!r} has no {OPEN_CLIP_CONFIG_FILE}; expected {OPEN_CLIP_CONFIG_FILE} "
            f"+ {OPEN_CLIP_WEIGHTS_FILE} (what `python -m training train --out` writes)"
        )
    if not any(any(folder.glob(pattern)) for pattern in _WEIGHTS_PATTERNS):
        raise FileNotFoundError(f"model folder {str(folder)!r} has no weights; expected {OPEN_CLIP_WEIGHTS_FILE}")


def load_model(spec: str, device: str = "cpu", weights: bool = True) -> LoadedModel:
    """Build the model a spec names, in eval mode on `device`, with its transforms and tokenizer.

    Args:
        spec: a model spec (see the module docstring).
        device: `cpu`, `cuda`, `cuda:1`, ...
        weights: False builds the architecture with random weights (training from scratch).

    Raises:
        ValueError: an unknown spec. FileNotFoundError: a folder or weights file missing.
        ModelUnavailableError: the Hub cannot be reached and the model is not cached.
    """
    resolved = resolve_spec(spec)
    import open_clip

    register_presets()
    import torch

    random_init = weights and not resolved.has_weights
    try:
        # A model that should have weights but has none (tol-tiny, a bare built-in name) is seeded, so
        # that two processes of one build (a run and its resume) make the same vectors. `weights=False`
        # (training from scratch) keeps the caller's random state.
        with torch.random.fork_rng(devices=[], enabled=random_init):
            if random_init:
                torch.manual_seed(RANDOM_INIT_SEED)
            model, train_preprocess, preprocess = open_clip.create_model_and_transforms(
                resolved.open_clip_name,
                pretrained=resolved.pretrained if weights else None,
                load_weights=weights,
                device=device,
            )
        tokenizer = open_clip.get_tokenizer(resolved.open_clip_name)
        model_cfg = open_clip.get_model_config(resolved.open_clip_name)
    except (RuntimeError, pickle.UnpicklingError) as e:
        if resolved.pretrained is not None and Path(resolved.pretrained).is_file():
            reason = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise ValueError(f"model spec {spec!r}: the weights file {resolved.pretrained!r} does not load into "
                             f"{resolved.open_clip_name} ({reason.rstrip('.:')}); expected {WEIGHTS_FORMS} "
                             f"of that model") from None
        if resolved.kind == "hf-hub":
            raise ModelUnavailableError(
                f"cannot load {spec} from the Hugging Face Hub ({e}). Without network access, copy the "
                f"repository's {OPEN_CLIP_CONFIG_FILE} and {OPEN_CLIP_WEIGHTS_FILE} into a folder and pass "
                "that folder as the model spec, or set HF_HUB_OFFLINE=1 to use the local Hub cache"
            ) from e
        raise
    if random_init:
        logger.warning("model %s has random weights (seed %d, none given): fit for tests and benchmarks only",
                       spec, RANDOM_INIT_SEED)
    model.eval()
    return LoadedModel(
        model=model,
        preprocess=preprocess,
        train_preprocess=train_preprocess,
        tokenizer=tokenizer,
        vector_name=model_vector_name(spec),
        dim=int(model_cfg["embed_dim"]),
        spec=spec,
        model_cfg=model_cfg,
        preprocess_cfg=dict(open_clip.get_model_preprocess_cfg(model)),
    )


def _unwrap(model: "torch.nn.Module") -> "torch.nn.Module":
    """The plain module under DistributedDataParallel (`.module`) and torch.compile (`._orig_mod`)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def save_model_folder(
    model: "torch.nn.Module",
    model_cfg: dict[str, Any],
    out_dir: str | Path,
    preprocess_cfg: dict[str, Any] | None = None,
) -> Path:
    """Write `open_clip_config.json` + `open_clip_model.safetensors`: a folder `load_model(out_dir)` loads.

    `preprocess_cfg` defaults to the model's own (`open_clip.get_model_preprocess_cfg`).
    Returns the folder.
    """
    import open_clip
    from safetensors.torch import save_file

    model = _unwrap(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if preprocess_cfg is None:
        preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(model))
    config = {"model_cfg": model_cfg, "preprocess_cfg": _jsonable(preprocess_cfg)}
    # Cloned so that tensors sharing storage (tied weights) can be written by safetensors.
    state = {key: value.detach().to("cpu").contiguous().clone() for key, value in model.state_dict().items()}
    weights_tmp = out / (OPEN_CLIP_WEIGHTS_FILE + ".tmp")
    save_file(state, str(weights_tmp))
    weights_tmp.replace(out / OPEN_CLIP_WEIGHTS_FILE)
    config_tmp = out / (OPEN_CLIP_CONFIG_FILE + ".tmp")
    config_tmp.write_text(json.dumps(config, indent=2), encoding="utf-8")
    config_tmp.replace(out / OPEN_CLIP_CONFIG_FILE)
    logger.info("saved model folder %s", out)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value
