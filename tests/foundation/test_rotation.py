"""`ccp rotate-encryption-key`: after prepending a new key and rotating, the old key can be dropped."""

from __future__ import annotations

import os
import subprocess
import sys

from cryptography.fernet import Fernet

from ccp.models import Instance
from ccp.vault import Vault
from tests.factories import make_instance


def _ccp(args, env):
    return subprocess.run([sys.executable, "-m", "ccp.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_rotation_re_encrypts_every_secret_under_the_new_key(app, app_env, db):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app.extensions["ccp_vault"] = Vault((old,))
    inst = make_instance(agent_key="agent-key-123456789", secrets={"POSTGRES_PASSWORD": "pw-rotate-me"})
    before = (inst.agent_key_enc, inst.secrets_enc)

    result = _ccp(["rotate-encryption-key"], {**app_env, "CCP_ENCRYPTION_KEYS": f"{new},{old}"})
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 2 stored secret(s)" in result.stdout

    db.session.expire_all()
    inst = db.session.get(Instance, inst.id)
    assert (inst.agent_key_enc, inst.secrets_enc) != before
    app.extensions["ccp_vault"] = Vault((new,))  # the old key is gone now
    assert inst.agent_key() == "agent-key-123456789"
    assert inst.decrypted_secrets() == {"POSTGRES_PASSWORD": "pw-rotate-me"}
