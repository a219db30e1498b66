"""`python -m demo`: the whole chain offline, each step the same command a user would type.

collection -> tiny model -> build -> evaluation -> UI. Each step shows its command line and calls the
package's function that the command runs, with the same values (`demo.commands.write_collection`,
`training.main.train`, `embed.commands.build`, `training.eval_cli.evaluate_and_report`). Every step is skipped when its output is
already there for the same settings, and the training and the build resume after a crash, so a
second run costs seconds and an interrupted one loses nothing.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from demo.constants import DEMO_MODEL_NAME, DEMO_TRAIN_CONFIG, UI_SCRIPT
from toolkit.settings import DB_ENV, MODEL_ENV, STORE_ENV

logger = logging.getLogger(__name__)

MANIFEST = "demo.json"


@dataclass(frozen=True)
class ChainOptions:
    workdir: Path
    species: int
    per_species: int
    size: int
    seed: int
    epochs: int | None
    serve: bool
    port: int


@dataclass(frozen=True)
class ChainPaths:
    collection: Path
    run: Path
    model: Path
    store: Path
    db: Path

    @classmethod
    def under(cls, workdir: Path) -> "ChainPaths":
        return cls(workdir / "demo", workdir / "runs" / DEMO_MODEL_NAME, workdir / "models" / DEMO_MODEL_NAME,
                   workdir / "qdrant", workdir / "catalog.db")

    @property
    def catalog(self) -> Path:
        return self.collection / "catalog.csv"

    @property
    def images(self) -> Path:
        return self.collection / "images"

    def environment(self) -> dict[str, str]:
        """What the UI and the CLIs need to find this store, catalog and model."""
        return {STORE_ENV: str(self.store), DB_ENV: str(self.db), MODEL_ENV: str(self.model)}


def _command(command: list[str], values: dict) -> list[str]:
    """The command line a user would type for `values` (keyword arguments of the function the step calls)."""
    return [*command, *(part for key, value in values.items() for part in (f"--{key.replace('_', '-')}", str(value)))]


def _step(title: str, argv: list[str]) -> None:
    print(f"\n== {title}\n$ {shlex.join(argv)}", file=sys.stderr, flush=True)


def _settings_match(folder: Path, settings: dict) -> bool:
    manifest = folder / MANIFEST
    return manifest.is_file() and json.loads(manifest.read_text()) == settings


def _write_settings(folder: Path, settings: dict) -> None:
    (folder / MANIFEST).write_text(json.dumps(settings, indent=2) + "\n")


def make_collection(options: ChainOptions, paths: ChainPaths) -> None:
    settings = {"species": options.species, "per_species": options.per_species, "size": options.size,
                "seed": options.seed}
    values = {"out": paths.collection, **settings}
    _step("1/5 demo collection: imaginary organisms on real NCBI taxa",
          _command(["python", "-m", "demo", "collection"], values))
    if _settings_match(paths.collection, settings) and paths.catalog.is_file():
        print("already there for these settings", file=sys.stderr)
        return
    from demo.commands import write_collection

    write_collection(**values)
    _write_settings(paths.collection, settings)


def _run_config() -> dict:
    """The demo run config's values, with its preset's architecture: a change in either trains again."""
    from embed.configs import list_configs as list_presets, load_config as load_preset
    from training.params import load_config

    values = load_config(DEMO_TRAIN_CONFIG)
    if values.get("model") in list_presets():
        values["model_cfg"] = load_preset(values["model"]).model_cfg
    return values


def train_model(options: ChainOptions, paths: ChainPaths) -> None:
    settings = {"collection": json.loads((paths.collection / MANIFEST).read_text()), "epochs": options.epochs,
                "config": _run_config()}
    values: dict = {"catalog": str(paths.catalog), "images": str(paths.images), "out": str(paths.run),
                    "device": "cpu", "zeroshot_every": 0}  # step 4 evaluates the final model
    if options.epochs is not None:
        values["epochs"] = options.epochs
    _step("2/5 train the tiny model on the CPU (BioCLIP's recipe, mixed text types)",
          _command(["python", "-m", "training", "train", "--config", DEMO_TRAIN_CONFIG], values))
    if _settings_match(paths.model, settings):
        print(f"already trained: {paths.model}", file=sys.stderr)
        return
    from training.checkpoint import latest_checkpoint

    if _settings_match(paths.run, settings) and latest_checkpoint(paths.run).is_file():
        values["resume"] = True  # an earlier run of the same settings was interrupted
    else:
        shutil.rmtree(paths.run, ignore_errors=True)
        paths.run.mkdir(parents=True)
        _write_settings(paths.run, settings)
    from training.main import train
    from training.params import make_config

    result = train(make_config(DEMO_TRAIN_CONFIG, **values))
    shutil.rmtree(paths.model, ignore_errors=True)
    shutil.copytree(result.model_dir, paths.model)  # the folder's name starts the model's vector name
    _write_settings(paths.model, settings)


def build_index(paths: ChainPaths) -> None:
    values = {"catalog": str(paths.catalog), "images": str(paths.images), "model": str(paths.model),
              "store": str(paths.store), "db": str(paths.db)}
    _step("3/5 embed every image and every taxon into Qdrant (embedded engine)",
          _command(["python", "-m", "embed", "build"], values))
    from embed.build import BuildOptions
    from embed.commands import build

    code = build(BuildOptions(**values))
    if code:
        raise SystemExit(code)


def evaluate(paths: ChainPaths) -> None:
    argv = ["python", "-m", "training", "eval", "--model", str(paths.model), "--catalog", str(paths.catalog),
            "--images", str(paths.images), "--split", "val", "--shots", "0", "--format", "markdown"]
    _step("4/5 zero-shot top-1 on held-out images, at every rank", argv)
    from training.eval_cli import EvalConfig, evaluate_and_report

    evaluate_and_report(EvalConfig(models=(str(paths.model),), images=str(paths.images), catalog=str(paths.catalog),
                                   split="val", shots=(0,), format="markdown"))


def serve(options: ChainOptions, paths: ChainPaths) -> int:
    argv = [sys.executable, "-m", "streamlit", "run", str(UI_SCRIPT), "--server.port", str(options.port),
            "--server.headless", "true"]
    environment = " ".join(f"{k}={shlex.quote(v)}" for k, v in paths.environment().items())
    _step("5/5 the search UI", ["env", *environment.split(), "streamlit", "run", "ui/app.py"])
    if not options.serve:
        print(f"not started (--no-ui); start it with:\n  {environment} streamlit run ui/app.py", file=sys.stderr)
        return 0
    print(f"open http://localhost:{options.port} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    try:
        quiet = {"STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}  # offline: nothing to send, no notice
        return subprocess.call(argv, env={**os.environ, **quiet, **paths.environment()})
    except KeyboardInterrupt:
        return 0


def run_chain(options: ChainOptions) -> int:
    paths = ChainPaths.under(options.workdir)
    logger.debug("demo chain %s", asdict(options))
    make_collection(options, paths)
    train_model(options, paths)
    build_index(paths)
    evaluate(paths)
    return serve(options, paths)
