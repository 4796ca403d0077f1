"""Receivers' intake, `POST /api/hooks/<receiver>`, for every provider kind, with documented payloads and
signatures (tests/intake/payloads.py), a registry on a real socket (tests/intake/fake_registry.py), tenants on the
fake compose, SQLite and PostgreSQL.

Per kind: a forged delivery leaves no trace; a release starts one rollout carrying the digest the registry gave;
a burst (repeats, digest-only events) is one rollout; a repeated delivery id is a replay; tags outside the policy,
a downgrade and an unknown repository are ignored with their reason; digest-only events find their tag."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ccp.extensions import get_queue
from ccp.models import AuditEvent, Instance, Rollout, Upgrade, WebhookDelivery
from ccp.services.intake import decide_pending
from tests.api.conftest import assert_error
from tests.intake import payloads as P
from tests.intake.fake_registry import registry_fixture  # noqa: F401 - provides `fake_registry`
from tests.intake.senders import DIGEST_ONLY, KINDS, REPO, WITH_IDS, make_sender


def _count(db, model) -> int:
    return db.session.execute(select(func.count(model.id))).scalar()


def _deliveries(db) -> list[WebhookDelivery]:
    db.session.expire_all()
    return list(db.session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).scalars())


@pytest.fixture
def world(app, api, make_token, tenant_factory, fake_registry):
    """Two tenants on v1, a registry holding v1 and v2.0.0 of acme/app, the coalescing window off (tests decide
    by running the queued job)."""
    app.config["CCP"].receiver_window_s = 0
    tenant_factory(slug="hook-a"), tenant_factory(slug="hook-b")
    registry = fake_registry()
    registry.push(REPO, "v1")
    digests = {"v2.0.0": registry.push(REPO, "v2.0.0")}
    return {"registry": registry, "token": make_token("admin"), "digests": digests}


def _sender(api, world, kind, **fields):
    return make_sender(api, world["token"], kind, world["registry"].image(REPO), **fields)


def _decide_queued() -> None:
    """Run the decision jobs the intake queued (only those: the rollouts they start stay queued)."""
    queue = get_queue()
    for job in queue.get_jobs():
        if job.func_name == "ccp.jobs.decide_deliveries":
            queue.remove(job)
            decide_pending(*job.args, wait=False)


@pytest.mark.parametrize("kind", KINDS)
def test_a_forged_delivery_leaves_no_trace(db, api, client, world, kind):
    sender = _sender(api, world, kind)
    before = _count(db, AuditEvent)
    err = assert_error(sender.send(client, tag="v2.0.0", tamper=True), 401, "bad_signature")
    assert sender.secret not in str(err)
    assert _count(db, WebhookDelivery) == 0 and _count(db, AuditEvent) == before and get_queue().count == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_release_starts_one_rollout_with_the_registry_digest(db, api, client, world, kind):
    sender = _sender(api, world, kind)
    resp = sender.send(client, tag="v2.0.0")
    assert resp.status_code == 202 and resp.get_json()["decision"] == "pending", resp.get_json()
    _decide_queued()
    (delivery,) = _deliveries(db)
    rollout = db.session.get(Rollout, delivery.rollout_id)
    assert (delivery.decision, delivery.tag, rollout.tag, rollout.status) == ("started", "v2.0.0", "v2.0.0",
                                                                             "running"), delivery.reason
    assert rollout.image_digest == world["digests"]["v2.0.0"] and rollout.actor == f"webhook:{kind}-hook"
    assert delivery.detail["resolved"] == {"tag": "v2.0.0", "digest": world["digests"]["v2.0.0"]}
    assert delivery.reason.startswith(f"rollout #{rollout.id}: v2.0.0 (sha256:") and "to 2 tenant(s)" in delivery.reason


def test_the_digest_reaches_every_upgrade_of_the_rollout(db, api, client, world, run_worker):
    sender = _sender(api, world, "distribution")
    sender.send(client, tag="v2.0.0")
    run_worker()  # the decision job, then the rollout's waves and upgrades
    (delivery,) = _deliveries(db)
    rollout = db.session.get(Rollout, delivery.rollout_id)
    assert rollout.status == "succeeded", rollout.error
    upgrades = db.session.execute(select(Upgrade).where(Upgrade.rollout_id == rollout.id)).scalars().all()
    assert {u.image_digest for u in upgrades} == {world["digests"]["v2.0.0"]} and len(upgrades) == 2
    assert {i.image_tag for i in db.session.execute(select(Instance)).scalars()} == {"v2.0.0"}
    # ...and is shown: the API's rollout and upgrade, the rollout page and the status widget.
    digest = world["digests"]["v2.0.0"]
    assert api("GET", f"/api/rollouts/{rollout.id}", world["token"]).get_json()["image_digest"] == digest
    assert api("GET", f"/api/upgrades/{upgrades[0].id}", world["token"]).get_json()["image_digest"] == digest


@pytest.mark.parametrize("kind", KINDS)
def test_a_burst_is_one_decision_and_one_rollout(db, api, client, world, kind):
    sender = _sender(api, world, kind, semver_range=">=1")
    answers = [sender.send(client, tag="v2.0.0") for _ in range(3)]
    if kind in DIGEST_ONLY:  # a multi-arch push: platform manifests by digest, then the index with its tag
        answers += [sender.send(client, digest=P.DIGEST_A), sender.send(client, digest=P.DIGEST_B)]
    assert {a.status_code for a in answers} == {202}
    assert [j.func_name for j in get_queue().get_jobs()] == ["ccp.jobs.decide_deliveries"]  # one job queued
    _decide_queued()
    deliveries = _deliveries(db)
    assert len(deliveries) == len(answers) and _count(db, Rollout) == 1
    assert {(d.decision, d.rollout_id) for d in deliveries} == {("started", 1)}
    assert all(f"{len(answers)} deliveries coalesced" in d.reason for d in deliveries)
    late = sender.send(client, tag="v2.0.0")  # after the decision: the running rollout has it already
    assert late.status_code == 202
    _decide_queued()
    assert _deliveries(db)[-1].reason.startswith("duplicate: rollout #1") and _count(db, Rollout) == 1


@pytest.mark.parametrize("kind", WITH_IDS)
def test_a_repeated_delivery_id_is_a_replay(db, api, client, world, kind):
    sender = _sender(api, world, kind)
    first = sender.send(client, tag="v2.0.0", delivery="delivery-7")
    again = sender.send(client, tag="v2.0.0", delivery="delivery-7")  # freshly signed, same provider id
    assert first.status_code == 202 and again.status_code == 202
    assert again.get_json()["duplicate"] is True and again.get_json()["id"] == first.get_json()["id"]
    assert _count(db, WebhookDelivery) == 1


@pytest.mark.parametrize("kind", DIGEST_ONLY)
def test_a_digest_only_event_finds_the_newest_tag_in_range(db, api, client, world, kind):
    newest = world["registry"].push(REPO, "v2.1.0")
    world["registry"].push(REPO, "v3.0.0")  # outside the range
    sender = _sender(api, world, kind, semver_range="^2")
    assert sender.send(client, digest=newest).status_code == 202
    _decide_queued()
    (delivery,) = _deliveries(db)
    assert delivery.decision == "started" and delivery.detail["resolved"] == {"tag": "v2.1.0", "digest": newest}
    assert db.session.get(Rollout, delivery.rollout_id).tag == "v2.1.0"


@pytest.mark.parametrize("kind", DIGEST_ONLY)
def test_a_digest_only_event_without_a_range_is_not_resolvable(db, api, client, world, kind):
    sender = _sender(api, world, kind)
    sender.send(client, digest=P.DIGEST_A)
    _decide_queued()
    (delivery,) = _deliveries(db)
    assert delivery.decision == "ignored" and delivery.reason.startswith("not resolvable: the event names only")


@pytest.mark.parametrize("kind", KINDS)
def test_tags_outside_the_policy_are_ignored_at_once(db, api, client, world, kind):
    sender = _sender(api, world, kind, semver_range="^2", tag_exclude=r".*-rc\..*")
    for tag, why in (("latest", "is not a version"), ("v3.0.0", "outside the range ^2"),
                     ("v2.1.0-rc.1", "matches the exclude pattern")):
        resp = sender.send(client, tag=tag, digest=P.DIGEST_A if kind in DIGEST_ONLY else None)
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["decision"] == "ignored" and why in resp.get_json()["reason"]
    assert get_queue().count == 0 and _count(db, Rollout) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_downgrade_is_never_started(db, api, client, world, kind):
    for inst in db.session.execute(select(Instance)).scalars():
        inst.image_tag = "v2.0.0"
    db.session.commit()
    world["registry"].push(REPO, "v1.5.0")
    sender = _sender(api, world, kind)  # no range: the tag named is the candidate
    sender.send(client, tag="v1.5.0")
    _decide_queued()
    (delivery,) = _deliveries(db)
    assert delivery.decision == "ignored" and delivery.reason.startswith("downgrade: v1.5.0 is older than v2.0.0")
    ranged = _sender(api, world, kind, semver_range=">=1", name=f"{kind}-ranged")
    ranged.send(client, tag="v1.5.0")  # with a range the registry's newest is v2.0.0, which the tenants run
    _decide_queued()
    assert _deliveries(db)[-1].reason.startswith("downgrade: v1.5.0 is older than v2.0.0, which the tenants run")
    assert _count(db, Rollout) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_repository_is_ignored(db, api, client, world, kind):
    sender = _sender(api, world, kind)
    resp = sender.send(client, repo="someone/else", tag="v2.0.0")
    assert resp.status_code == 200 and resp.get_json()["reason"].startswith("unknown repository: someone/else")
    assert get_queue().count == 0 and _count(db, Rollout) == 0


def test_a_tag_missing_at_the_registry_is_not_resolvable(db, api, client, world):
    sender = _sender(api, world, "github")
    sender.send(client, tag="v9.9.9")
    _decide_queued()
    assert _deliveries(db)[0].reason.startswith("not resolvable: tag v9.9.9 is not at 127.0.0.1:")


def test_a_disabled_or_unknown_receiver_is_404_and_stores_nothing(db, api, client, world):
    sender = _sender(api, world, "github")
    assert api("PATCH", f"/api/receivers/{sender.name}", world["token"], json={"enabled": False}).status_code == 200
    assert_error(sender.send(client, tag="v2.0.0"), 404, "not_found")
    assert_error(client.post("/api/hooks/nobody", data=b"{}"), 404, "not_found")
    assert_error(client.post(f"/api/hooks/{sender.name}/a-path-secret", data=b"{}"), 404, "not_found")
    assert _count(db, WebhookDelivery) == 0


def test_a_signed_body_that_is_not_json_is_kept_as_rejected(db, api, client, world):
    sender = _sender(api, world, "github")
    raw = b"not json"
    headers = P.github_headers(sender.secret, raw, "release")
    assert_error(client.post(sender.path, data=raw, headers=headers), 400, "invalid_payload")
    (delivery,) = _deliveries(db)
    assert (delivery.decision, delivery.status) == ("rejected", "rejected") and "not JSON" in delivery.reason


def test_a_form_encoded_github_delivery_is_read(db, api, client, world):
    from urllib.parse import quote

    sender = _sender(api, world, "github")
    raw = ("payload=" + quote(P.body(P.github_release("v2.0.0")).decode())).encode()
    headers = {**P.github_headers(sender.secret, raw, "release"), "Content-Type": "application/x-www-form-urlencoded"}
    assert client.post(sender.path, data=raw, headers=headers).status_code == 202


def test_the_coalescing_window_is_waited_out(db, api, client, world, app):
    import time

    app.config["CCP"].receiver_window_s = 0.6
    sender = _sender(api, world, "distribution")
    sender.send(client, tag="v2.0.0")
    started = time.monotonic()
    (job,) = get_queue().get_jobs()
    get_queue().remove(job)
    assert decide_pending(*job.args) == 1 and time.monotonic() - started >= 0.4
    assert _deliveries(db)[0].decision == "started"


@pytest.mark.parametrize("kind, event, payload", [
    ("gitlab", "Release Hook", {"object_kind": "release\u0000", "action": "\ud800", "tag": "v2\u0000"}),
    ("github", "release", {"action": "\u0000published", "release": {"tag_name": "\ud800"},
                           "repository": {"full_name": "acme/app"}}),
    ("harbor", "x", {"type": "PUSH\u0000", "event_data": {}}),
])
def test_nul_and_lone_surrogates_in_a_signed_payload_are_stored_escaped(db, api, client, world, kind, event,
                                                                          payload):
    import json

    sender = _sender(api, world, kind)
    raw = json.dumps(payload, ensure_ascii=True).encode()
    _, headers, _ = sender.request(tag="v2.0.0")
    if kind == "github":
        headers = P.github_headers(sender.secret, raw, event)
    resp = client.post(sender.path, data=raw, headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    (delivery,) = _deliveries(db)
    assert delivery.decision == "ignored" and "\x00" not in delivery.event + delivery.reason


def test_a_registry_s_pulls_are_acknowledged_without_a_row(db, api, client, world):
    sender = _sender(api, world, "distribution")
    pull = P.distribution_event(REPO, P.DIGEST_A, "v2.0.0", action="pull")
    layer = P.distribution_event(REPO, P.DIGEST_B, media_type="application/octet-stream")
    raw = P.body(P.distribution_envelope(pull, layer))
    headers = {"Content-Type": P.DISTRIBUTION_TYPE, "Authorization": f"Bearer {sender.secret}"}
    resp = client.post(sender.path, data=raw, headers=headers)
    assert resp.status_code == 204 and resp.get_data() == b""
    assert _count(db, WebhookDelivery) == 0 and get_queue().count == 0
    assert_error(client.post(sender.path, data=raw, headers={**headers, "Authorization": "Bearer x"}), 401)
