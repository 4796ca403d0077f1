"""`ccp instance secrets`: values come from stdin only, are stored encrypted, never printed or audited; refused
inputs change nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from ccp.cli import main
from ccp.models import AuditEvent, Instance
from tests.factories import make_instance

VALUE = "Tr0ub4dor-and-3-more-words"


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        return runner.invoke(main, ["instance", "secrets", *args], input=input)

    return invoke


def _everything_stored(db) -> str:
    """Every column of every instance and audit row, as text: a plaintext secret must appear nowhere."""
    rows = []
    for table in ("instances", "audit_events"):
        rows += [" ".join(map(str, r)) for r in db.session.execute(sa.text(f"SELECT * FROM {table}")).all()]
    return "\n".join(rows)


def _state(db, inst) -> tuple:
    db.session.expire_all()
    row = db.session.get(Instance, inst.id)
    return row.secrets_enc, db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))


def test_set_stores_encrypted_strips_one_newline_and_never_shows_the_value(app, db, cli):
    inst = make_instance(secrets={"POSTGRES_PASSWORD": "kept-as-it-was"})
    result = cli("set", inst.slug, "SMTP_PASSWORD", input=VALUE + "\n")
    assert result.exit_code == 0, result.output
    assert VALUE not in result.output and "SMTP_PASSWORD set" in result.output
    db.session.expire_all()
    assert inst.decrypted_secrets() == {"POSTGRES_PASSWORD": "kept-as-it-was", "SMTP_PASSWORD": VALUE}
    assert VALUE not in _everything_stored(db)
    event = db.session.scalars(sa.select(AuditEvent).filter_by(action="instance.secret.set")).one()
    assert event.actor == "cli" and event.detail == {"key": "SMTP_PASSWORD"} and event.target == inst.slug

    listed = cli("list", inst.slug)
    assert listed.exit_code == 0
    assert VALUE not in listed.output and "kept-as-it-was" not in listed.output
    lines = {line.split()[0]: line.split(None, 1)[1] for line in listed.output.splitlines()[1:]}
    assert lines["SMTP_PASSWORD"] == "set" and lines["POSTGRES_PASSWORD"] == "set"
    assert lines["JWT_SECRET"] == "missing (required)" and lines["SENTRY_DSN"] == "missing (optional)"


def test_only_one_trailing_newline_goes_and_other_whitespace_stays(app, db, cli):
    inst = make_instance()
    assert cli("set", inst.slug, "JWT_SECRET", input="  padded value \r\n").exit_code == 0
    db.session.expire_all()
    assert inst.decrypted_secrets() == {"JWT_SECRET": "  padded value "}


@pytest.mark.parametrize("args, stdin, needle", [
    (["set", "{slug}", "SMTP_PASSWORD"], "", "empty value"),
    (["set", "{slug}", "SMTP_PASSWORD"], "\n", "empty value"),
    (["set", "{slug}", "NOT_A_SECRET"], VALUE, "known: ADMIN_INITIAL_PASSWORD, "),
    (["set", "{slug}", "SMTP_PASSWORD", VALUE], "", "never from the command line"),
    (["set", "{slug}", "SMTP_PASSWORD", "--value", VALUE], "", "never from the command line"),
    (["set", "nobody", "SMTP_PASSWORD"], VALUE, "no instance 'nobody'"),
    (["unset", "{slug}", "JWT_SECRET"], None, "holds no secret 'JWT_SECRET'"),
])
def test_refused_inputs_change_nothing(app, db, cli, args, stdin, needle):
    inst = make_instance(secrets={"POSTGRES_PASSWORD": "kept-as-it-was"})
    before = _state(db, inst)
    result = cli(*[a.format(slug=inst.slug) for a in args], input=stdin)
    assert result.exit_code != 0
    assert needle in result.output
    assert VALUE not in result.output
    assert _state(db, inst) == before


def test_registered_tenants_keep_their_secrets_on_their_host(app, db, cli):
    inst = make_instance(is_registered=True)
    before = _state(db, inst)
    result = cli("set", inst.slug, "SMTP_PASSWORD", input=VALUE)
    assert result.exit_code == 1 and "registered tenant" in result.output and "stay on its host" in result.output
    assert _state(db, inst) == before
    listed = cli("list", inst.slug)
    assert listed.exit_code == 0 and "CCP holds none" in listed.output


def test_unset_removes_one_and_warns_when_the_set_requires_it(app, db, cli):
    inst = make_instance(secrets={"POSTGRES_PASSWORD": "pg-value-1234", "SENTRY_DSN": "dsn-value-1234"})
    result = cli("unset", inst.slug, "POSTGRES_PASSWORD")
    assert result.exit_code == 0 and "required" in result.output
    assert "pg-value-1234" not in result.output
    db.session.expire_all()
    assert inst.decrypted_secrets() == {"SENTRY_DSN": "dsn-value-1234"}
    event = db.session.scalars(sa.select(AuditEvent).filter_by(action="instance.secret.unset")).one()
    assert event.detail == {"key": "POSTGRES_PASSWORD"}
    assert cli("unset", inst.slug, "SENTRY_DSN").exit_code == 0
    db.session.expire_all()
    assert db.session.get(Instance, inst.id).secrets_enc is None


def test_a_real_pipe_into_the_ccp_command(app, db, app_env):
    """The operator's way: `printf %s VALUE | ccp instance secrets set SLUG KEY` (stdin is a pipe, not argv)."""
    inst = make_instance()
    result = subprocess.run([sys.executable, "-m", "ccp.cli", "instance", "secrets", "set", inst.slug,
                             "STRIPE_SECRET_KEY"], input=VALUE, env=app_env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert VALUE not in result.stdout + result.stderr
    db.session.expire_all()
    assert inst.decrypted_secrets() == {"STRIPE_SECRET_KEY": VALUE}
    assert VALUE not in _everything_stored(db)
