"""The release dialog against a real tenant (local driver, fake compose runtime) and a real RQ worker:
tag check, preview (statuses, env alert, collapsed diffs, masked values), apply bound to the plan, status widget."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select

from ccp.models import Upgrade
from tests.tenants import CANARY
from tests.web.conftest import HX


def _preview(post, slug: str, tag: str):
    return post(f"/instances/{slug}/release/preview", {"tag": tag}, token_from=f"/instances/{slug}")


def test_modal_and_tag_checked_as_you_type(client, login, tenant):
    login("operator")
    modal = client.get(f"/instances/{tenant.slug}/release", headers=HX).get_data(as_text=True)
    assert 'role="dialog"' in modal and "<html" not in modal and 'name="tag"' in modal
    bad = client.get(f"/instances/{tenant.slug}/release/tag?tag=-v2", headers=HX).get_data(as_text=True)
    assert "Invalid tag" in bad
    good = client.get(f"/instances/{tenant.slug}/release/tag?tag=v2.1", headers=HX).get_data(as_text=True)
    assert "is a valid tag" in good


def test_preview_shows_statuses_collapsed_diffs_and_plan(client, login, post, tenant):
    login("operator")
    (Path(tenant.install_dir) / "nginx" / "conf.d" / "default.conf").unlink()
    response = _preview(post, tenant.slug, "v2")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert re.search(r"\d+ unchanged", body) and "1 modified" in body and "1 created" in body
    assert 'class="tag tag-created">created</span> <code>nginx/conf.d/default.conf</code>' in body
    assert "<details open><summary>Diff</summary>" in body  # changed files show their diff at once
    # Coloured rows with line numbers on both sides, removed before added, the changed characters marked.
    rows = re.findall(r'<tr class="d-(del|add)"><td class="ln" data-n="(\d*)"></td><td class="ln" data-n="(\d*)"></td>'
                      r'<td class="code">(.*?)</td></tr>', body)
    env_rows = [r for r in rows if "IMAGE_TAG" in r[3]]
    assert [r[0] for r in env_rows] == ["del", "add"] and env_rows[0][1] and env_rows[1][2]
    assert "<mark>" in env_rows[1][3] or "IMAGE_TAG=********" in env_rows[1][3]
    assert 'class="diff-table diff-table-split"' in body and 'name="diff-mode" value="split"' in body
    assert re.search(r'<details class="unchanged-files"><summary>\d+ unchanged files</summary>', body)
    assert re.search(r"env coverage \d+/\d+", body)
    assert body.index("Apply v2 to") < body.index("nginx/conf.d/default.conf")  # the button before the file list
    plan = re.search(r'name="plan" value="([0-9a-f]{64})"', body).group(1)
    assert f'data-plan="{plan}"' in body
    assert "Apply v2 to" in body and f"({tenant.slug})?" in body  # confirmation names tenant and tag
    assert CANARY not in body  # .env values are masked in the diff


def test_long_diff_is_loaded_on_demand_for_the_same_plan_only(client, login, post, tenant):
    login("operator")
    compose = Path(tenant.install_dir) / "docker-compose.yml"
    compose.write_text("# drifted\n" * 400)
    body = _preview(post, tenant.slug, "v1").get_data(as_text=True)
    assert re.search(r"Load diff \(\d{3} lines\)", body) and "# drifted" not in body
    plan = re.search(r'name="plan" value="([0-9a-f]{64})"', body).group(1)
    url = f"/instances/{tenant.slug}/release/diff?tag=v1&plan={plan}&path=docker-compose.yml"
    loaded = client.get(url, headers=HX)
    text = loaded.get_data(as_text=True)
    assert loaded.status_code == 200 and text.count("# drifted") >= 400 and "<html" not in text
    assert 'data-n="400"' in text  # numbered to the end
    compose.write_text("# drifted again\n")
    stale = client.get(url, headers=HX)
    assert stale.status_code == 409 and "Preview again" in stale.get_data(as_text=True)
    missing = client.get(url.replace("docker-compose.yml", "nope.conf"), headers=HX)
    assert missing.status_code in (404, 409)


def test_env_table_shows_the_tag_and_names_secret_changes(client, login, post, tenant, db):
    login("operator")
    body = _preview(post, tenant.slug, "v2").get_data(as_text=True)
    table = re.search(r'<section class="env-changes" id="env-table".*?</section>', body, re.S).group(0)
    row = re.search(r'<tr class="env-changed">\s*<th scope="row"><code>IMAGE_TAG</code></th>(.*?)</tr>', table, re.S)
    assert row and "<code>v1</code>" in row.group(1) and "<code>v2</code>" in row.group(1)
    assert 'id="secret-summary">no secret changes<' in body and 'id="secret-alert"' not in body
    secrets = tenant.decrypted_secrets()
    tenant.set_secrets({**secrets, "JWT_SECRET": f"{CANARY}-new"})
    db.session.commit()
    body = _preview(post, tenant.slug, "v2").get_data(as_text=True)
    alert = re.search(r'<div class="alert alert-error" role="alert" id="secret-alert">(.*?)</div>', body, re.S)
    assert alert and "<code>JWT_SECRET</code>" in alert.group(1) and "1 secret" in alert.group(1)
    assert 'id="secret-summary">1 secret change<' in body
    assert re.search(r'<tr class="env-changed env-secret">\s*<th scope="row"><code>JWT_SECRET</code>', body)
    assert CANARY not in body
    assert "changes 1 secret(s)" in body  # said again in the Apply confirmation


def test_registered_env_table_lists_managed_keys_and_names_the_rest(client, login, post, tenant_factory):
    login("operator")
    inst = tenant_factory(registered=True)
    body = _preview(post, inst.slug, "v2").get_data(as_text=True)
    assert "Apply sets in the tenant&#39;s .env" in body or "Apply sets in the tenant's .env" in body
    assert re.search(r'<code>IMAGE_TAG</code></th>\s*<td class="old"><code>v1</code></td>\s*<td class="new"><code>v2</code>',
                     body)
    assert re.search(r"Apply leaves the tenant(&#39;|')s other \d+ keys as they are", body)
    assert "secret-summary" not in body and CANARY not in body


def test_missing_env_variables_raise_the_red_alert(client, login, post, tenant_factory):
    login("operator")
    inst = tenant_factory(registered=True)
    env = Path(inst.install_dir) / ".env"
    kept = [line for line in env.read_text().splitlines() if not line.startswith("POSTGRES_PASSWORD=")]
    env.write_text("\n".join(kept) + "\n")
    body = _preview(post, inst.slug, "v2").get_data(as_text=True)
    alert = re.search(r'<div class="alert alert-error" role="alert" id="env-alert">(.*?)</div>', body, re.S)
    assert alert, body
    assert "<code>POSTGRES_PASSWORD</code> — no default" in alert.group(1)
    assert "(template default)" not in alert.group(1)  # the defaulted ones are a collapsed count, not in the alert
    assert re.search(r'<details class="defaulted" id="env-defaulted"><summary>\d+ variables not set', body)
    assert re.search(r'class="tag tag-bad"[^>]*>env coverage \d+/\d+', body)
    assert "<code>IMAGE_TAG</code>" in body  # the env patch apply will make


def test_preview_errors_are_shown_in_the_dialog(client, login, post, tenant):
    login("operator")
    response = _preview(post, tenant.slug, "../etc")
    assert response.status_code == 422 and "alert" in response.get_data(as_text=True)


def test_apply_runs_and_widget_stops_polling_when_succeeded(client, login, post, tenant, run_worker, db):
    login("operator")
    body = _preview(post, tenant.slug, "v2").get_data(as_text=True)
    plan = re.search(r'name="plan" value="([0-9a-f]{64})"', body).group(1)
    response = post(f"/instances/{tenant.slug}/release/apply", {"tag": "v2", "plan": plan})
    widget = response.get_data(as_text=True)
    assert response.status_code == 202 and 'id="upgrade-status"' in widget and "Queued" in widget
    assert 'hx-trigger="every 1s"' in widget and 'id="modal" hx-swap-oob="true"' in widget
    upgrade = db.session.execute(select(Upgrade)).scalar_one()
    assert upgrade.plan_hash == plan and upgrade.actor
    polled = client.get(f"/upgrades/{upgrade.id}/status", headers=HX)
    assert polled.status_code == 200 and polled.headers["Cache-Control"] == "no-store"
    run_worker()
    final = client.get(f"/upgrades/{upgrade.id}/status", headers=HX)
    text = final.get_data(as_text=True)
    assert final.status_code == 286 and final.headers["Cache-Control"] == "no-store"
    assert "Succeeded" in text and "hx-trigger" not in text
    for label in ("Render", "Write files", "Pull images", "Start", "Verify"):
        assert f'<span class="step-name">{label}</span>' in text
    page = client.get(f"/upgrades/{upgrade.id}").get_data(as_text=True)
    assert "<html" in page and "Succeeded" in page


def test_broken_tag_shows_rolled_back_with_cause(client, login, post, tenant, run_worker, db):
    login("operator")
    response = post(f"/instances/{tenant.slug}/release/apply", {"tag": "broken"})
    assert response.status_code == 202
    run_worker()
    upgrade = db.session.execute(select(Upgrade)).scalar_one()
    text = client.get(f"/upgrades/{upgrade.id}/status", headers=HX).get_data(as_text=True)
    assert "Rolled back" in text and "Cause:" in text and "exited" in text
    history = client.get(f"/instances/{tenant.slug}/history", headers=HX).get_data(as_text=True)
    assert "Rolled back" in history and "broken" in history


def test_second_apply_conflicts_and_enqueues_nothing(client, login, post, tenant, db):
    login("operator")
    assert post(f"/instances/{tenant.slug}/quick-upgrade").status_code == 202
    response = post(f"/instances/{tenant.slug}/release/apply", {"tag": "v2"})
    assert response.status_code == 409 and response.headers["HX-Retarget"] == "#release-preview"
    assert db.session.execute(select(func.count(Upgrade.id))).scalar() == 1


def test_quick_upgrade_refusal_takes_the_status_slot(client, login, post, tenant, db):
    login("operator")
    assert post(f"/instances/{tenant.slug}/quick-upgrade").status_code == 202
    response = post(f"/instances/{tenant.slug}/upgrade-now")
    body = response.get_data(as_text=True)
    assert response.status_code == 409 and "HX-Retarget" not in response.headers
    assert body.startswith('<div id="upgrade-status"') and 'data-code="upgrade_active"' in body
    assert db.session.execute(select(func.count(Upgrade.id))).scalar() == 1


def test_plain_form_post_redirects_to_the_upgrade_page(client, login, post, tenant, db):
    login("operator")
    response = post(f"/instances/{tenant.slug}/upgrade-now", htmx=False)
    upgrade = db.session.execute(select(Upgrade)).scalar_one()
    assert response.status_code == 303 and response.headers["Location"] == f"/upgrades/{upgrade.id}"
    assert upgrade.kind == "full"


def test_cancel_queued_upgrade_from_the_widget(client, login, post, tenant, db):
    login("operator")
    post(f"/instances/{tenant.slug}/quick-upgrade")
    upgrade = db.session.execute(select(Upgrade)).scalar_one()
    response = post(f"/upgrades/{upgrade.id}/cancel")
    assert response.status_code == 286 and "Cancelled" in response.get_data(as_text=True)


def test_an_agent_down_at_preview_is_said_in_the_dialog(client, login, post, db):
    """htmx swaps no 5xx answer: the dialog gets the refusal as a 200 fragment naming the agent; a plain form post
    keeps the 502."""
    from tests.factories import make_instance

    inst = make_instance(agent_url="http://127.0.0.1:9", image_tag="v1")  # nothing listens there
    login("operator")
    response = post(f"/instances/{inst.slug}/release/preview", {"tag": "v2"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "127.0.0.1:9" in body and "alert" in body and "<html" not in body
    assert post(f"/instances/{inst.slug}/release/preview", {"tag": "v2"}, htmx=False).status_code == 502
