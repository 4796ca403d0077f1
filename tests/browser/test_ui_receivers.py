"""The Receivers and Deliveries screens in Chromium: an admin creates a receiver through the form (the kind switch
swaps the kind's fields over htmx; a Docker Hub receiver has no secret field), the URL with its secret is shown
once, and every screen - the list, one receiver, the deliveries log with each decision - fits 390 px without
scrolling sideways in light and dark, with no serious axe-core finding.

Screenshots: screenshot_dir/ui-layout-receivers-<page>-<width>-<scheme>.png."""

from __future__ import annotations

import pytest

from ccp.extensions import db
from ccp.models import Rollout, WebhookDelivery
from ccp.services.receivers import create_receiver
from tests.browser.flows import log_in
from tests.browser.test_ui_layout import Walk
from tests.factories import make_user

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
DIGEST = "sha256:" + "3f" * 32


def _seed() -> None:
    """Receivers and deliveries with every decision, long names and digests included."""
    gh, _ = create_receiver({"name": "app-releases", "kind": "github", "image": "ghcr.io/acme/app",
                             "semver_range": "^2", "tag_exclude": ".*-rc.*", "min_age_s": 600}, actor="seed")
    reg, _ = create_receiver({"name": "registry-push", "kind": "distribution",
                              "image": "registry.example.com/platform/very-long-team-name/app"}, actor="seed")
    rollout = Rollout(tag="v2.4.0", status="succeeded", source="webhook", actor="webhook:app-releases",
                      image_digest=DIGEST)
    db.session.add(rollout)
    db.session.flush()
    rows = [
        (gh, "release.published", "v2.4.0", None, "started", f"rollout #{rollout.id}: v2.4.0 (sha256:3f3f3f3f3f3f…) "
         "to 12 tenant(s) (3 deliveries coalesced)", rollout.id),
        (gh, "package.published", None, DIGEST, "started", f"rollout #{rollout.id}: v2.4.0 (sha256:3f3f3f3f3f3f…) "
         "to 12 tenant(s) (3 deliveries coalesced)", rollout.id),
        (gh, "release.published", "v1.9.3", None, "ignored", "downgrade: v1.9.3 is older than v2.4.0, which the "
         "tenants run", None),
        (gh, "release.published", "v3.0.0-rc.1", None, "ignored", "policy: tag v3.0.0-rc.1 matches the exclude "
         "pattern .*-rc.*", None),
        (reg, "push", "nightly", DIGEST, "ignored", "not resolvable: registry registry.example.com is unreachable: "
         "ConnectTimeout", None),
        (reg, "push", "v2.5.0", DIGEST, "pending", None, None),
        (None, "release", "v2.4.0", None, "rejected", "invalid field(s): tag", None),
    ]
    for receiver, event, tag, digest, decision, reason, rollout_id in rows:
        db.session.add(WebhookDelivery(
            source=receiver.kind if receiver else "ci", event=event, receiver_id=receiver.id if receiver else None,
            status="accepted", decision=decision, reason=reason, tag=tag, digest=digest, rollout_id=rollout_id,
            repository=receiver.repository if receiver else None,
            detail={"hints": [{"repository": receiver.repository, "tag": tag, "digest": digest}]} if receiver else {}))
    db.session.commit()


def test_receivers_and_deliveries_screens(app, page, live_server, screenshot_dir):
    _seed()
    admin, password = make_user("ada", role="admin")
    base = live_server(app)
    console = []
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    log_in(page, base, admin.username, password)
    walk = Walk(page, screenshot_dir)

    page.goto(base + "/receivers")
    assert page.locator("#r-secret").count() == 1
    page.select_option("#r-kind", "dockerhub")  # htmx swaps in Docker Hub's fields: no secret, a note instead
    page.wait_for_selector(".receiver-note")
    assert page.locator("#r-secret").count() == 0
    page.fill("#r-name", "hub-app")
    page.fill("#r-image", "acme/app")
    page.fill("#r-semver_range", ">=1.0.0 <3")
    walk.look("receivers-new")
    page.click("#receiver-form button[type=submit]")
    page.wait_for_selector(".receiver-secret")
    url = page.inner_text(".receiver-secret code.token-value")
    assert url.startswith(base + "/api/hooks/hub-app/") and len(url) > len(base) + 40
    walk.look("receivers-created")
    page.goto(base + "/receivers/hub-app")
    assert url not in page.content()
    walk.visit("receivers-list", base + "/receivers")
    walk.visit("receivers-show", base + "/receivers/app-releases")
    walk.visit("receivers-deliveries", base + "/deliveries")
    assert page.locator("text=Replay").count() >= 5

    assert not walk.too_wide, walk.too_wide
    assert not walk.accessibility, "\n".join(walk.accessibility)
    assert not console, console
