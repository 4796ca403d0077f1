"""Rollbacks in the browser views against real tenants (local driver, fake compose runtime) and a real RQ worker:
the History tab's release timeline, "Roll back to this release" (dialog with its banner, apply bound to the plan),
and "Roll back this rollout" (preview page, confirmed start, the rollback's page)."""

from __future__ import annotations

import re

from sqlalchemy import select

from ccp.models import Instance, Rollout, Upgrade
from ccp.services import rollouts, upgrades
from tests.web.conftest import HX, csrf_token


def _release(db, run_worker, inst, tag: str) -> Upgrade:
    upgrade = upgrades.start_release(inst, tag, plan=upgrades.preview_release(inst, tag).plan_hash, actor="user:ann")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", upgrade.error
    db.session.refresh(inst)
    return upgrade


def test_history_tab_shows_the_release_timeline_and_buttons_for_operators_only(db, client, login, tenant,
                                                                               run_worker):
    v1 = _release(db, run_worker, tenant, "v1")
    v2 = _release(db, run_worker, tenant, "v2")
    login("viewer")
    page = client.get(f"/instances/{tenant.slug}/history").get_data(as_text=True)
    assert page.index(f'id="release-{v2.id}"') < page.index(f'id="release-{v1.id}"')  # newest first
    assert "current</span>" in page and "set default 1.0.0" in page and "applied by user:ann" in page
    assert "Roll back to this release" not in page  # viewers see history, no button
    client.post("/logout", headers={"X-CSRFToken": csrf_token(client)})
    login("operator")
    page = client.get(f"/instances/{tenant.slug}/history", headers=HX).get_data(as_text=True)
    assert page.count("Roll back to this release") == 1  # the earlier release only, not the current one
    assert f'hx-get="/instances/{tenant.slug}/releases/{v1.id}/rollback"' in page


def test_roll_back_from_the_dialog(db, client, login, post, tenant, run_worker):
    v1 = _release(db, run_worker, tenant, "v1")
    _release(db, run_worker, tenant, "v2")
    login("operator")
    dialog = client.get(f"/instances/{tenant.slug}/releases/{v1.id}/rollback", headers=HX)
    body = dialog.get_data(as_text=True)
    assert dialog.status_code == 200 and 'role="dialog"' in body and "<html" not in body
    banner = re.sub(r"\s+", " ", re.search(r'id="rollback-banner">(.*?)</div>', body, re.S).group(1))
    assert f"Rolling back to release #{v1.id} — <code>v1</code>, set default 1.0.0, applied by user:ann on" in banner
    assert "files as they were" in banner
    assert f'action="/instances/{tenant.slug}/releases/{v1.id}/rollback"' in body
    assert f"Roll back to v1 (release #{v1.id})" in body and "<code>v2</code> → <code>v1</code>" in body
    plan = re.search(r'name="plan" value="([0-9a-f]{64})"', body).group(1)

    stale = post(f"/instances/{tenant.slug}/releases/{v1.id}/rollback", {"plan": "0" * 64},
                 token_from=f"/instances/{tenant.slug}")
    assert stale.status_code == 409 and stale.headers["HX-Retarget"] == "#release-preview"
    assert "changed since the preview" in stale.get_data(as_text=True)

    started = post(f"/instances/{tenant.slug}/releases/{v1.id}/rollback", {"plan": plan},
                   token_from=f"/instances/{tenant.slug}")
    assert started.status_code == 202 and 'id="upgrade-status"' in started.get_data(as_text=True)
    run_worker()
    db.session.expire_all()
    back = db.session.execute(select(Upgrade).order_by(Upgrade.id.desc())).scalars().first()
    assert back.status == "succeeded" and back.rollback_of == v1.id
    assert db.session.get(Instance, tenant.id).image_tag == "v1"
    history = client.get(f"/instances/{tenant.slug}/history").get_data(as_text=True)
    assert f'rollback to <a href="#release-{v1.id}">#{v1.id}</a>' in history
    assert f'rollback to <a href="/upgrades/{v1.id}">#{v1.id}</a>' in history  # in the upgrades table too
    upgrade_page = client.get(f"/upgrades/{back.id}").get_data(as_text=True)
    assert f'<dt>Rollback to</dt><dd><a href="/upgrades/{v1.id}">release #{v1.id}</a>' in upgrade_page


def test_dialog_refusals_and_permissions(db, client, login, post, tenant, run_worker):
    current = _release(db, run_worker, tenant, "v2")
    login("operator")
    refused = client.get(f"/instances/{tenant.slug}/releases/{current.id}/rollback", headers=HX)
    assert refused.status_code == 409 and "is the one" in refused.get_data(as_text=True)
    assert client.get(f"/instances/{tenant.slug}/releases/999999/rollback").status_code == 404
    client.post("/logout", headers={"X-CSRFToken": csrf_token(client)})
    login("viewer")
    assert client.get(f"/instances/{tenant.slug}/releases/{current.id}/rollback").status_code == 403
    assert post(f"/instances/{tenant.slug}/releases/{current.id}/rollback", {"plan": "0" * 64},
                token_from=f"/instances/{tenant.slug}").status_code == 403


