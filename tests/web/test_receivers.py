"""The Receivers and Deliveries pages: admins create (secret and URL shown once, never again), edit, disable and
rotate; the kind-specific part of the form follows the kind; everyone reads the deliveries with their decisions;
only admins replay. SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ccp.models import Receiver, WebhookDelivery
from tests.intake import payloads as P
from tests.intake.fake_registry import registry_fixture  # noqa: F401 - provides `fake_registry`
from tests.web.conftest import HX

FORM = {"name": "gh", "kind": "github", "image": "ghcr.io/acme/app", "repository": "", "secret": "",
        "semver_range": "^1", "tag_include": "", "tag_exclude": "", "min_age_s": "", "instances": "",
        "canary": "1", "wave_size": "5", "registry_username": "", "registry_password": ""}


def _create(post, **fields):
    return post("/receivers", {**FORM, **fields}, htmx=False, token_from="/receivers")


def test_an_admin_creates_a_receiver_and_sees_the_secret_once(app, db, client, login, post):
    login("admin")
    page = client.get("/receivers").get_data(as_text=True)
    assert "New receiver" in page and "No receiver yet." in page
    resp = _create(post)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    secret = re.search(r'<code class="token-value">([^<]+)</code>', html).group(1)
    assert db.session.execute(select(Receiver)).scalar_one().hmac_key() == secret
    assert "http://localhost/api/hooks/gh" in html and "shown only this once" in html
    for path in ("/receivers", "/receivers/gh", "/deliveries"):
        assert secret not in client.get(path).get_data(as_text=True)


def test_a_docker_hub_receiver_shows_its_url_with_the_secret_once(app, db, client, login, post):
    login("admin")
    html = _create(post, name="hub", kind="dockerhub", image="acme/app").get_data(as_text=True)
    url = re.search(r'<code class="token-value">([^<]+)</code>', html).group(1)
    assert re.fullmatch(r"http://localhost/api/hooks/hub/[A-Za-z0-9_-]{43}", url)
    later = client.get("/receivers/hub").get_data(as_text=True)
    assert url not in later and "/api/hooks/hub/{secret}" in later


def test_bad_fields_are_shown_next_to_the_fields_and_nothing_is_saved(app, db, client, login, post):
    login("admin")
    resp = _create(post, name="Bad Name", semver_range="two", canary="\u0661", instances="nobody")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "Nothing was saved" in html
    for field in ("name", "semver_range", "canary"):
        assert f'id="re-{field}"' in html, field
    assert db.session.execute(select(Receiver)).first() is None
    resp = _create(post, instances="nobody")
    assert resp.status_code == 422 and "unknown instance(s): nobody" in resp.get_data(as_text=True)


def test_the_kind_fields_follow_the_kind(app, client, login):
    login("admin")
    hub = client.get("/receivers/kind-fields?kind=dockerhub", headers=HX).get_data(as_text=True)
    assert 'name="secret"' not in hub and "CCP makes a long random secret" in hub
    gitlab = client.get("/receivers/kind-fields?kind=gitlab", headers=HX).get_data(as_text=True)
    assert 'name="secret"' in gitlab and "whsec_" in gitlab and "registry.gitlab.com/group/project" in gitlab
    assert client.get("/receivers/kind-fields?kind=svn").status_code == 404


def test_edit_disable_and_rotate(app, db, client, login, post, tenant):
    login("admin")
    old = re.search(r'token-value">([^<]+)<', _create(post).get_data(as_text=True)).group(1)
    values = {k: v for k, v in FORM.items() if k not in ("name", "kind", "secret")}
    saved = post("/receivers/gh", {**values, "image": "ghcr.io/acme/app", "semver_range": "^2",
                                   "instances": tenant.slug, "enabled": "on"}, htmx=False, token_from="/receivers/gh")
    assert saved.status_code == 302
    receiver = db.session.execute(select(Receiver)).scalar_one()
    assert (receiver.semver_range, receiver.instances, receiver.enabled) == ("^2", [tenant.slug], True)
    bad = post("/receivers/gh", {**values, "wave_size": "0", "enabled": "on"}, htmx=False, token_from="/receivers/gh")
    assert bad.status_code == 422 and 'id="re-wave_size"' in bad.get_data(as_text=True)
    assert post("/receivers/gh/toggle", htmx=False, token_from="/receivers/gh").status_code == 302
    db.session.expire_all()
    assert db.session.execute(select(Receiver.enabled)).scalar_one() is False
    rotated = post("/receivers/gh/rotate", htmx=False, token_from="/receivers/gh")
    new = re.search(r'token-value">([^<]+)<', rotated.get_data(as_text=True)).group(1)
    assert new != old and rotated.headers["Cache-Control"] == "no-store"
    db.session.expire_all()
    assert db.session.execute(select(Receiver)).scalar_one().hmac_key() == new


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_receivers_are_for_admins_only(app, client, login, post, role):
    login(role)
    assert client.get("/receivers").status_code == 403
    assert client.get("/receivers/kind-fields?kind=github").status_code == 403
    assert post("/receivers", FORM, htmx=False, token_from="/deliveries").status_code == 403


def test_deliveries_show_decisions_and_admins_replay(app, db, client, login, post, tenant_factory, fake_registry):
    from ccp.services.intake import decide_pending
    from ccp.services.receivers import create_receiver

    app.config["CCP"].receiver_window_s = 0
    tenant_factory(slug="ui-a")
    registry = fake_registry()
    receiver, secret = create_receiver({"name": "gh", "kind": "github", "image": registry.image("acme/app")},
                                       actor="test")
    raw = P.body(P.github_release("v2.0.0", "acme/app"))
    assert client.post("/api/hooks/gh", data=raw, headers=P.github_headers(secret, raw, "release")).status_code == 202
    decide_pending(receiver.id, wait=False)  # v2.0.0 is not at the registry yet
    login("viewer")
    page = client.get("/deliveries").get_data(as_text=True)
    assert "not resolvable: tag v2.0.0 is not at" in page and "why-not-resolvable" in page
    assert "acme/app:v2.0.0" in page and ">Replay<" not in page
    assert client.get("/deliveries?receiver=gh&decision=started").get_data(as_text=True).count("No delivery yet") == 1
    client.post("/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)})
    login("admin")
    assert ">Replay<" in client.get("/deliveries").get_data(as_text=True)
    registry.push("acme/app", "v2.0.0")
    replayed = post("/deliveries/1/replay", htmx=True, token_from="/deliveries")
    assert replayed.status_code == 204 and replayed.headers["HX-Redirect"] == "/deliveries"
    page = client.get("/deliveries").get_data(as_text=True)
    assert "replayed as #2: started" in page and "rollout #1" in page and "replays #1" in page
    assert db.session.execute(select(WebhookDelivery.replay_of).where(WebhookDelivery.id == 2)).scalar_one() == 1
    assert post("/deliveries/99/replay", htmx=False, token_from="/deliveries").status_code == 404
