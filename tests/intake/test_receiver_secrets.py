"""Receivers' secrets at rest and in motion: the HMAC key and the registry password are Fernet ciphertexts, token
secrets only their hash; none shows up in the database's plaintext, the logs or the queued jobs; and
`ccp rotate-encryption-key` re-encrypts them, so the old key can be dropped."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import sqlalchemy as sa
from cryptography.fernet import Fernet

from ccp.extensions import get_queue, get_redis
from ccp.models import Receiver
from ccp.services.receivers import create_receiver
from ccp.vault import Vault
from tests.intake import payloads as P

HMAC_CANARY = "hmac-canary-9d1f0c2e7a5b4c3d"
PASSWORD_CANARY = "registry-password-canary-77e1"


def _plaintext(db) -> str:
    """Every value of every table, as text."""
    out = []
    for table in db.metadata.sorted_tables:
        out += [repr(tuple(row)) for row in db.session.execute(sa.select(table)).all()]
    return "\n".join(out)


def test_secrets_never_leave_the_vault(app, db, client, caplog):
    caplog.set_level(logging.DEBUG)
    app.config["CCP"].receiver_window_s = 0
    gh, _ = create_receiver({"name": "gh", "kind": "github", "image": "127.0.0.1:9/acme/app", "secret": HMAC_CANARY,
                             "registry_username": "robot", "registry_password": PASSWORD_CANARY}, actor="test")
    hub, hub_secret = create_receiver({"name": "hub", "kind": "dockerhub", "image": "acme/app"}, actor="test")
    raw = P.body(P.github_release("v2", "acme/app"))
    assert client.post("/api/hooks/gh", data=raw, headers=P.github_headers(HMAC_CANARY, raw, "release")).status_code \
        == 202
    assert client.post("/api/hooks/gh", data=raw, headers=P.github_headers("wrong" + HMAC_CANARY, raw,
                                                                          "release")).status_code == 401
    push = P.body(P.dockerhub_push("v2"))
    assert client.post(f"/api/hooks/hub/{hub_secret}", data=push).status_code == 202
    assert client.post(f"/api/hooks/hub/{hub_secret}x", data=push).status_code == 401
    from ccp.services.intake import decide_pending

    decide_pending(gh.id, wait=False)  # the registry is unreachable: it asks with the password, which must not leak
    stored = _plaintext(db)
    jobs = b"".join(get_redis().hget(f"rq:job:{job_id}", "data") or b"" for job_id in get_queue().job_ids)
    for secret in (HMAC_CANARY, PASSWORD_CANARY, hub_secret):
        assert secret not in stored and secret not in caplog.text and secret.encode() not in jobs
    assert "callback_url" not in stored and "2141b5bi5i5b02bec211i4eeih0242eg11000a" not in stored  # Docker Hub's
    assert db.session.get(Receiver, hub.id).secret_sha256 and not db.session.get(Receiver, hub.id).secret_enc


def test_rotation_re_encrypts_receivers(app, app_env, db):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app.extensions["ccp_vault"] = Vault((old,))
    receiver, _ = create_receiver({"name": "gh", "kind": "github", "image": "ghcr.io/acme/app",
                                   "secret": HMAC_CANARY, "registry_username": "robot",
                                   "registry_password": PASSWORD_CANARY}, actor="test")
    before = (receiver.secret_enc, receiver.registry_password_enc)
    result = subprocess.run([sys.executable, "-m", "ccp.cli", "rotate-encryption-key"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, **app_env, "CCP_ENCRYPTION_KEYS": f"{new},{old}"})
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 2 stored secret(s)" in result.stdout
    db.session.expire_all()
    receiver = db.session.get(Receiver, receiver.id)
    assert (receiver.secret_enc, receiver.registry_password_enc) != before
    app.extensions["ccp_vault"] = Vault((new,))  # the old key is gone now
    assert (receiver.hmac_key(), receiver.registry_password()) == (HMAC_CANARY, PASSWORD_CANARY)
