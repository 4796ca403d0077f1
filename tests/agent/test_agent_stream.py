"""Streamed command output: the agent answers compose/scripts with "stream": true as JSON lines written while the
command runs, .env secrets masked line by line, then the result; refusals before the start are ordinary errors."""

from __future__ import annotations

import time

SCRIPT = """#!/bin/sh
echo "migrating with supersecretvalue"
sleep 0.8
echo done
"""


def _script(world):
    path = world / "tenant" / "scripts" / "upgrade.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCRIPT)


def test_script_output_streams_masked_before_the_result(client, world):
    _script(world)
    seen = []
    t0 = time.monotonic()
    status, result = client.stream("POST", "/v1/instances/acme/scripts/upgrade", {"deadline_s": 20, "stream": True},
                                   lambda text: seen.append((text, time.monotonic() - t0)))
    ended = time.monotonic() - t0
    assert status == 200 and result["ok"] and result["exit_code"] == 0
    assert [text for text, _ in seen] == ["migrating with ********\n", "done\n"]
    assert seen[0][1] < ended - 0.5, "the first line arrived only with the result"
    assert "supersecretvalue" not in result["output_tail"] and "done" in result["output_tail"]


def test_the_same_route_without_stream_answers_once(client, world):
    _script(world)
    status, result = client.request("POST", "/v1/instances/acme/scripts/upgrade", json={"deadline_s": 20})
    assert status == 200 and result["output_tail"] == "migrating with ********\ndone\n"


def test_refusals_are_ordinary_errors(client, world):
    status, body = client.stream("POST", "/v1/instances/acme/scripts/nope", {"deadline_s": 5, "stream": True},
                                 lambda text: None)
    assert status == 400 and "not allowed" in body["error"]["message"]
    status, body = client.stream("POST", "/v1/instances/acme/scripts/upgrade", {"deadline_s": 5, "stream": True},
                                 lambda text: None)
    assert status == 404 and "no scripts/upgrade.sh" in body["error"]["message"]
    status, body = client.stream("POST", "/v1/instances/acme/compose/pull", {"deadline_s": 10 ** 9, "stream": True},
                                 lambda text: None)
    assert status == 400 and "deadline_s" in body["error"]["message"]
