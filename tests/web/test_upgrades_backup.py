"""The data backup on the upgrade page and its status widget, and "Restore data from this backup" (issue #16): shown
to everyone, the button to operators only once the upgrade has ended, a dialog that says what is overwritten, a
post without the confirmation that asks for it (and queues nothing), and a confirmed one that goes to the restore."""

from __future__ import annotations

from datetime import timedelta

from ccp.models import AuditEvent, Upgrade, UpgradeStep, utcnow
from ccp.services.backups import backup_line
from tests.upgrades.test_hooks_backup import hooked  # noqa: F401 - the fixture: a tenant whose set has a backup
from tests.web.conftest import HX

BACKUP_ID = "1-20261130T081502Z"


def _with_backup(db, inst, status: str = "rolled_back") -> Upgrade:
    now = utcnow()
    upgrade = Upgrade(instance_id=inst.id, kind="release", status=status, from_tag="v1", to_tag="v2", actor="ann",
                      started_at=now, finished_at=now + timedelta(seconds=30) if status != "running" else None)
    db.session.add(upgrade)
    db.session.flush()
    upgrade.backup_id = f"{upgrade.id}-20261130T081502Z"
    db.session.add(UpgradeStep(upgrade_id=upgrade.id, position=0, name="backup", status="succeeded", started_at=now,
                               finished_at=now + timedelta(seconds=2),
                               output_tail="$ sh hooks/backup.sh  (1.4 s)\nsaved\n"
                                           + backup_line(upgrade.backup_id, 12_900, 1.4, 3)))
    db.session.commit()
    return upgrade


def test_viewers_see_the_backup_with_its_size_and_duration_and_no_button(db, client, login, hooked):  # noqa: F811
    upgrade = _with_backup(db, hooked)
    login("viewer")
    page = client.get(f"/upgrades/{upgrade.id}").get_data(as_text=True)
    assert f"<strong>Data backup</strong> <code>{upgrade.backup_id}</code> · 12.6 KiB · took 1.4 s" in page
    assert "Restore data from this backup" not in page


def test_operators_get_the_button_once_it_ended_with_a_dialog_saying_what_is_lost(db, client, login,
                                                                                 hooked):  # noqa: F811
    upgrade = _with_backup(db, hooked)
    login("operator")
    widget = client.get(f"/upgrades/{upgrade.id}/status", headers=HX).get_data(as_text=True)
    assert "Restore data from this backup" in widget
    assert (f'hx-confirm="Restore data from backup {upgrade.backup_id}? This overwrites the current data of '
            f'Tenant {hooked.slug}') in widget and "Data written since then is lost" in widget
    running = _with_backup(db, hooked, status="running")
    assert "Restore data from this backup" not in client.get(f"/upgrades/{running.id}").get_data(as_text=True)


def test_restore_without_confirmation_asks_for_it_and_queues_nothing(db, client, login, post, hooked):  # noqa: F811
    upgrade = _with_backup(db, hooked)
    login("operator")
    response = post(f"/upgrades/{upgrade.id}/restore")
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and 'id="upgrade-status"' in body
    assert '<input type="hidden" name="confirm" value="1">' in body
    assert f"Yes, overwrite the data with backup {upgrade.backup_id}" in body
    assert db.session.query(Upgrade).filter_by(kind="restore").count() == 0


def test_confirmed_restore_goes_to_the_restore_upgrade(db, client, login, post, hooked):  # noqa: F811
    upgrade = _with_backup(db, hooked)
    login("operator")
    response = post(f"/upgrades/{upgrade.id}/restore", {"confirm": "1"})
    assert response.status_code == 204
    restore = db.session.query(Upgrade).filter_by(kind="restore").one()
    assert response.headers["HX-Redirect"].endswith(f"/upgrades/{restore.id}")
    assert (restore.status, restore.backup_id, restore.to_tag) == ("queued", upgrade.backup_id, "v1")
    page = client.get(f"/upgrades/{restore.id}").get_data(as_text=True)
    assert "Restore data on" in page and f"Puts back data backup <code>{upgrade.backup_id}</code>" in page
    assert f'<a href="/upgrades/{upgrade.id}">upgrade #{upgrade.id}</a>' in page
    assert db.session.query(AuditEvent).filter_by(action="upgrade.start.restore").count() == 1
    # a second one while the first is queued: refused, said in the widget
    again = post(f"/upgrades/{upgrade.id}/restore", {"confirm": "1"})
    assert again.status_code == 409 and "Not restored: " in again.get_data(as_text=True)


def test_viewers_cannot_restore(db, client, login, post, hooked):  # noqa: F811
    upgrade = _with_backup(db, hooked)
    login("viewer")
    assert post(f"/upgrades/{upgrade.id}/restore", {"confirm": "1"}).status_code == 403
    assert db.session.query(Upgrade).filter_by(kind="restore").count() == 0


def test_an_upgrade_without_backup_says_so(db, client, login, post, hooked):  # noqa: F811
    plain = Upgrade(instance_id=hooked.id, kind="quick", status="succeeded", actor="ann", to_tag="v1")
    db.session.add(plain)
    db.session.commit()
    login("operator")
    response = post(f"/upgrades/{plain.id}/restore", {"confirm": "1"})
    assert response.status_code == 409 and "took no data backup" in response.get_data(as_text=True)
    assert db.session.query(Upgrade).filter_by(kind="restore").count() == 0
