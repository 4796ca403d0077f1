"""The bundled default template set, rendered, against the real Docker CLI + engine.

tests/rendering already checks the render with the standalone compose binary; here the same files go through
``docker compose`` (the plugin path hostops uses on tenant hosts) and then the engine itself creates every
container, network and volume of the set (images swapped for the local test image by an override file, since
the real images are not reachable offline) - catching what only the engine rejects (resource limits, logging
options, health-check fields newer than the engine's API, mount syntax)."""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from tests.e2e import images
import pytest
import yaml

import ccp.rendering.instance_file as instance_file
import ccp.rendering.render as render_mod
from ccp.envfile.compose_refs import compose_variables

SAMPLES = Path(__file__).resolve().parents[1] / "rendering" / "samples"
TAG = "v2.11.0"


def sample(name: str):
    return instance_file.load_instance_file(SAMPLES / f"{name}.toml")


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content, encoding="utf-8")
        if rel.endswith(".sh"):
            p.chmod(0o755)
    return root


def docker_compose(folder: Path, project: str, *args: str, files=("docker-compose.yml",), timeout: float = 120):
    argv = ["docker", "compose", "-p", project, "--project-directory", str(folder)]
    for f in files:
        argv += ["-f", str(folder / f)]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def provisioned_dir(tmp_path):
    instance, secrets = sample("provisioned")
    result = render_mod.render_instance(instance, TAG, secrets=secrets)
    assert ".env" in result.files
    return write_tree(tmp_path / "provisioned", result.files), result.files


@pytest.fixture
def registered_dir(tmp_path):
    instance, _ = sample("registered")
    result = render_mod.render_instance(instance, TAG)
    assert ".env" not in result.files  # CCP never renders a registered tenant's .env
    folder = write_tree(tmp_path / "registered", result.files)
    refs = compose_variables(result.files["docker-compose.yml"])
    # the tenant's own .env, as its install script would have written it
    (folder / ".env").write_text(
        "".join(f"{k}=tenant-value-{k.lower()}\n" for k in sorted(refs.required - {"IMAGE_TAG"}))
        + "IMAGE_TAG=v2.10.0\n"
    )
    return folder, result.files


def test_docker_compose_accepts_the_provisioned_render(provisioned_dir):
    folder, files = provisioned_dir
    project = f"ccpe2e-set-{uuid.uuid4().hex[:8]}"
    quiet = docker_compose(folder, project, "--profile", "ccp-agent", "config", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    services = docker_compose(folder, project, "--profile", "ccp-agent", "config", "--services")
    assert services.returncode == 0, services.stderr
    assert set(services.stdout.split()) == set(yaml.safe_load(files["docker-compose.yml"])["services"])
    imgs = docker_compose(folder, project, "config", "--images")
    assert imgs.returncode == 0, imgs.stderr
    platform = [i for i in imgs.stdout.split() if "/organise/" in i or i.split(":")[0].endswith(("/api", "/admin"))]
    assert platform, imgs.stdout
    assert all(i.endswith(f":{TAG}") for i in platform), platform


def test_registered_tag_reaches_compose_only_through_env(registered_dir):
    folder, _ = registered_dir
    project = f"ccpe2e-set-{uuid.uuid4().hex[:8]}"
    before = docker_compose(folder, project, "config", "--images")
    assert before.returncode == 0, before.stderr
    assert any(i.endswith(":v2.10.0") for i in before.stdout.split()), before.stdout
    images.set_env_value(folder / ".env", "IMAGE_TAG", TAG)  # what CCP's env patch does on apply
    after = docker_compose(folder, project, "config", "--images")
    assert after.returncode == 0, after.stderr
    assert any(i.endswith(f":{TAG}") for i in after.stdout.split())
    assert not any(i.endswith(":v2.10.0") for i in after.stdout.split())
    # a required secret missing from the tenant's .env is refused, naming the variable
    env = (folder / ".env").read_text().splitlines(keepends=True)
    dropped = next(line for line in env if line.startswith("POSTGRES_PASSWORD="))
    (folder / ".env").write_text("".join(line for line in env if line is not dropped))
    bad = docker_compose(folder, project, "config", "--quiet")
    assert bad.returncode != 0 and "POSTGRES_PASSWORD" in bad.stderr


def test_engine_creates_every_service_of_the_default_set(provisioned_dir, test_images):
    folder, files = provisioned_dir
    services = yaml.safe_load(files["docker-compose.yml"])["services"]
    override = {"services": {name: {"image": test_images["v1"], "pull_policy": "missing"} for name in services}}
    (folder / "ccp-e2e-override.yml").write_text(yaml.safe_dump(override, sort_keys=True))
    project = f"ccpe2e-set-{uuid.uuid4().hex[:8]}"
    both = ("docker-compose.yml", "ccp-e2e-override.yml")
    try:
        created = docker_compose(folder, project, "--profile", "ccp-agent", "create", files=both, timeout=240)
        assert created.returncode == 0, created.stderr[-2000:]
        ps = docker_compose(folder, project, "--profile", "ccp-agent", "ps", "-a", "--format", "json", files=both)
        assert ps.returncode == 0, ps.stderr
        rows = [json.loads(line) for line in ps.stdout.splitlines() if line.strip().startswith("{")]
        assert {r["Service"] for r in rows} == set(services)
        assert all(r["State"] == "created" for r in rows), rows
        pg = next(r for r in rows if r["Service"] == "postgres")
        inspect = subprocess.run(["docker", "inspect", pg["Name"]], capture_output=True, text=True, timeout=30,
                                 check=True)
        cfg = json.loads(inspect.stdout)[0]
        assert cfg["HostConfig"]["Memory"] == 1024**3  # mem_limit 1g reached the engine
        assert cfg["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert cfg["Config"]["Healthcheck"]["Test"][0] == "CMD-SHELL"
        assert any(m["Destination"] == "/docker-entrypoint-initdb.d" for m in cfg["Mounts"])
    finally:
        down = docker_compose(folder, project, "--profile", "ccp-agent", "down", "-v", "--remove-orphans",
                              files=both, timeout=180)
        assert down.returncode == 0, down.stderr
