"""Quick Upgrade and Upgrade Now share the step machinery; an unreachable agent fails clearly, changing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccp.services import upgrades
from tests.tenants import FAKE_COMPOSE


def test_quick_upgrade_runs_pull_up_verify(app, tenant, run_worker, db):
    upgrade = upgrades.start_quick(tenant, actor="t")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", upgrade.error
    assert [(s.name, s.status) for s in upgrade.steps] == [("pull", "succeeded"), ("up", "succeeded"),
                                                           ("verify", "succeeded")]
    assert "api" in next(s for s in upgrade.steps if s.name == "verify").output_tail


def test_upgrade_now_runs_tenant_script(app, tenant, run_worker, db):
    script = Path(tenant.install_dir) / "scripts" / "upgrade.sh"
    # A tenant's own script pulls and restarts its stack itself (here with the same fake compose runtime).
    compose = " ".join(FAKE_COMPOSE)
    script.write_text(f"#!/bin/sh\nset -e\n{compose} -p {tenant.compose_project} -f docker-compose.yml up -d\n"
                      "echo upgraded-by-script\n")
    script.chmod(0o755)
    upgrade = upgrades.start_full(tenant, actor="t")
    run_worker()
    db.session.refresh(upgrade)
    steps = {s.name: s for s in upgrade.steps}
    assert upgrade.status == "succeeded", upgrade.error
    assert "upgraded-by-script" in steps["script"].output_tail


def test_failing_script_fails_upgrade(app, tenant, run_worker, db):
    script = Path(tenant.install_dir) / "scripts" / "upgrade.sh"
    script.write_text("#!/bin/sh\necho nope >&2\nexit 3\n")
    script.chmod(0o755)
    upgrade = upgrades.start_full(tenant, actor="t")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "failed" and "exit code 3" in upgrade.error
    assert "containers" in upgrade.instance.attention


def test_agent_down_preview_names_agent_and_apply_writes_nothing(app, run_worker, db):
    from tests.factories import make_instance

    inst = make_instance(agent_url="http://127.0.0.1:9", image_tag="v1")
    with pytest.raises(upgrades.AgentUnavailable) as err:
        upgrades.preview_release(inst, "v2")
    assert "http://127.0.0.1:9" in err.value.message
    upgrade = upgrades.start_release(inst, "v2", actor="t")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "failed" and "127.0.0.1:9" in upgrade.error
    assert upgrade.snapshot_id is None
    statuses = [(s.name, s.status) for s in upgrade.steps]
    assert statuses[0] == ("render", "failed") and "127.0.0.1:9" in upgrade.steps[0].output_tail
    assert all(status == "skipped" for _, status in statuses[1:]), statuses
