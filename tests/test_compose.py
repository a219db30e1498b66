"""docker-compose.yml: pinned images, a guarded Qdrant, and commands that exist in the project."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_external_images_are_pinned():
    for name, service in SERVICES.items():
        image = service.get("image", "")
        if "build" not in service:
            assert ":" in image and not image.endswith(":latest"), f"{name} uses an unpinned image {image!r}"


def test_qdrant_has_api_key_volume_and_health_check():
    qdrant = SERVICES["qdrant"]
    assert "QDRANT__SERVICE__API_KEY" in qdrant["environment"]
    assert any(v.endswith(":/qdrant/storage") for v in qdrant["volumes"])
    assert "/readyz" in " ".join(qdrant["healthcheck"]["test"])


def test_cluster_profile_has_three_distributed_nodes():
    nodes = [s for s in SERVICES.values() if "cluster" in s.get("profiles", [])]
    assert len(nodes) == 3
    assert all(n["environment"]["QDRANT__CLUSTER__ENABLED"] == "true" for n in nodes)
    assert sum("--bootstrap" in n["command"] for n in nodes) == 2


def _project_command(service: dict) -> list[str]:
    command = service["command"]
    if command[0] == "streamlit":
        return [sys.executable, "-m", "streamlit", *command[1:]]
    assert command[:2] == ["python", "-m"], f"unexpected command {command}"
    return [sys.executable, *command[1:]]


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if "build" in s])
def test_every_project_command_exists(name):
    command = _project_command(SERVICES[name])
    if command[2] == "streamlit":
        script = command[4]
        assert (ROOT / script).is_file(), f"{name}: {script} is missing"
        return
    module, subcommand = command[2], command[3]
    result = subprocess.run([*command[:3], subcommand, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{name}: `python -m {module} {subcommand} --help` failed:\n{result.stderr}"
    for flag in command[4:]:
        if flag.startswith("--"):
            assert flag in result.stdout, f"{name}: {module} {subcommand} has no {flag}"


def test_the_catalog_url_is_the_form_the_tests_run_on_postgresql():
    from sqlalchemy.engine import make_url

    from tests.conftest import postgres_url

    postgres = SERVICES["postgres"]["environment"]
    for name in ("ui", "build"):
        url = make_url(SERVICES[name]["environment"]["TOL_DB"])
        assert url.drivername == make_url(postgres_url("tol", "tol", Path("/run"))).drivername == "postgresql+psycopg"
        assert (url.host, url.port, url.username, url.database) == (
            "postgres", None, postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])  # DB_ACCEPTED's USER:PASSWORD@HOST/DB
    assert "'.[postgres]'" in (ROOT / "Dockerfile").read_text()  # the image has the driver
