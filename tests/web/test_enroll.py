"""Enrolling from the UI: "Test connection" asks a real agent on 127.0.0.1 before anything is saved, says what is
wrong in plain words, never shows the key; a remote tenant, once added, opens on its baseline preview."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from ccp.models import Instance
from tests import tenants


@pytest.fixture
def agent(tmp_path):
    """A real agent serving `acme` (the default set at v1 in its install dir) and `empty` (nothing yet)."""
    install = tmp_path / "hosts" / "acme"
    shape = SimpleNamespace(slug="acme", name="Acme", domain="acme.example.test", install_dir=str(install),
                            compose_project="acme", is_registered=False, image_tag="v1", vars={}, health_urls=[],
                            template_set="default")
    tenants.make_tenant_files(install, shape, "v1", secrets=tenants.provisioned_secrets())
    (tmp_path / "hosts" / "empty").mkdir()
    handle = tenants.start_agent(tmp_path / "agent", {"acme": install, "empty": tmp_path / "hosts" / "empty"}, "acme")
    yield handle
    handle.stop()


def _probe(post, **fields):
    return post("/instances/new/probe", fields, token_from="/instances/new")


def test_test_connection_shows_what_the_agent_runs_and_serves(app, client, login, post, agent):
    login("admin")
    response = _probe(post, slug="acme", agent_url=agent.url, agent_key_id=agent.key_id, agent_key=agent.key)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body, body
    assert "Connected: agent" in body and "dry-run runtime" in body
    assert '<tr class="probe-this">' in body and "<code>docker-compose.yml</code>" in body
    assert "nothing yet: a tenant CCP will provision" in body  # the empty install dir
    assert agent.key not in body


def test_wrong_key_and_dead_address_are_said_in_plain_words(app, client, login, post, agent):
    login("admin")
    wrong = _probe(post, agent_url=agent.url, agent_key_id=agent.key_id, agent_key="x" * 40).get_data(as_text=True)
    assert "the agent refused CCP&#39;s key" in wrong or "the agent refused CCP's key" in wrong
    assert "x" * 40 not in wrong
    dead = _probe(post, agent_url="http://127.0.0.1:9", agent_key_id=agent.key_id, agent_key=agent.key)
    assert dead.status_code == 200 and "No connection:" in dead.get_data(as_text=True)


def test_malformed_fields_are_422_and_nothing_is_saved(app, client, login, post, db):
    login("admin")
    response = _probe(post, agent_url="ftp://user:pw@host", agent_key_id="", agent_key="short")
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "Not tested" in body and "pw@" not in body
    assert db.session.scalar(select(func.count()).select_from(Instance)) == 0


def test_only_admins_may_probe(app, client, login, post, agent):
    login("operator")
    response = _probe(post, agent_url=agent.url, agent_key_id=agent.key_id, agent_key=agent.key)
    assert response.status_code == 403


def test_a_remote_tenant_opens_on_its_baseline(app, client, login, post, agent, db):
    login("admin")
    response = post("/instances/new", {"slug": "acme", "name": "Acme", "domain": "acme.example.test",
                                       "driver": "remote", "agent_url": agent.url, "agent_key_id": agent.key_id,
                                       "agent_key": agent.key, "compose_project": "acme", "image_tag": "v1",
                                       "is_registered": "on"}, token_from="/instances/new")
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.headers["HX-Redirect"] == "/fleet/drift/acme?baseline=1"
    page = client.get("/fleet/drift/acme?baseline=1").get_data(as_text=True)
    assert "is enrolled: its baseline at <code>v1</code>" in page and 'id="preview"' in page
    assert agent.key not in page


def test_without_htmx_the_whole_page_comes_back_with_the_answer_and_never_the_key(app, client, login, agent):
    from tests.web.conftest import csrf_token

    login("admin")
    response = client.post("/instances/new/probe", data={
        "slug": "acme", "agent_url": agent.url, "agent_key_id": agent.key_id, "agent_key": agent.key,
        "csrf_token": csrf_token(client, "/instances/new")})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in body and 'id="instance-form"' in body
    assert "Connected: agent" in body and agent.key not in body and f'value="{agent.url}"' in body
    bad = client.post("/instances/new/probe", data={"slug": "\x1bv2", "agent_url": "\x7f", "agent_key_id": "",
                                                    "agent_key": "", "csrf_token": csrf_token(client, "/instances/new")})
    assert bad.status_code == 422 and "Not tested" in bad.get_data(as_text=True)
