"""A release that carries an image digest renders it: templates see `image_digest`, registered tenants can manage
IMAGE_DIGEST, and the preview, the job and a rollout's wave all plan with the same digest (issue #14)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ccp.envfile.dotenv import parse_env
from ccp.rendering.context import build_context, managed_env_values
from ccp.rendering.sets import BUNDLED_DIR
from ccp.services import upgrades

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def pinning_set(app, tmp_path):
    """An operator copy of the default set whose .env pins the digest and which manages IMAGE_DIGEST."""
    root = tmp_path / "sets" / "default"
    shutil.copytree(BUNDLED_DIR / "default", root)
    env = root / ".env.j2"
    env.write_text(env.read_text() + "IMAGE_DIGEST={{ image_digest }}\n")
    manifest = root / "set.toml"
    manifest.write_text(manifest.read_text().replace('managed_env_keys = ["IMAGE_TAG"]',
                                                     'managed_env_keys = ["IMAGE_TAG", "IMAGE_DIGEST"]'))
    app.config["CCP"].template_sets_dir = str(root.parent)
    yield root
    app.config["CCP"].template_sets_dir = None


def test_context_carries_a_checked_digest():
    from tests.rendering.conftest import SAMPLES
    from ccp.rendering.instance_file import load_instance_file

    instance, secrets = load_instance_file(SAMPLES / "provisioned.toml")
    assert build_context(instance, "v2", secrets=secrets)["image_digest"] == ""
    assert build_context(instance, "v2", secrets=secrets, digest=DIGEST)["image_digest"] == DIGEST
    for bad in ("sha256:xyz", "SHA256:" + "AB" * 32, "latest", "sha256:" + "ab" * 31):
        with pytest.raises(ValueError, match="invalid image digest"):
            build_context(instance, "v2", secrets=secrets, digest=bad)


def test_registered_set_managing_the_digest_patches_it(pinning_set):
    from tests.rendering.conftest import SAMPLES
    from ccp.rendering.instance_file import load_instance_file
    from ccp.rendering.sets import load_template_set

    instance, _ = load_instance_file(SAMPLES / "registered.toml")
    tset = load_template_set("default", (pinning_set.parent,))
    assert managed_env_values(instance, "v2", template_set=tset, digest=DIGEST) == {
        "IMAGE_TAG": "v2", "IMAGE_DIGEST": DIGEST}
    assert managed_env_values(instance, "v2", template_set=tset)["IMAGE_DIGEST"] == ""


def test_provisioned_release_with_a_digest_writes_it(app, pinning_set, tenant_factory, run_worker, db):
    inst = tenant_factory()
    plain, pinned = upgrades.plan_release(inst, "v2"), upgrades.plan_release(inst, "v2", DIGEST)
    assert plain.plan_hash != pinned.plan_hash  # the digest is part of what is rendered
    upgrade = upgrades.start_release(inst, "v2", plan=pinned.plan_hash, actor="t", image_digest=DIGEST)
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", (upgrade.error, [(s.name, s.output_tail) for s in upgrade.steps])
    env = parse_env((Path(inst.install_dir) / ".env").read_text())
    assert (env["IMAGE_TAG"], env["IMAGE_DIGEST"]) == ("v2", DIGEST)


def test_a_preview_without_the_digest_does_not_bind_a_pinned_apply(app, pinning_set, tenant_factory):
    inst = tenant_factory()
    plain = upgrades.plan_release(inst, "v2").plan_hash
    with pytest.raises(upgrades.PlanStale):
        upgrades.start_release(inst, "v2", plan=plain, actor="t", image_digest=DIGEST)


def test_registered_release_appends_the_digest(app, pinning_set, tenant_factory, run_worker, db):
    inst = tenant_factory(registered=True)
    preview = upgrades.plan_release(inst, "v2", DIGEST)
    assert preview.env_patch == {"IMAGE_TAG": "v2", "IMAGE_DIGEST": DIGEST}
    upgrade = upgrades.start_release(inst, "v2", plan=preview.plan_hash, actor="t", image_digest=DIGEST)
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", upgrade.error
    env = parse_env((Path(inst.install_dir) / ".env").read_text())
    assert (env["IMAGE_TAG"], env["IMAGE_DIGEST"]) == ("v2", DIGEST)


def test_a_rollout_with_a_digest_pins_it_on_every_tenant(app, db, pinning_set, tenant_factory, run_worker):
    from ccp.services import rollouts

    tenants = [tenant_factory(slug=f"pin-{x}") for x in "ab"]
    rollout = rollouts.start_rollout("v2", canary=1, wave_size=1, actor="webhook:registry", image_digest=DIGEST)
    run_worker()
    db.session.refresh(rollout)
    assert rollout.status == "succeeded", rollout.error
    for inst in tenants:
        env = parse_env((Path(inst.install_dir) / ".env").read_text())
        assert (env["IMAGE_TAG"], env["IMAGE_DIGEST"]) == ("v2", DIGEST)
        assert inst.upgrades.one().image_digest == DIGEST
