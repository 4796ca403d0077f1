"""A running step's output is recorded while it runs, not only when it ends: what a compose step waits for, and each
observation of the verify step. Each write is committed and announced, so a polling status widget shows it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from ccp.models import UpgradeStep
from ccp.services import upgrades
from tests.tenants import CANARY, FAKE_COMPOSE


@pytest.fixture
def health_url(request):
    """An HTTP health URL on 127.0.0.1 that answers 503 twice, then 200 (indirect parameter: 503 how often)."""
    answers = iter([503] * getattr(request, "param", 2))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(next(answers, 200))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/health"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def announced(app, db, monkeypatch):
    """Every step row as another process would read it (committed data, its own connection) at each change notice
    the runner sends: a list of {step name: (status, output_tail)}."""
    from ccp.services import runner

    seen = []
    real = runner.announce

    def spy(upgrade_id):
        with db.engine.connect() as conn:
            rows = conn.execute(select(UpgradeStep.name, UpgradeStep.status, UpgradeStep.output_tail)
                                .where(UpgradeStep.upgrade_id == upgrade_id)).all()
        seen.append({name: (status, tail) for name, status, tail in rows})
        real(upgrade_id)

    monkeypatch.setattr(runner, "announce", spy)
    return seen


def _while_running(seen, step: str) -> list[str]:
    return [s[step][1] or "" for s in seen if step in s and s[step][0] == "running"]


def test_running_steps_show_their_output_as_it_goes(app, tenant_factory, run_worker, db, announced,
                                                    health_url):
    inst = tenant_factory(health_urls=[health_url], monitor_window_s=1)
    upgrade = upgrades.start_quick(inst, actor="t")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", upgrade.error

    pull = _while_running(announced, "pull")
    assert any(tail.startswith("$ docker compose pull  (deadline") for tail in pull), pull
    assert any("DRY RUN" in tail for tail in pull), pull  # the host streams: compose's own lines while it runs
    verify = _while_running(announced, "verify")
    assert any("services: " in tail for tail in verify), verify
    assert any(f"waiting: health URL {health_url} answered HTTP 503" in tail for tail in verify), verify
    assert any("watching them for the monitor window of 1 s" in tail for tail in verify), verify
    assert len(verify) == len(set(verify)), "a line seen again was written again"

    steps = {s.name: s.output_tail for s in upgrade.steps}
    assert steps["pull"].startswith("$ docker compose pull\n") and "DRY RUN" in steps["pull"]
    lines = steps["verify"].split("\n")
    assert lines[0] == next(t for t in verify if t).split("\n")[0]  # the observations, in order, then the report
    assert lines[-1].startswith("health URLs ok") and len(lines) == len(set(lines))
    everything = "".join(tail or "" for snapshot in announced for _, tail in snapshot.values())
    assert CANARY not in everything  # masked as it goes too


@pytest.mark.parametrize("health_url", [10**6], indirect=True)
def test_a_failing_verify_keeps_what_it_saw_then_its_cause(app, tenant_factory, run_worker, db, health_url):
    app.config["CCP"].step_deadline_s = 0.5  # the URL answers 503 past the deadline
    inst = tenant_factory(health_urls=[health_url])
    upgrade = upgrades.start_quick(inst, actor="t")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "failed" and "503 at the deadline" in upgrade.error
    lines = next(s for s in upgrade.steps if s.name == "verify").output_tail.split("\n")
    assert lines[0].startswith("services: ") and lines[1].startswith("waiting: health URL ")
    assert lines[-1] == f"health URL {health_url} answered HTTP 503 at the deadline"


@pytest.mark.parametrize("driver", ["local", "remote"])
def test_a_script_step_shows_its_output_as_it_writes_it(app, tenant_factory, run_worker, db, announced, driver):
    """scripts/upgrade.sh prints, waits, prints again: the first line is in the step while it still runs (through
    the agent's stream, or the local host), masked; an agent without output.stream keeps the old way."""
    from pathlib import Path

    inst = tenant_factory(driver=driver)
    script = Path(inst.install_dir) / "scripts" / "upgrade.sh"
    compose = " ".join(FAKE_COMPOSE)  # the tenant's own script restarts its stack (the fake compose runtime)
    script.write_text(f"#!/bin/sh\nset -e\necho 'phase 1 with {CANARY}-postgres_password'\nsleep 1.2\necho 'phase 2'\n"
                      f"{compose} -p {inst.compose_project} -f docker-compose.yml up -d\n")
    script.chmod(0o755)
    upgrade = upgrades.start_full(inst, actor="t")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", upgrade.error
    running = _while_running(announced, "script")
    assert any("phase 1 with ********" in tail and "phase 2" not in tail for tail in running), running
    final = next(s for s in upgrade.steps if s.name == "script").output_tail
    assert final.startswith("$ scripts/upgrade.sh\n") and "phase 2" in final
    everything = "".join(tail or "" for snapshot in announced for _, tail in snapshot.values())
    assert CANARY not in everything
