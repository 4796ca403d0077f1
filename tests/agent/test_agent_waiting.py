"""compose/wait: the host looks at the containers until they settle, so verify hears of health at once (the
engine path on real containers is checked on the Docker tier, tests/e2e/test_hostops_compose.py)."""

from __future__ import annotations

import time

import pytest

from ccp.agent.waiting import settled, wait_for_services

RUNNING = {"name": "web", "state": "running", "health": ""}
HEALTHY = {"name": "db", "state": "running", "health": "healthy"}
STARTING = {"name": "db", "state": "running", "health": "starting"}


@pytest.mark.parametrize(("services", "expected"), [
    ([], False), ([RUNNING, HEALTHY], True), ([RUNNING, STARTING], False),
    ([RUNNING, {"name": "db", "state": "created", "health": ""}], False),
    ([STARTING, {"name": "web", "state": "exited", "health": "", "exit_code": 1}], True),
    ([{"name": "web", "state": "restarting", "health": ""}], True),
    ([{"name": "db", "state": "running", "health": "unhealthy"}], True),
])
def test_settled_means_nothing_left_to_wait_for(services, expected):
    assert settled(services) is expected


def test_waits_until_settled_and_answers_at_once():
    answers = iter([[RUNNING, STARTING]] * 3 + [[RUNNING, HEALTHY]])
    looks = []

    def ps():
        looks.append(time.monotonic())
        return {"ok": True, "services": next(answers)}

    t0 = time.monotonic()
    answer = wait_for_services("acme", 10, ps, use_engine=False)
    assert answer["settled"] and answer["services"] == [RUNNING, HEALTHY] and answer["looks"] == 4
    assert answer["source"] == "compose" and time.monotonic() - t0 < 1.0


def test_answers_at_its_deadline_with_what_it_saw():
    t0 = time.monotonic()
    answer = wait_for_services("acme", 0.3, lambda: {"ok": True, "services": [STARTING]}, use_engine=False)
    assert not answer["settled"] and answer["services"] == [STARTING] and 0.3 <= time.monotonic() - t0 < 1.0
    assert wait_for_services("acme", 0, lambda: {"ok": True, "services": [STARTING]}, use_engine=False)["looks"] == 1


def test_a_failing_compose_ps_is_answered_not_waited_on():
    answer = wait_for_services("acme", 10, lambda: {"ok": False, "output_tail": "boom", "services": []},
                               use_engine=False)
    assert answer["ok"] is False and answer["output_tail"] == "boom" and answer["looks"] == 1


def test_the_agent_route_waits_on_the_dry_run_runtime(dry_client):
    status, body = dry_client.request("POST", "/v1/instances/acme/compose/wait", json={"deadline_s": 0})
    assert status == 200 and body["settled"] is False and body["services"] == [] and body["source"] == "compose"
    status, body = dry_client.request("POST", "/v1/instances/acme/compose/wait", json={"deadline_s": -1})
    assert status == 400 and "deadline_s" in body["error"]["message"]
    status, _ = dry_client.request("POST", "/v1/instances/nope/compose/wait", json={"deadline_s": 0})
    assert status == 404