def test_roll_back_a_rollout_from_its_page(db, client, login, post, tenant_factory, run_worker):
    tenant_factory(slug="web-a"), tenant_factory(slug="web-b")
    forward = rollouts.start_rollout("v2", instances=["web-a", "web-b"], actor="user:ann")
    run_worker()
    login("operator")
    page = client.get(f"/rollouts/{forward.id}").get_data(as_text=True)
    assert "Roll back this rollout" in page and f'href="/rollouts/{forward.id}/rollback"' in page
    preview = client.get(f"/rollouts/{forward.id}/rollback?canary=1&waveSize=5").get_data(as_text=True)
    assert "Preview: 2 tenants back to their previous tags in 2 waves" in preview
    assert "<code>v2</code> → <code>v1</code>" in preview
    bad = client.get(f"/rollouts/{forward.id}/rollback?canary=0")
    assert bad.status_code == 422 and "must be a whole number" in bad.get_data(as_text=True)
    digest = re.search(r'name="expect" value="([0-9a-f]{64})"', preview).group(1)
    stale = post(f"/rollouts/{forward.id}/rollback", {"canary": "1", "waveSize": "5", "expect": "0" * 64},
                 htmx=False, token_from=f"/rollouts/{forward.id}")
    assert stale.status_code == 409 and "changed since the preview" in stale.get_data(as_text=True)
    assert Rollout.query.count() == 1
    started = post(f"/rollouts/{forward.id}/rollback", {"canary": "1", "waveSize": "5", "expect": digest},
                   htmx=False, token_from=f"/rollouts/{forward.id}")
    assert started.status_code == 302
    back_id = int(started.headers["Location"].rsplit("/", 1)[1])
    run_worker()
    back = client.get(f"/rollouts/{back_id}").get_data(as_text=True)
    assert re.search(rf'Rollback of <a href="/rollouts/{forward.id}">rollout #{forward.id}</a>\s*'
                     r"<small>each tenant back to its previous tag</small>", back)
    assert "Roll back this rollout" not in back  # a rollback is not rolled back
    assert "<code>v2</code> → <code>v1</code>" in back
    forward_page = client.get(f"/rollouts/{forward.id}").get_data(as_text=True)
    assert f'href="/rollouts/{back_id}">rollout #{back_id}</a>' in forward_page  # "Rolled back by"
    listing = client.get("/rollouts").get_data(as_text=True)
    assert f'#{back_id}</a> <span class="muted">rollback of #{forward.id}</span>' in listing
    client.post("/logout", headers={"X-CSRFToken": csrf_token(client)})
    login("viewer")
    assert "Roll back this rollout" not in client.get(f"/rollouts/{forward.id}").get_data(as_text=True)
    assert client.get(f"/rollouts/{forward.id}/rollback").status_code == 403


def test_a_running_rollout_offers_no_rollback_and_the_preview_says_one_runs_at_a_time(db, client, login,
                                                                                       tenant_factory, run_worker):
    tenant_factory(slug="run-a"), tenant_factory(slug="run-b")
    done = rollouts.start_rollout("v2", instances=["run-a"], actor="t")
    run_worker()
    running = rollouts.start_rollout("v2", instances=["run-b"], actor="t")
    login("operator")
    assert "Roll back this rollout" not in client.get(f"/rollouts/{running.id}").get_data(as_text=True)
    refused = client.get(f"/rollouts/{running.id}/rollback")
    assert refused.status_code == 409 and "still running" in refused.get_data(as_text=True)
    waits = client.get(f"/rollouts/{done.id}/rollback").get_data(as_text=True)
    assert "one rollout runs at a time" in waits and f'href="/rollouts/{running.id}"' in waits


def test_a_held_tenant_is_rolled_back_after_roll_back_anyway(db, client, login, post, tenant, run_worker):
    from ccp.services import windows

    v1 = _release(db, run_worker, tenant, "v1")
    _release(db, run_worker, tenant, "v2")
    windows.set_hold(tenant, "freeze", actor="user:ann")
    login("operator")
    body = client.get(f"/instances/{tenant.slug}/releases/{v1.id}/rollback", headers=HX).get_data(as_text=True)
    plan = re.search(r'name="plan" value="([0-9a-f]{64})"', body).group(1)
    url = f"/instances/{tenant.slug}/releases/{v1.id}/rollback"
    refused = post(url, {"plan": plan}, token_from=f"/instances/{tenant.slug}")
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "Roll back anyway" in text and f'hx-post="{url}"' in text
    assert 'name="held_ok" value="1"' in text and f'name="plan" value="{plan}"' in text
    started = post(url, {"plan": plan, "held_ok": "1"}, token_from=f"/instances/{tenant.slug}")
    assert started.status_code == 202


def test_an_unreachable_agent_is_said_in_the_dialog(db, client, login, tenant_factory, run_worker):
    inst = tenant_factory(driver="remote")
    v1 = _release(db, run_worker, inst, "v1")
    _release(db, run_worker, inst, "v2")
    inst.agent_url = "http://127.0.0.1:9"  # nothing listens there
    db.session.commit()
    login("operator")
    dialog = client.get(f"/instances/{inst.slug}/releases/{v1.id}/rollback", headers=HX)
    body = dialog.get_data(as_text=True)
    # htmx swaps no 5xx: the fragment answers 200 so the dialog opens and says why; a plain page keeps the 502
    assert dialog.status_code == 200 and 'role="dialog"' in body and "unreachable" in body
    assert 'data-code="agent_unavailable"' in body
    assert client.get(f"/instances/{inst.slug}/releases/{v1.id}/rollback").status_code == 502
