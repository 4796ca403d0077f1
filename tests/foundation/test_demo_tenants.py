"""The demo's provisioned tenants: the secrets CCP holds are the ones on their host, across restarts."""

from __future__ import annotations

from sqlalchemy import select

from ccp.demo.tenants import seed_demo_tenants, stop_demo_agents
from ccp.models import Instance
from ccp.rendering.render import render_instance


def _seed_twice(app):
    try:
        seed_demo_tenants(app)
    finally:
        stop_demo_agents()
    try:
        seed_demo_tenants(app)  # a restart: the same instance folder, tenants already there
    finally:
        stop_demo_agents()


def test_held_secrets_match_the_demo_hosts_across_restarts(app, db):
    _seed_twice(app)
    hosts = app.config["CCP"].instance_dir / "demo-hosts"
    provisioned = db.session.execute(select(Instance).filter_by(is_registered=False)).scalars().all()
    assert len(provisioned) == 2
    for inst in provisioned:
        held = inst.decrypted_secrets()
        assert held, inst.slug
        rendered = render_instance(inst, "v1", secrets=held).files[".env"]
        assert rendered == (hosts / inst.slug / ".env").read_text(), f"{inst.slug}: CCP would change its secrets"
    kept = app.config["CCP"].instance_dir / "demo-secrets.json"
    assert kept.stat().st_mode & 0o777 == 0o600
