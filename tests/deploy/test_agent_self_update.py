"""Acceptance for issue #15's agent self-update, on real processes (loopback, no Docker: the dry-run runtime).

Four agents run as real `ccp agent` processes (each a launcher with the agent as its child) on the code of this
checkout; a fifth is served without its launcher (it cannot update itself). CCP's agent wheel is this source built
as another version. One host cannot start that version (its cli exits with 3 where a marker file sits beside its
config: the stand-in for "the new version lacks something on that host"). CCP's service and RQ worker update the
agents in waves -- canary, then two, then one: the canary and the good agent of wave 2 answer the new version and
are confirmed; the broken one is restored to the old version by its launcher and says why; the rollout halts at
wave 2 with that reason; the agent of wave 3 is never touched; the agent without a launcher is never in a wave.
Each new version runs its own checks before CCP confirms it: a second update, to a version whose checks fail on its
canary's host, is restored there at once (not at the deadline) with the failed check as the reason, and halts.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ccp import __version__
from ccp.agent.config import AgentConfig, InstanceConfig
from ccp.agent.server import start_agent_in_thread
from ccp.hostops.dryrun import dry_run_command
from tests.deploy.agent_wheels import (
    CANNOT_START_MARKER,
    CHECK_FAILS_MARKER,
    build_wheel,
    crash_on_marked_host,
    failing_check_on_marked_host,
)
from tests.deploy.helpers import agent_health, free_port, stop

KEY_ID, KEY = "k1", "agent-update-e2e-key-0123456789abcdef"
TARGET = "0.1.1+e2e"
CHECKED = "0.1.2+e2e"  # a version whose own checks fail on a marked host


def _agent(root: Path, name: str, slugs: list[str]) -> tuple[subprocess.Popen, str, Path]:
    """A `ccp agent` process (the launcher) serving ``slugs`` with the dry-run runtime; (process, URL, config)."""
    home = root / name
    lines = [f'listen = "127.0.0.1:{free_port()}"', f'state_dir = "{home / "state"}"',
             f"compose_command = {dry_run_command()!r}".replace("'", '"'), "[keys]", f'{KEY_ID} = "{KEY}"']
    for slug in slugs:
        (home / "srv" / slug).mkdir(parents=True)
        lines += [f"[instances.{slug}]", f'install_dir = "{home / "srv" / slug}"']
    config = home / "agent.toml"
    config.write_text("\n".join(lines) + "\n")
    url = "http://" + lines[0].split('"')[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCP_AGENT_")}
    log = open(home / "agent.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "ccp.agent", "--config", str(config)], env=env, cwd=home,
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, url, config


def _version(url: str, proc) -> str:
    status, health = agent_health(url, KEY_ID, KEY, proc, timeout=30)
    assert status == 200, health
    return health["version"]


def _run_to_end(db, run_worker, rollout):
    """Run the worker until the agent rollout's jobs are done; the rollout as saved, and its updates by agent URL."""
    from ccp.models import AgentRollout, AgentUpdate

    run_worker()
    db.session.expire_all()
    rollout = db.session.get(AgentRollout, rollout.id)
    return rollout, {u.agent_url: u for u in AgentUpdate.query.filter_by(rollout_id=rollout.id)}


