"""Fleet scans on the real Docker tier: a hand edit of a running tenant's compose file is found by the next drift
scan and shown on the fleet page; a new image pushed under the tenant's tag in the local registry shows "update
available", and a Quick Upgrade (which pulls it) makes the tenant current again.

SQLite only: the database side runs on both in tests/scans."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ccp.extensions import db
from ccp.models import InstanceScan, Receiver, Upgrade
from ccp.services.fleet import fleet_rows, fleet_view
from ccp.services.instances import create_instance
from ccp.services.scan_runs import start_scan
from ccp.services.upgrades import start_quick
from tests.e2e import images
from tests.e2e import upgrade_helpers as uh

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _row(instance_id: int) -> InstanceScan:
    db.session.expire_all()
    return db.session.get(InstanceScan, instance_id)


def test_hand_edit_of_a_running_tenant_is_found_and_shown(app, real_tenant, run_worker):
    t, inst = real_tenant()
    start_scan(["drift"], actor="test")
    run_worker()
    assert _row(inst.id).sync_state == "in_sync"
    compose = t.install_dir / "docker-compose.yml"
    compose.write_text(compose.read_text() + "# someone fixed something by hand\n")
    start_scan(["drift"], actor="test")
    run_worker()
    row = _row(inst.id)
    assert row.sync_state == "drifted" and row.drifted_files == ["docker-compose.yml"]
    assert row.agent_facts["reachable"] and row.agent_facts["docker"]  # the real engine's version
    view = fleet_view(fleet_rows(""), "drifted")  # what the fleet page shows under its Drifted filter
    assert [r.slug for r in view.rows] == [inst.slug] and view.counts["drifted"] == 1
    assert view.rows[0].reasons == (("drifted", "1 file differs from a re-apply: docker-compose.yml"),)


def test_new_image_under_the_same_tag_shows_update_available(app, registry, registry_tag, tmp_path, run_worker):
    tag = registry_tag("v1")
    t = uh.make_real_tenant(tmp_path, tag=tag)
    try:
        inst = create_instance(uh.instance_data(t, tag=tag), actor="test")
        t.up()
        uh.wait_healthy(t.install_dir, t.project)
        db.session.add(Receiver(name="web", kind="distribution", repository=images.REPOSITORY,
                                image=f"{registry}/{images.REPOSITORY}", instances=[inst.slug], canary=1,
                                wave_size=5))
        db.session.commit()
        start_scan(["updates"], actor="test")
        run_worker()
        assert _row(inst.id).update_state == "current"
        images.push_web_image(tag, "v2", registry=registry)  # a new image under the same tag
        start_scan(["updates"], actor="test")
        run_worker()
        row = _row(inst.id)
        assert row.update_state == "update_available" and f":{tag} points to a new image" in row.update_detail
        start_quick(inst, actor="test")  # pulls the tag again: the tenant runs the new image
        run_worker()
        assert db.session.execute(select(Upgrade.status)).scalar() == "succeeded"
        uh.wait_page(t.url, "v2")
        start_scan(["updates"], actor="test")
        run_worker()
        assert _row(inst.id).update_state == "current"
    finally:
        t.agent.stop()
        images.down_all([t], "update check")


def test_the_agent_reports_what_the_containers_run(app, registry, registry_tag, tmp_path, run_worker):
    """The update check compares the registry with the digest the tenant's containers really run (the agent reads
    it from Docker), before and after a new image is pushed under the tag and pulled by a Quick Upgrade."""
    from ccp.intake.registry import ImageRef, RegistryClient

    tag = registry_tag("v1")
    image = f"{registry}/{images.REPOSITORY}"
    t = uh.make_real_tenant(tmp_path, tag=tag)
    try:
        inst = create_instance(uh.instance_data(t, tag=tag), actor="test")
        t.up()
        uh.wait_healthy(t.install_dir, t.project)
        db.session.add(Receiver(name="web", kind="distribution", repository=images.REPOSITORY, image=image,
                                instances=[inst.slug], canary=1, wave_size=5))
        db.session.commit()
        first = RegistryClient(ImageRef.parse(image)).digest(tag)
        start_scan(["agents", "updates"], actor="test")
        run_worker()
        row = _row(inst.id)
        assert row.agent_facts["running_digests"][f"{image}:{tag}"] == first
        assert row.image_digests[image]["source"] == "agent" and row.update_state == "current"
        assert row.agent_facts["disk_free_bytes"] > 0 and abs(row.agent_facts["clock_skew_s"]) < 5
        images.push_web_image(tag, "v2", registry=registry)
        second = RegistryClient(ImageRef.parse(image)).digest(tag)
        assert second != first
        start_scan(["agents", "updates"], actor="test")
        run_worker()
        row = _row(inst.id)
        assert row.agent_facts["running_digests"][f"{image}:{tag}"] == first and row.update_state == "update_available"
        quick = start_quick(inst, actor="test")
        run_worker()
        db.session.expire_all()
        quick = db.session.get(Upgrade, quick.id)  # Quick Upgrade records the digest it pulled: a way back to it
        assert quick.status == "succeeded" and quick.image_digest == second
        verify = next(s for s in quick.steps if s.name == "verify").output_tail
        assert f"running {image}:{tag} @ {second}" in verify
        start_scan(["agents", "updates"], actor="test")
        run_worker()
        row = _row(inst.id)
        assert row.agent_facts["running_digests"][f"{image}:{tag}"] == second and row.update_state == "current"
    finally:
        t.agent.stop()
        images.down_all([t], "agent digests")
