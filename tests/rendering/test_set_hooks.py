"""set.toml's [hooks] and [backup]: only files of the set, known hook names and keys, bounded deadlines and keep; each
mistake is refused at load with a message naming the setting."""
import pytest

from ccp.rendering.sets import TemplateSetError, load_template_set

GOOD = """version = "1.0.0"
[hooks]
pre_upgrade = { run = "hooks/pre-upgrade.sh", deadline_s = 60 }
post_upgrade = { run = "hooks/post-upgrade.sh" }
[backup]
run = "hooks/backup.sh"
restore = "hooks/restore.sh"
keep = 4
deadline_s = 300
"""


def _set(tmp_path, manifest: str, files=("hooks/pre-upgrade.sh", "hooks/post-upgrade.sh.j2", "hooks/backup.sh",
                                         "hooks/restore.sh")):
    root = tmp_path / "sets" / "hooked"
    (root / "hooks").mkdir(parents=True, exist_ok=True)
    for rel in files:
        (root / rel).write_text("echo hi\n")
    (root / "docker-compose.yml").write_text("services: {}\n")
    (root / "set.toml").write_text(manifest)
    return tmp_path / "sets"


def test_hooks_and_backup_are_read(tmp_path):
    tset = load_template_set("hooked", [_set(tmp_path, GOOD)])
    pre, post = tset.hooks["pre_upgrade"], tset.hooks["post_upgrade"]
    assert (pre.source, pre.output, pre.deadline_s) == ("hooks/pre-upgrade.sh", "hooks/pre-upgrade.sh", 60.0)
    # a template is found by its output name, and the default deadline applies
    assert (post.source, post.output, post.deadline_s) == ("hooks/post-upgrade.sh.j2", "hooks/post-upgrade.sh", 120.0)
    assert (tset.backup.run.output, tset.backup.restore.output, tset.backup.keep) == \
        ("hooks/backup.sh", "hooks/restore.sh", 4)
    assert tset.backup.run.deadline_s == tset.backup.restore.deadline_s == 300.0


def test_a_set_without_them_declares_nothing(tmp_path):
    tset = load_template_set("hooked", [_set(tmp_path, 'version = "1"\n')])
    assert tset.hooks == {} and tset.backup is None


@pytest.mark.parametrize("change, message", [
    (("hooks/pre-upgrade.sh", "hooks/missing.sh"), "hooks.pre_upgrade.run = 'hooks/missing.sh' is not a file"),
    (("hooks/pre-upgrade.sh", "../../etc/passwd"), "is not a file of the set"),
    (("hooks/pre-upgrade.sh", "/bin/sh"), "is not a file of the set"),
    (('run = "hooks/backup.sh"', 'run = 42'), "backup.run must name a file"),
    (("deadline_s = 60", "deadline_s = 0"), "hooks.pre_upgrade.deadline_s must be a number"),
    (("deadline_s = 60", "deadline_s = 3601"), "at most 3600"),
    (("deadline_s = 60", 'deadline_s = "60"'), "deadline_s must be a number"),
    (("deadline_s = 300", "deadline_s = 99999"), "backup.deadline_s"),
    (("keep = 4", "keep = 0"), "backup.keep must be an integer from 1 to 50"),
    (("keep = 4", "keep = 51"), "backup.keep"),
    (("pre_upgrade =", "pre_install ="), "unknown hook 'pre_install'"),
    (("deadline_s = 60 }", "deadline_s = 60, shell = true }"), "hooks.pre_upgrade must be"),
    (('restore = "hooks/restore.sh"\n', ""), "needs restore"),
    (("keep = 4", "keep = 4\nschedule = 'daily'"), "[backup] takes run, restore, keep and deadline_s"),
])
def test_mistakes_are_refused_with_a_clear_message(tmp_path, change, message):
    manifest = GOOD.replace(*change)
    assert manifest != GOOD
    with pytest.raises(TemplateSetError) as err:
        load_template_set("hooked", [_set(tmp_path, manifest)])
    assert message in str(err.value) and "set.toml" in str(err.value)


def test_a_hook_that_renders_an_env_file_is_refused(tmp_path):
    manifest = GOOD.replace("hooks/pre-upgrade.sh", "hooks/.env")
    sets = _set(tmp_path, manifest, files=("hooks/.env.j2", "hooks/post-upgrade.sh", "hooks/backup.sh",
                                           "hooks/restore.sh"))
    with pytest.raises(TemplateSetError, match="renders an .env file"):
        load_template_set("hooked", [sets])
