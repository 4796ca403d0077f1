"""The data model: one active upgrade per instance enforced by the database; secrets encrypted at rest."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from ccp.models import Instance, Upgrade
from tests.factories import make_instance


def test_second_active_upgrade_is_refused_by_the_database(app, db):
    inst = make_instance()
    db.session.add(Upgrade(instance_id=inst.id, kind="release", status="queued", to_tag="v2"))
    db.session.commit()
    db.session.add(Upgrade(instance_id=inst.id, kind="quick", status="running"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    # Finished upgrades do not count: history can hold any number of them.
    db.session.add_all([Upgrade(instance_id=inst.id, kind="quick", status=s)
                        for s in ("succeeded", "failed", "rolled_back")])
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Upgrade)) == 4


def test_concurrent_active_inserts_exactly_one_wins(app, db):
    inst_id = make_instance().id
    engine = db.engine
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def insert(kind: str) -> None:
        with engine.connect() as conn:
            barrier.wait()
            try:
                conn.execute(sa.insert(Upgrade).values(instance_id=inst_id, kind=kind, status="queued",
                                                       actor="t", cancel_requested=False,
                                                       created_at=sa.func.current_timestamp()))
                conn.commit()
                outcomes.append("ok")
            except (IntegrityError, OperationalError) as exc:
                conn.rollback()
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=insert, args=(k,)) for k in ("release", "quick")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes).count("ok") == 1, outcomes
    active = db.session.scalars(sa.select(Upgrade).filter(Upgrade.status.in_(["queued", "running"]))).all()
    assert len(active) == 1


def test_agent_key_and_secrets_are_encrypted_at_rest(app, db):
    inst = make_instance(agent_key="agent-key-PLAINTEXT-123456", secrets={"POSTGRES_PASSWORD": "s3cr3t-CANARY"})
    row = db.session.execute(sa.text("SELECT agent_key_enc, secrets_enc FROM instances WHERE id = :i"),
                             {"i": inst.id}).one()
    assert "PLAINTEXT" not in row[0] and "CANARY" not in row[1]
    fresh = db.session.get(Instance, inst.id)
    assert fresh.agent_key() == "agent-key-PLAINTEXT-123456"
    assert fresh.decrypted_secrets() == {"POSTGRES_PASSWORD": "s3cr3t-CANARY"}


def test_registered_tenant_cannot_hold_secrets(app):
    from ccp.services.instances import InstanceError

    with pytest.raises(InstanceError) as err:
        make_instance(is_registered=True, secrets={"X": "y"})
    assert "secrets" in err.value.errors
    assert Instance.query.count() == 0


def test_unknown_template_set_is_a_field_error(app):
    from ccp.services.instances import InstanceError

    with pytest.raises(InstanceError) as err:
        make_instance(template_set="no-such-set")
    assert "template_set" in err.value.errors and Instance.query.count() == 0