def test_an_agent_update_in_waves_confirms_the_good_agents_and_restores_the_one_that_cannot_start(
        app, db, run_worker, tmp_path):
    from ccp.models import AuditEvent
    from ccp.services import agent_updates
    from ccp.services.scans import scan_agent, scan_row
    from tests.factories import make_instance

    started = time.monotonic()
    wheel = build_wheel(tmp_path / "wheels", TARGET, {"ccp/agent/cli.py": crash_on_marked_host})
    app.config["CCP"].agent_wheel = wheel
    procs = {}
    plain = None
    try:
        for n, slugs in enumerate((["a1", "a1b"], ["a2"], ["a3"], ["a4"])):
            proc, url, config = _agent(tmp_path, f"agent{n}", slugs)
            procs[url] = (proc, config)
            for slug in slugs:
                make_instance(slug=slug, agent_url=url, agent_key_id=KEY_ID, agent_key=KEY)
        (tmp_path / "plain").mkdir()
        plain = start_agent_in_thread(AgentConfig(
            keys={KEY_ID: KEY.encode()}, instances={"p1": InstanceConfig(tmp_path / "plain", "p1")},
            state_dir=tmp_path / "plain-state", compose_command=dry_run_command()).validate())
        make_instance(slug="p1", agent_url=plain.url, agent_key_id=KEY_ID, agent_key=KEY)
        for url, (proc, _) in procs.items():
            assert _version(url, proc) == __version__
        from ccp.models import Instance

        for inst in Instance.query.all():  # the agent inventory, as a scheduled scan takes it
            scan_agent(inst, scan_row(inst.id))
        db.session.commit()

        fleet = {a.url: a for a in agent_updates.agents()}
        assert fleet[plain.url].can_update is False and all(fleet[u].can_update for u in procs)
        assert sorted(next(a for a in fleet.values() if len(a.slugs) == 2).slugs) == ["a1", "a1b"]

        preview = agent_updates.plan(canary=1, wave_size=2, deadline_s=20)
        assert preview["target_version"] == TARGET and [len(w) for w in preview["waves"]] == [1, 2, 1]
        assert [u["url"] for u in preview["unable"]] == [plain.url]
        (canary,), (good, broken), (later,) = preview["waves"]
        (procs[broken][1].parent / CANNOT_START_MARKER).write_text("")

        rollout, rows = _run_to_end(db, run_worker, agent_updates.start(
            actor="user:admin", canary=1, wave_size=2, deadline_s=20, expect=preview["digest"]))

        assert rollout.status == "halted" and rollout.current_wave == 1
        assert broken in rollout.error and "exited with code 3" in rollout.error
        for url in (canary, good):
            assert rows[url].status == "succeeded", rows[url].reason
            assert _version(url, procs[url][0]) == TARGET
        assert rows[broken].status == "failed" and f"restored {__version__}" in rows[broken].reason
        assert _version(broken, procs[broken][0]) == __version__
        assert rows[later].status == "not_started" and _version(later, procs[later][0]) == __version__
        assert not (procs[later][1].parent / "state" / "_agent" / "versions").exists()  # nothing was sent
        assert plain.url not in rows

        # the confirmed agents keep the new version across a restart of their launcher
        proc, config = procs[canary]
        assert stop(proc) == 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCP_AGENT_")}
        procs[canary] = (subprocess.Popen([sys.executable, "-m", "ccp.agent", "--config", str(config)], env=env,
                                          cwd=config.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                         config)
        assert _version(canary, procs[canary][0]) == TARGET
        # the inventory was refreshed for the updated agents' tenants
        assert {a.url: a.version for a in agent_updates.agents()}[good] == TARGET

        actions = [e.action for e in AuditEvent.query.order_by(AuditEvent.id)]
        assert actions.count("agent_update.agent") == 3 and "agent_update.start" in actions
        assert "agent_update.halted" in actions
        assert KEY not in " ".join(str(e.detail) for e in AuditEvent.query)

        # a version whose own checks fail on its canary's host: restored there at once, the check named, halted
        for inst in Instance.query.all():
            scan_agent(inst, scan_row(inst.id))
        db.session.commit()
        app.config["CCP"].agent_wheel = build_wheel(tmp_path / "wheels-checked", CHECKED,
                                                    {"ccp/agent/checks.py": failing_check_on_marked_host})
        preview = agent_updates.plan(canary=1, wave_size=4, deadline_s=60)
        (checked,), rest = preview["waves"]
        was = _version(checked, procs[checked][0])
        (procs[checked][1].parent / CHECK_FAILS_MARKER).write_text("")
        sent = time.monotonic()
        second, rows = _run_to_end(db, run_worker, agent_updates.start(
            actor="user:admin", canary=1, wave_size=4, deadline_s=60, expect=preview["digest"]))
        assert time.monotonic() - sent < 30  # not the 60 s deadline
        assert second.status == "halted" and second.current_wave == 0
        assert rows[checked].status == "failed" and rows[checked].to_version == was
        assert rows[checked].reason == (f"the agent restored {was}: its checks failed: stand-in check: this "
                                        f"version finds {CHECK_FAILS_MARKER} beside its config")
        assert f"wave 1: {checked} the agent restored {was}: its checks failed" in second.error
        assert {rows[u].status for u in rest} == {"not_started"}
        assert _version(checked, procs[checked][0]) == was
        assert all(_version(u, procs[u][0]) != CHECKED for u in rest)
        assert agent_updates.rollout_dict(second)["agents"][0]["reason"] == rows[checked].reason
    finally:
        for proc, _ in procs.values():
            stop(proc)
        if plain is not None:
            plain.stop()
    elapsed = time.monotonic() - started
    assert elapsed < 90, f"the agent update acceptance took {elapsed:.0f} s"
    print(f"agent update acceptance: {elapsed:.1f} s")

