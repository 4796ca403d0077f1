"""Release history and "roll back to this release" through the service layer, the RQ worker and a real install dir
(dry-run runtime), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from ccp.models import AuditEvent, Upgrade, utcnow
from ccp.rendering.sets import BUNDLED_DIR
from ccp.services import history, upgrades
from ccp.services.history import RollbackRefused


def _release(db, run_worker, inst, tag: str) -> Upgrade:
    upgrade = upgrades.start_release(inst, tag, plan=upgrades.preview_release(inst, tag).plan_hash, actor="user:ann")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", upgrade.error
    db.session.refresh(inst)
    return upgrade


def _files(inst) -> dict[str, bytes]:
    root = Path(inst.install_dir)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".ccp" not in p.parts and p.name != ".dry-run-runtime.json"}


def test_history_lists_succeeded_releases_newest_first_with_what_they_put_there(app, db, tenant, run_worker):
    first = _release(db, run_worker, tenant, "v2")
    upgrades.start_quick(tenant, actor="user:ann")  # quick upgrades and failures stay out of the release history
    run_worker()
    broken = upgrades.start_release(tenant, "broken", actor="user:bob")
    run_worker()
    db.session.refresh(broken)
    assert broken.status == "rolled_back"
    second = _release(db, run_worker, tenant, "v3")

    releases = history.release_history(tenant)
    assert [r.upgrade_id for r in releases] == [second.id, first.id]
    assert [r.current for r in releases] == [True, False]
    now, then = releases
    assert (now.tag, now.from_tag, then.tag, then.from_tag) == ("v3", "v2", "v2", "v1")
    assert then.actor == "user:ann" and then.applied_at is not None and then.recorded
    assert then.set_label == "default 1.0.0"
    # every rendered file but the provisioned .env, hashed as it is on disk now
    on_disk = {path: hashlib.sha256(data).hexdigest() for path, data in _files(tenant).items() if path != ".env"}
    assert now.file_hashes == on_disk and ".env" not in now.file_hashes


def test_rows_from_before_the_history_are_listed_with_what_is_known(app, db, tenant):
    old = Upgrade(instance_id=tenant.id, kind="release", status="succeeded", actor="user:old", from_tag="v0",
                  to_tag="v1", image_digest="sha256:" + "a" * 64)
    db.session.add(old)
    db.session.commit()
    [release] = history.release_history(tenant)
    assert release.upgrade_id == old.id and release.current and not release.recorded
    assert release.set_label is None and release.image_digest == "sha256:" + "a" * 64


def test_roll_back_to_an_earlier_release_restores_its_files_and_records_what_it_goes_back_to(
        app, db, tenant, run_worker):
    v1 = _release(db, run_worker, tenant, "v1")  # the tenant's v1 as a recorded release
    v1.image_digest = "sha256:" + "b" * 64
    db.session.commit()
    files_v1 = _files(tenant)
    _release(db, run_worker, tenant, "v2")
    assert _files(tenant) != files_v1

    preview = history.preview_rollback(tenant, v1.id)
    assert preview.target.upgrade_id == v1.id and preview.preview.tag == "v1" and preview.preview.from_tag == "v2"
    assert preview.identical and not preview.set_changed and preview.drift == ()
    back = history.start_rollback(tenant, v1.id, plan=preview.preview.plan_hash, actor="user:cy")
    assert back.rollback_of == v1.id and back.image_digest == "sha256:" + "b" * 64 and back.to_tag == "v1"
    run_worker()
    db.session.refresh(back)
    assert back.status == "succeeded", back.error
    db.session.refresh(tenant)
    assert tenant.image_tag == "v1" and _files(tenant) == files_v1
    assert upgrades.upgrade_status(back).rollback_of == v1.id
    releases = history.release_history(tenant)
    assert releases[0].upgrade_id == back.id and releases[0].rollback_of == v1.id and releases[0].current
    assert releases[0].file_hashes == v1.file_hashes
    event = AuditEvent.query.filter_by(action="upgrade.rollback").one()
    assert event.actor == "user:cy" and event.detail == {"upgrade_id": back.id, "rollback_of": v1.id, "to_tag": "v1"}


def test_a_changed_template_set_is_named_file_by_file(app, db, tenant, run_worker, tmp_path):
    sets = tmp_path / "sets"
    shutil.copytree(BUNDLED_DIR / "default", sets / "default")
    app.config["CCP"].template_sets_dir = str(sets)
    try:
        v1 = _release(db, run_worker, tenant, "v1")
        _release(db, run_worker, tenant, "v2")
        conf = sets / "default" / "nginx" / "nginx.conf.j2"
        conf.write_text(conf.read_text() + "\n# tuned since\n")
        edited = history.preview_rollback(tenant, v1.id)
        manifest = sets / "default" / "set.toml"
        manifest.write_text(manifest.read_text().replace('version = "1.0.0"', 'version = "1.1.0"', 1))
        bumped = history.preview_rollback(tenant, v1.id)
    finally:
        app.config["CCP"].template_sets_dir = None
    assert not edited.identical and not edited.set_changed  # edited in place, same version: still named
    assert [(d.path, d.change) for d in edited.drift] == [("nginx/nginx.conf", "differs")]
    # a new version: every file's "Managed by CCP: template set default 1.1.0" header differs too
    assert bumped.set_changed and (bumped.preview.set_name, bumped.preview.set_version) == ("default", "1.1.0")
    assert {"docker-compose.yml", "nginx/nginx.conf", ".env.example"} & {d.path for d in bumped.drift}
    assert "monitoring/alert-rules.yml" not in {d.path for d in bumped.drift}  # not a template: no header
    assert {d.change for d in bumped.drift} == {"differs"}


def test_the_recorded_digest_is_rendered_by_the_preview_as_by_the_apply(app, db, tenant, run_worker, tmp_path):
    sets = tmp_path / "sets"
    shutil.copytree(BUNDLED_DIR / "default", sets / "default")
    conf = sets / "default" / "nginx" / "nginx.conf.j2"
    conf.write_text(conf.read_text() + "\n# image {{ image_tag }}{% if image_digest %}@{{ image_digest }}{% endif %}\n")
    app.config["CCP"].template_sets_dir = str(sets)
    digest = "sha256:" + "d" * 64
    try:
        v1 = _release(db, run_worker, tenant, "v1")
        v1.image_digest = digest  # as a receiver records what the tag resolved to
        db.session.commit()
        _release(db, run_worker, tenant, "v2")
        preview = history.preview_rollback(tenant, v1.id)
        back = history.start_rollback(tenant, v1.id, plan=preview.preview.plan_hash, actor="t")  # not stale
        run_worker()
    finally:
        app.config["CCP"].template_sets_dir = None
    db.session.refresh(back)
    assert back.status == "succeeded", back.error
    assert back.image_digest == digest
    assert f"# image v1@{digest}" in (Path(tenant.install_dir) / "nginx" / "nginx.conf").read_text()


def test_an_unrecorded_release_previews_without_a_file_comparison(app, db, tenant, run_worker):
    _release(db, run_worker, tenant, "v2")
    old = Upgrade(instance_id=tenant.id, kind="release", status="succeeded", actor="user:old", from_tag="v0",
                  to_tag="v1", created_at=utcnow().replace(year=2020), finished_at=None)
    db.session.add(old)
    db.session.commit()
    preview = history.preview_rollback(tenant, old.id)
    assert preview.drift is None and not preview.identical and not preview.set_changed


def test_bad_targets_are_refused_and_start_nothing(app, db, tenant_factory, run_worker):
    tenant, other = tenant_factory(), tenant_factory()
    first = _release(db, run_worker, tenant, "v2")
    current = _release(db, run_worker, tenant, "v3")
    theirs = _release(db, run_worker, other, "v2")
    quick = upgrades.start_quick(tenant, actor="t")
    run_worker()
    failed = upgrades.start_release(tenant, "broken", actor="t")
    run_worker()
    count = Upgrade.query.count()
    cases = [(999999, 404, "not_found"), (theirs.id, 404, "not_found"), (quick.id, 422, "not_a_release"),
             (failed.id, 422, "not_a_release"), (current.id, 409, "already_current"), ("1", 404, "not_found"),
             (True, 404, "not_found")]
    for upgrade_id, status, code in cases:
        for call, kwargs in ((history.preview_rollback, {}),
                             (history.start_rollback, {"plan": "0" * 64, "actor": "t"})):
            with pytest.raises(RollbackRefused) as refused:
                call(tenant, upgrade_id, **kwargs)
            assert (refused.value.status, refused.value.code) == (status, code), (upgrade_id, refused.value.message)
    with pytest.raises(upgrades.UpgradeError) as no_plan:
        history.start_rollback(tenant, first.id, plan=None, actor="t")
    assert no_plan.value.status == 422 and no_plan.value.details == {"plan": "required"}
    with pytest.raises(upgrades.PlanStale):
        history.start_rollback(tenant, first.id, plan="0" * 64, actor="t")
    assert Upgrade.query.count() == count
    assert AuditEvent.query.filter_by(action="upgrade.rollback").count() == 0
