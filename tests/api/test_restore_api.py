"""POST /api/upgrades/<id>/restore: operator-confirmed data restore of the backup an upgrade took (issue #16).

The tenant's set is the default set with a backup hook (tests/upgrades/test_hooks_backup.py's `hooked` fixture);
the backup's size and duration come back in the upgrade's JSON; an unconfirmed or malformed request queues nothing."""

from __future__ import annotations

from pathlib import Path

from ccp.models import Upgrade
from tests.api.conftest import assert_error
from tests.upgrades.test_hooks_backup import hooked  # noqa: F401 - the fixture


def test_restore_needs_confirm_then_puts_the_data_back(app, db, api, make_token, hooked, run_worker):  # noqa: F811
    op, reader = make_token("operate"), make_token("read")
    started = api("POST", f"/api/instances/{hooked.slug}/upgrade-release", op, json={"imageTag": "v2"})
    assert started.status_code == 202
    run_worker()
    db.session.expire_all()
    body = api("GET", started.headers["Location"], reader).get_json()
    assert body["status"] == "succeeded" and body["backup_id"].startswith(f"{body['id']}-")
    assert body["backup"]["id"] == body["backup_id"]
    assert body["backup"]["size_bytes"] == len("record written at v1\n") and body["backup"]["duration_s"] >= 0

    records = Path(hooked.install_dir) / "data" / "records.txt"
    records.write_text("broken\n")
    path = f"/api/upgrades/{body['id']}/restore"
    assert_error(api("POST", path, reader, json={"confirm": True}), 403)
    err = assert_error(api("POST", path, op), 422, "confirmation_required")
    assert "overwrites the current data" in err["message"]
    assert_error(api("POST", path, op, json={"confirm": "yes"}), 422, "validation_failed")
    assert_error(api("POST", path, op, json={"confirm": True, "force": True}), 422)
    assert db.session.query(Upgrade).filter_by(kind="restore").count() == 0

    restored = api("POST", path, op, json={"confirm": True})
    assert restored.status_code == 202, restored.get_json()
    restore = restored.get_json()
    assert (restore["kind"], restore["backup_id"], restore["backup"]) == ("restore", body["backup_id"], None)
    assert [s["name"] for s in restore["steps"]] == ["restore_data", "up", "verify"]
    run_worker()
    db.session.expire_all()
    done = api("GET", restored.headers["Location"], reader).get_json()
    assert done["status"] == "succeeded", done
    assert records.read_text() == "record written at v1\n"
    assert_error(api("POST", f"/api/upgrades/{restore['id']}/restore", op, json={"confirm": True}), 409, "no_backup")
    assert_error(api("POST", "/api/upgrades/999999/restore", op, json={"confirm": True}), 404)
