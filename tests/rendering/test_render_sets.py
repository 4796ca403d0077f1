"""Loading and listing template sets: bundled, operator-supplied, and malformed ones."""

import os

import pytest

from ccp.rendering.sets import TemplateSetError, list_template_sets, load_template_set


def _make_set(root, name, manifest='version = "0.1"\n', files=None):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "set.toml").write_text(manifest)
    for rel, text in (files or {"a.txt.j2": "x\n"}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def test_bundled_default_set_loads_with_its_declarations():
    tset = load_template_set("default")
    assert tset.name == "default" and tset.version == "1.0.0"
    assert ".env.j2" in tset.files and "docker-compose.yml.j2" in tset.files and "set.toml" not in tset.files
    assert list(tset.files) == sorted(tset.files)
    assert "IMAGE_TAG" in tset.managed_env_keys
    assert {"POSTGRES_PASSWORD", "JWT_SECRET"} <= tset.secret_keys
    assert tset.optional_secret_keys < tset.secret_keys
    assert not tset.secret_keys & tset.defaults.keys()


def test_operator_sets_are_listed_and_shadow_bundled_ones(tmp_path):
    _make_set(tmp_path, "custom")
    _make_set(tmp_path, "default", 'version = "9.9-local"\n')
    (tmp_path / "not-a-set").mkdir()
    sets = {s.name: s for s in list_template_sets([tmp_path])}
    assert set(sets) == {"custom", "default"}
    assert sets["default"].version == "9.9-local"
    assert load_template_set("default", [tmp_path]).root == tmp_path / "default"
    assert load_template_set("default").version == "1.0.0"


@pytest.mark.parametrize("name", ["../default", "Default", "", "a/b", ".hidden", None])
def test_invalid_names_are_rejected(name):
    with pytest.raises(TemplateSetError, match="invalid template set name"):
        load_template_set(name)


def test_unknown_set_is_a_clear_error(tmp_path):
    with pytest.raises(TemplateSetError, match="unknown template set 'nope'"):
        load_template_set("nope", [tmp_path])


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("description = 'no version'\n", "version must be a non-empty string"),
        ("version = [1\n", "set.toml"),
        ('version = "1"\nsecret_keys = ["A"]\n[defaults]\nA = "x"\n', "secrets must not have defaults"),
        ('version = "1"\nsecret_keys = ["lower"]\n', "UPPER_CASE"),
        ('version = "1"\nsecret_keys = ["A"]\nmanaged_env_keys = ["A"]\n', "must not be secrets"),
        ('version = "1"\noptional_secret_keys = ["B"]\n', "not in secret_keys"),
        ('version = "1"\n[defaults]\nPORT = 80\n', "map names to strings"),
    ],
)
def test_malformed_manifests_are_rejected(tmp_path, manifest, message):
    _make_set(tmp_path, "bad", manifest)
    with pytest.raises(TemplateSetError, match=message):
        load_template_set("bad", [tmp_path])


def test_two_sources_rendering_the_same_output_are_rejected(tmp_path):
    _make_set(tmp_path, "clash", files={"x.conf": "a\n", "x.conf.j2": "b\n"})
    with pytest.raises(TemplateSetError, match="both render x.conf"):
        load_template_set("clash", [tmp_path])


def test_symlinks_leaving_the_set_are_rejected(tmp_path):
    folder = _make_set(tmp_path, "sneaky")
    (tmp_path / "outside.txt").write_text("secret\n")
    os.symlink(tmp_path / "outside.txt", folder / "leak.txt")
    with pytest.raises(TemplateSetError, match="points outside the set"):
        load_template_set("sneaky", [tmp_path])
