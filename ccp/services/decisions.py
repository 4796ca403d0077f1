"""Deciding what pending deliveries of one receiver mean: started rollout #n, or ignored and why.

The deliveries are hints; the registry is the truth. In order:
1. Tags: the tags the deliveries named that the policy allows; with a semver range, also every tag the registry
   lists (so a digest-only event, an out-of-order burst or a missed delivery still finds the newest release).
2. Pick: with a range, the highest version; without one, the last tag named. Nothing allowed -> `policy`; only
   digests and no range to pick a tag by -> `not resolvable`.
3. Resolve the tag to its digest at the registry (`not resolvable` when the tag is not there or the registry
   cannot be asked); with a minimum age, the image must be at least that old (`cooldown`).
4. Tenants (the receiver's instances, or all): those on a higher version are never downgraded (`downgrade` when no
   one else is left); those already on the tag are skipped (`duplicate` when everyone is); another running rollout
   or every remaining tenant busy -> `tenants held` (replay the delivery later). Tenants on hold
   (ccp.services.windows) are left out and named with their holds; `tenants held` when no one else is left.
5. Start the rollout of tag@digest over the remaining tenants, actor `webhook:<receiver>`. Tenants outside their
   maintenance window wait for it inside that rollout.

Reasons start with their category (`policy:`, `duplicate:`, `downgrade:`, `not resolvable:`, `cooldown:`,
`tenants held:`), which the Deliveries page colours.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ccp.extensions import db
from ccp.intake.events import Hint, storable
from ccp.intake.policy import newer
from ccp.intake.registry import ImageRef, RegistryClient, RegistryError
from ccp.models import ACTIVE_STATUSES, Instance, Receiver, Rollout, Upgrade, WebhookDelivery, as_utc, utcnow
from ccp.services import rollouts, windows
from ccp.services.errors import ServiceError
from ccp.services.receivers import policy_of


@dataclass(frozen=True)
class Decision:
    """What a set of deliveries led to: `started` (with the rollout) or `ignored`, the reason, what was resolved."""

    decision: str
    reason: str
    tag: str | None = None
    digest: str | None = None
    rollout_id: int | None = None


def apply(receiver: Receiver, pending: list[WebhookDelivery]) -> Decision:
    """Decide once for `pending` (deliveries of `receiver`) and record the decision on each of them."""
    hints = [Hint(**h) for d in pending for h in d.detail.get("hints", []) if isinstance(h, dict)]
    decision = decide(receiver, hints)
    note = f" ({len(pending)} deliveries coalesced)" if len(pending) > 1 else ""
    for delivery in pending:
        delivery.decision, delivery.decided_at = decision.decision, utcnow()
        delivery.reason = storable(decision.reason + note)
        delivery.rollout_id = decision.rollout_id
        if decision.tag:
            delivery.detail = {**delivery.detail, "resolved": {"tag": decision.tag, "digest": decision.digest}}
    db.session.commit()
    return decision


def decide(receiver: Receiver, hints: list[Hint]) -> Decision:
    """The decision for `hints` (see the module docstring); starts the rollout when there is one to start."""
    policy = policy_of(receiver)
    mine = [h for h in hints if h.repository == receiver.repository]
    if not mine:
        return Decision("ignored", f"unknown repository: this receiver listens for {receiver.repository}")
    named = list(dict.fromkeys(h.tag for h in mine if h.tag))
    allowed = [t for t in named if policy.refuses(t) is None]
    refused = [policy.refuses(t) for t in named if policy.refuses(t)]
    ref = ImageRef.parse(receiver.image)
    client = RegistryClient(ref, receiver.registry_username, receiver.registry_password())
    try:
        if policy.semver_range:
            best = policy.best(allowed + client.tags())
        else:
            best = allowed[-1] if allowed else None
        if best is None:
            if refused:
                return Decision("ignored", f"policy: {refused[0]}")
            if policy.semver_range:
                return Decision("ignored", f"policy: no tag of {ref} is in the range {policy.semver_range}")
            return Decision("ignored", "not resolvable: the event names only a digest; give the receiver a "
                            "version range so CCP can find the tag at the registry")
        digest = client.digest(best)
        if digest is None:
            return Decision("ignored", f"not resolvable: tag {best} is not at {ref}", best)
        if receiver.min_age_s:
            young = _too_young(client, digest, receiver.min_age_s)
            if young:
                return Decision("ignored", f"cooldown: {best} {young}", best, digest)
    except RegistryError as exc:
        return Decision("ignored", f"not resolvable: {exc}")
    return _release(receiver, best, digest, allowed)


def downgraded(tag: str, targets: list[Instance]) -> list[Instance]:
    """The tenants among `targets` that run a higher version than `tag` (rolling `tag` out would downgrade them)."""
    return [inst for inst in targets if newer(inst.image_tag, tag)]


def _too_young(client: RegistryClient, digest: str, min_age_s: int) -> str | None:
    created = client.created(digest)
    if created is None:
        return f"does not say when it was built, and the policy waits {min_age_s} s after a build"
    age = (utcnow() - as_utc(created)).total_seconds()
    if age < min_age_s:
        return f"was built {max(int(age), 0)} s ago; the policy waits {min_age_s} s (replay this delivery later)"
    return None


def _release(receiver: Receiver, tag: str, digest: str, named: list[str]) -> Decision:
    targets = _targets(receiver)
    if not targets:
        return Decision("ignored", "no tenants: the receiver's instances no longer exist", tag, digest)
    ahead = downgraded(tag, targets)
    todo = [inst for inst in targets if inst not in ahead and inst.image_tag != tag]
    if not todo:
        return Decision("ignored", _nothing_to_do(tag, digest, ahead, named), tag, digest)
    now = utcnow()
    held = [(inst, hold) for inst in todo for hold in [windows.active_hold(inst, now)] if hold is not None]
    todo = [inst for inst in todo if all(inst is not h for h, _ in held)]
    if not todo:
        return Decision("ignored", f"tenants held: every tenant to upgrade is on hold ({_holds(held)}); replay this "
                        "delivery when the holds end", tag, digest)
    running = db.session.execute(select(Rollout).filter_by(status="running")).scalars().first()
    if running is not None:
        if running.tag == tag:
            return Decision("ignored", f"duplicate: rollout #{running.id} is rolling out {tag} already", tag, digest,
                            running.id)
        return Decision("ignored", f"tenants held: rollout #{running.id} ({running.tag}) is running; replay this "
                        "delivery when it ends", tag, digest)
    busy = set(db.session.execute(select(Upgrade.instance_id).where(
        Upgrade.instance_id.in_([i.id for i in todo]), Upgrade.status.in_(ACTIVE_STATUSES))).scalars())
    if len(busy) == len(todo):
        return Decision("ignored", "tenants held: every tenant to upgrade has an upgrade in progress; replay this "
                        "delivery when they end", tag, digest)
    try:
        rollout = rollouts.start_rollout(tag, instances=[i.slug for i in todo], canary=receiver.canary,
                                         wave_size=receiver.wave_size, actor=f"webhook:{receiver.name}",
                                         source="webhook", image_digest=digest)
    except rollouts.RolloutConflict as exc:
        db.session.rollback()
        return Decision("ignored", f"tenants held: {exc.message}", tag, digest)
    except ServiceError as exc:  # e.g. Redis down: the rollout is recorded halted
        db.session.rollback()
        return Decision("ignored", f"not started: {exc.message}", tag, digest)
    left = f"; {len(ahead)} tenant(s) on a newer version left alone" if ahead else ""
    left += f"; {len(held)} held tenant(s) skipped ({_holds(held)})" if held else ""
    return Decision("started", f"rollout #{rollout.id}: {tag} ({digest[:19]}…) to {len(todo)} tenant(s){left}",
                    tag, digest, rollout.id)


def _holds(held: list) -> str:
    """'a: held until … by …: reason; b: …' (the first three; then how many more)."""
    shown = "; ".join(f"{inst.slug} {hold.sentence}" for inst, hold in held[:3])
    return shown + (f"; and {len(held) - 3} more" if len(held) > 3 else "")


def _nothing_to_do(tag: str, digest: str, ahead: list[Instance], named: list[str]) -> str:
    if ahead:
        return (f"downgrade: {tag} is older than {ahead[0].image_tag}, which {ahead[0].slug} runs (a downgrade is "
                "only started by hand, on the Rollouts page)")
    older = [t for t in named if newer(tag, t)]
    if older:
        return f"downgrade: {older[0]} is older than {tag}, which the tenants run"
    earlier = db.session.execute(select(Rollout.image_digest).where(
        Rollout.tag == tag, Rollout.image_digest.is_not(None)).order_by(Rollout.id.desc())).scalars().first()
    moved = f" (the tag now points to {digest[:19]}…; a Quick Upgrade pulls it)" if earlier and earlier != digest \
        else ""
    return f"duplicate: every targeted tenant runs {tag} already{moved}"


def _targets(receiver: Receiver) -> list[Instance]:
    stmt = select(Instance).order_by(Instance.slug)
    if receiver.instances:
        found = {i.slug: i for i in db.session.execute(stmt.where(Instance.slug.in_(receiver.instances))).scalars()}
        return [found[s] for s in receiver.instances if s in found]
    return list(db.session.execute(stmt).scalars())
