"""`ccp render`: --out writes the whole set, --compare reports differences by exit status, errors exit 2."""

from pathlib import Path

import pytest
from flask import Flask

from ccp.cli.render import render_command
from tests.rendering.conftest import SAMPLES


@pytest.fixture
def runner():
    return Flask("render-cli-test").test_cli_runner()


def test_render_out_then_compare_reports_no_difference(runner, tmp_path):
    sample = str(SAMPLES / "provisioned.toml")
    out = tmp_path / "out"
    first = runner.invoke(render_command, ["--instance-file", sample, "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "riverside: set default 1.0.0, tag v2.10.3: wrote 15 files" in first.output
    assert (out / ".env").stat().st_mode & 0o777 == 0o600
    assert (out / "scripts/upgrade.sh").stat().st_mode & 0o111
    same = runner.invoke(render_command, ["--instance-file", sample, "--compare", str(out)])
    assert same.exit_code == 0 and "all 15 files identical" in same.output


def test_compare_lists_modified_and_missing_files_and_exits_1(runner, tmp_path):
    sample = str(SAMPLES / "registered.toml")
    assert runner.invoke(render_command, ["--instance-file", sample, "--out", str(tmp_path)]).exit_code == 0
    (tmp_path / "nginx/nginx.conf").write_text("changed\n")
    (tmp_path / "redis/redis.conf").unlink()
    (tmp_path / "unrelated.txt").write_text("tenant data is not part of the set\n")
    result = runner.invoke(render_command, ["--instance-file", sample, "--compare", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.splitlines()[:2] == ["modified nginx/nginx.conf", "missing  redis/redis.conf"]
    assert "2 of 14 files differ" in result.output
    newer = runner.invoke(render_command, ["--instance-file", sample, "--tag", "v9", "--compare", str(tmp_path)])
    assert newer.exit_code == 1 and "tag v9" in newer.output


def test_render_error_exits_2_and_writes_nothing(runner, tmp_path):
    broken = tmp_path / "broken.toml"
    text = (SAMPLES / "provisioned.toml").read_text().replace('JWT_SECRET = "test-jwt-0006"\n', "")
    broken.write_text(text)
    out = tmp_path / "out"
    result = runner.invoke(render_command, ["--instance-file", str(broken), "--out", str(out)])
    assert result.exit_code == 2
    assert ".env.j2 line" in result.output and "secrets.JWT_SECRET" in result.output
    assert "test-" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x"], "either SLUG or --instance-file"),
        (["--instance-file", str(SAMPLES / "registered.toml")], "--out DIR and/or --compare DIR"),
        (["--instance-file", str(SAMPLES / "registered.toml"), "--tag", "bad tag", "--out", "x"],
         "invalid image tag"),
    ],
)
def test_bad_usage_is_refused(runner, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(render_command, args)
    assert result.exit_code == 2 and message in result.output
    assert not Path("x").exists()


def test_instance_file_with_unknown_keys_is_refused(runner, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('slug = "a"\ndomain = "a.example.org"\nsecretz = {}\n')
    result = runner.invoke(render_command, ["--instance-file", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "unknown keys ['secretz']" in result.output


def test_slug_is_looked_up_in_the_database_with_its_secrets(app, tmp_path):
    from ccp.extensions import db
    from ccp.models import Instance
    from ccp.rendering.instance_file import load_instance_file

    sample, secrets = load_instance_file(SAMPLES / "provisioned.toml")
    with app.app_context():
        row = Instance(slug=sample.slug, name=sample.name, domain=sample.domain, compose_project="riverside",
                       is_registered=False, image_tag="v2.10.3", template_set="default", vars=sample.vars,
                       health_urls=sample.health_urls)
        row.set_secrets(secrets)
        db.session.add(row)
        db.session.commit()
    runner = app.test_cli_runner()
    golden = Path(__file__).parent / "golden" / "provisioned"
    result = runner.invoke(render_command, ["riverside", "--compare", str(golden)])
    assert result.exit_code == 0, result.output
    missing = runner.invoke(render_command, ["nobody", "--out", str(tmp_path)])
    assert missing.exit_code == 2 and "no instance with slug 'nobody'" in missing.output
