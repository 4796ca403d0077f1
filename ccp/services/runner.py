"""The upgrade job: runs one Upgrade's steps in order, records each, and rolls back by itself on failure.

Locking: the Upgrade row is the database lock (a partial unique index allows one queued/running row per instance);
the upgrade id is the fence every mutating agent call carries, so a stale job can never write over a newer one.
A heartbeat thread keeps `heartbeat_at` fresh; the reaper marks a job that stopped beating `interrupted`.
Every commit of the job goes through `_commit`, which announces the change to the polled status widgets.

Hook and backup steps (pre_upgrade, backup, post_upgrade, restore_data) live in ccp.services.hook_steps.

Step output: a step records its output tail when it ends, and, while it runs, every line the runner learns on the
way (`Run.say`): the command a compose/script step runs, and each new observation of the verify step (services
starting, a health URL not answering yet, the monitor window begun). The output of `docker compose` and of
`scripts/upgrade.sh` is recorded as the command writes it (every STREAM_FLUSH_S at most) when the host streams it
(capability output.stream: the agent answers JSON lines, the local driver passes lines on); an older agent's
arrives when the command returns.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

from flask import current_app

from ccp.services.changes import announce
from ccp.drivers import DriverError, driver_for
from ccp.extensions import db
from ccp.models import Instance, Upgrade, UpgradeStep, utcnow
from ccp.protocol import IMAGES_CAPABILITY, STREAM_CAPABILITY
from ccp.services import hook_steps
from ccp.services.audit import record
from ccp.services.hook_steps import HookFailed
from ccp.services.plan import build_plan, record_release
from ccp.services.rollout_queue import upgrade_ended
from ccp.services.scans import release_image_digest
from ccp.services.upgrades import CAPS_BY_KIND, ROLLBACK_STEPS, UpgradeError, check_agent
from ccp.services.verify import VerifyFailed, verify_tenant

log = logging.getLogger(__name__)
TAIL_CHARS = 4000
STREAM_FLUSH_S = 0.5  # a streaming command's output is written to the step at most this often


def _commit(upgrade_id: int) -> None:
    """Commit the job's changes to upgrade `upgrade_id` and its steps, then announce them (ccp.services.changes)."""
    db.session.commit()
    announce(upgrade_id)


class StepFailed(Exception):
    """A step failed; the message is the cause shown to operators."""


class Cancelled(Exception):
    """An operator asked the upgrade to stop."""


class Run:
    """State of one running upgrade: its row, driver, the snapshots taken so far, and a secret masker."""

    def __init__(self, upgrade: Upgrade) -> None:
        self.upgrade = upgrade
        self.instance: Instance = upgrade.instance
        self.settings = current_app.config["CCP"]
        self.driver = driver_for(self.instance, self.settings)
        self.snapshots: list[str] = []  # restore order: newest first
        self.runtime_touched = False
        self._secrets = sorted((v for v in self.instance.decrypted_secrets().values() if len(v) >= 4),
                               key=len, reverse=True)

    def mask(self, text: str | None) -> str:
        """Replace every held secret value in `text` and keep only its tail."""
        text = (text or "")[-TAIL_CHARS:]
        for value in self._secrets:
            text = text.replace(value, "********")
        return text

    def step_row(self, name: str) -> UpgradeStep:
        for step in self.upgrade.steps:
            if step.name == name:
                return step
        step = UpgradeStep(position=len(self.upgrade.steps), name=name)
        self.upgrade.steps.append(step)
        return step

    @contextmanager
    def step(self, name: str, *, cancellable: bool = True):
        """Record a step: running -> succeeded/failed with timings and the masked output tail.

        Forward steps first honour a pending cancel; rollback steps are not cancellable (they restore safety).
        """
        if cancellable:
            self.check_cancel()
        row = self.step_row(name)
        row.status, row.started_at, row.output_tail = "running", utcnow(), None
        _commit(self.upgrade.id)
        box = {"output": "", "row": row}
        try:
            yield box
        except Exception as exc:
            row.status, row.finished_at = "failed", utcnow()
            row.output_tail = self.mask(f"{box['output']}\n{exc}".strip())
            _commit(self.upgrade.id)
            raise
        row.status, row.finished_at, row.output_tail = "succeeded", utcnow(), self.mask(box["output"])
        _commit(self.upgrade.id)

    def say(self, box: dict, line: str) -> None:
        """Add `line` to the running step's output and record it now (masked), so the status widget shows it while
        the step runs. A line equal to the last one is not repeated (and not written again)."""
        lines = box["output"].split("\n") if box["output"] else []
        if lines and lines[-1] == line:
            return
        box["output"] = "\n".join([*lines, line])
        box["row"].output_tail = self.mask(box["output"])
        _commit(self.upgrade.id)

    def verify(self, box: dict) -> None:
        """The verify step's work: its observations recorded as they come, then the report's lines not said yet."""
        report = verify_tenant(self.driver, self.instance, self.settings, progress=lambda line: self.say(box, line))
        said = box["output"].split("\n") if box["output"] else []
        box["output"] = "\n".join([*said, *(line for line in report.split("\n") if line not in said)])

    def skip(self, name: str, why: str) -> None:
        row = self.step_row(name)
        row.status, row.output_tail = "skipped", why
        _commit(self.upgrade.id)

    def check_cancel(self) -> None:
        db.session.refresh(self.upgrade, ["cancel_requested"])
        if self.upgrade.cancel_requested:
            raise Cancelled("cancelled by an operator")

    def compose(self, box: dict, action: str) -> dict:
        result = self.command(box, f"docker compose {action}",
                              lambda out: self.driver.compose(action, self.settings.step_deadline_s, out))
        if not result.get("ok"):
            raise StepFailed(f"docker compose {action} failed ({_why(result)})")
        return result

    def command(self, box: dict, label: str, call) -> dict:
        """Run a host command, `call(on_output)`: its output is recorded as it is written when the host streams it
        (output.stream), at most every STREAM_FLUSH_S; else it arrives when the command ends. The step's output is
        then the command line and the host's (masked) tail."""
        streams = STREAM_CAPABILITY in (self.instance.agent_capabilities or ())
        self.say(box, f"$ {label}  (deadline {self.settings.step_deadline_s:g} s"
                      + (")" if streams else "; its output arrives when it ends)"))
        result = call(self._live_output(box) if streams else None)
        box["output"] = f"$ {label}\n{result.get('output_tail') or ''}".rstrip("\n")
        return result

    def _live_output(self, box: dict):
        flushed = [0.0]

        def on_output(text: str) -> None:
            box["output"] = (box["output"] + ("" if box["output"].endswith("\n") else "\n") + text)[-2 * TAIL_CHARS:]
            if time.monotonic() - flushed[0] >= STREAM_FLUSH_S:
                flushed[0] = time.monotonic()
                box["row"].output_tail = self.mask(box["output"].rstrip("\n"))
                _commit(self.upgrade.id)
        return on_output


def run_upgrade(upgrade_id: int) -> str:
    """Run the upgrade with this id to a final status and return it. Never raises for upgrade failures."""
    claimed = db.session.execute(
        db.update(Upgrade).where(Upgrade.id == upgrade_id, Upgrade.status == "queued")
        .values(status="running", started_at=utcnow(), heartbeat_at=utcnow())
    ).rowcount
    _commit(upgrade_id)
    upgrade = db.session.get(Upgrade, upgrade_id)
    if upgrade is None or not claimed:
        return upgrade.status if upgrade else "missing"
    with _heartbeat(current_app._get_current_object(), upgrade_id):
        run = None
        try:
            run = Run(upgrade)
            _check_agent_as_first_step(run)
            {"release": _release, "quick": _quick, "full": _full, "restore": _restore}[upgrade.kind](run)
            _finish(upgrade, "succeeded")
        except Cancelled as exc:
            _fail_or_roll_back(run, upgrade, f"{exc}", final_if_clean="cancelled")
        except (StepFailed, HookFailed, VerifyFailed, DriverError, UpgradeError) as exc:
            _fail_or_roll_back(run, upgrade, _message(exc))
        except Exception as exc:  # noqa: BLE001 - an unexpected bug must still end in a recorded, final state
            log.exception("upgrade %s crashed", upgrade_id)
            db.session.rollback()
            _fail_or_roll_back(run, upgrade, f"internal error: {type(exc).__name__}")
    return upgrade.status


def _check_agent_as_first_step(run: Run) -> None:
    """Ask the agent for its capabilities; a failure is recorded on the first step, so the UI shows where it stopped."""
    try:
        check_agent(run.instance, run.driver, CAPS_BY_KIND[run.upgrade.kind])
    except UpgradeError as exc:
        first = run.upgrade.steps[0]
        first.status, first.started_at, first.finished_at = "failed", utcnow(), utcnow()
        first.output_tail = run.mask(_message(exc))
        _commit(run.upgrade.id)
        raise


def _release(run: Run) -> None:
    upgrade, instance, driver = run.upgrade, run.instance, run.driver
    with run.step("render") as box:
        plan = build_plan(instance, upgrade.to_tag, driver, upgrade.image_digest)
        record_release(upgrade, plan)
        counts = plan.summary()
        box["output"] = (f"rendered {len(plan.files)} files from set {plan.set_name} {plan.set_version}: "
                         f"{counts['modified']} modified, {counts['created']} created, {counts['unchanged']} unchanged")
    with run.step("check_plan") as box:
        if upgrade.plan_hash and upgrade.plan_hash != plan.plan_hash:
            raise StepFailed("tenant changed since preview (plan hash differs); nothing written — preview again")
        if plan.coverage.get("missing"):
            raise StepFailed("compose needs variables the tenant's .env lacks: " + ", ".join(plan.coverage["missing"]))
        box["output"] = f"plan {plan.plan_hash[:12]} " + ("matches the preview" if upgrade.plan_hash else "recorded")
        upgrade.plan_hash = plan.plan_hash
        hook_steps.check_caps(run)  # a set with hooks or a backup needs an agent that runs them
    hook_steps.pre_upgrade(run, plan.files)
    hook_steps.backup(run, plan.files)
    changed = plan.changed_files()
    if changed:
        with run.step("write") as box:
            result = driver.write_files(changed, fence=upgrade.id)
            run.snapshots.insert(0, result["snapshot_id"])
            upgrade.snapshot_id = result["snapshot_id"]
            box["output"] = f"wrote {', '.join(sorted(changed))} (snapshot {result['snapshot_id']})"
    else:
        run.skip("write", "every file already matches the release")
    if plan.env_patch:
        with run.step("env_patch") as box:
            # Joining the write's snapshot makes one restore undo both the files and the .env patch.
            result = driver.env_patch(plan.env_patch, fence=upgrade.id, snapshot_id=upgrade.snapshot_id)
            if result["snapshot_id"] not in run.snapshots:
                run.snapshots.insert(0, result["snapshot_id"])
            box["output"] = (f"set {', '.join(sorted(plan.env_patch))} in .env "
                             f"(changed: {', '.join(result.get('changed', [])) or 'none'}, "
                             f"appended: {', '.join(result.get('appended', [])) or 'none'})")
    else:
        run.skip("env_patch", "provisioned tenant: .env is rendered in full" if not instance.is_registered
                 else "no CCP-managed keys")
    _pull_up_verify(run)
    hook_steps.post_upgrade(run, plan.files)
    instance.image_tag = upgrade.to_tag


def _restore(run: Run) -> None:
    """Operator-confirmed data restore (ccp.services.upgrades.start_restore): the set's restore hook, then up, verify.
    Nothing to roll back to: a failure leaves the instance marked as needing attention."""
    hook_steps.restore_data(run)
    with run.step("up") as box:
        run.runtime_touched = True
        run.compose(box, "up")
    with run.step("verify") as box:
        run.verify(box)


def _quick(run: Run) -> None:
    _pull_up_verify(run)


def _full(run: Run) -> None:
    with run.step("script") as box:
        run.runtime_touched = True
        result = run.command(box, "scripts/upgrade.sh",
                             lambda out: run.driver.run_script("upgrade", run.settings.step_deadline_s, out))
        if not result.get("ok"):
            raise StepFailed(f"scripts/upgrade.sh failed (exit code {result.get('exit_code')})")
    with run.step("verify") as box:
        run.verify(box)


def _pull_up_verify(run: Run) -> None:
    with run.step("pull") as box:
        run.compose(box, "pull")
    with run.step("up") as box:
        run.runtime_touched = True
        run.compose(box, "up")
    with run.step("verify") as box:
        run.verify(box)
        _note_running_digest(run, box)


def _note_running_digest(run: Run, box: dict) -> None:
    """Record the digest the tenant now runs for its release image (agents with images.digests), so a Quick Upgrade
    or a release without a receiver's digest can be rolled back to exactly this image; a digest the upgrade already
    carries is kept. Best effort: a failure to ask changes nothing."""
    if IMAGES_CAPABILITY not in (run.instance.agent_capabilities or ()):
        return
    try:
        found = release_image_digest(run.instance, run.upgrade.to_tag or "", run.driver.image_digests)
    except DriverError:
        return
    if found:
        image, digest = found
        run.upgrade.image_digest = run.upgrade.image_digest or digest
        box["output"] += f"\nrunning {image}:{run.upgrade.to_tag} @ {digest}"


def _fail_or_roll_back(run: Run | None, upgrade: Upgrade, cause: str, final_if_clean: str = "failed") -> None:
    """Nothing changed yet -> failed/cancelled. Files or runtime changed -> restore, up, verify -> rolled_back."""
    for step in upgrade.steps:
        if step.status in ("pending", "running"):
            step.status = "skipped" if step.status == "pending" else "failed"
    if run is None or not (run.snapshots or run.runtime_touched):
        _finish(upgrade, final_if_clean, cause)
        return
    if not run.snapshots:  # quick/full: the runtime changed but CCP holds no earlier state to go back to
        run.instance.attention = f"upgrade #{upgrade.id} failed after changing containers: {cause}"
        _finish(upgrade, final_if_clean, cause)
        return
    upgrade.error = cause
    _commit(upgrade.id)
    try:
        with run.step("restore", cancellable=False) as box:
            restored = [run.driver.restore_snapshot(sid, fence=upgrade.id) for sid in run.snapshots]
            box["output"] = "restored " + ", ".join(sorted({p for r in restored for p in r.get("restored", [])}))
        if run.runtime_touched:
            with run.step("rollback_up", cancellable=False) as box:
                run.compose(box, "up")
            with run.step("rollback_verify", cancellable=False) as box:
                run.verify(box)
        else:
            for name in ROLLBACK_STEPS[1:]:
                run.skip(name, "containers were not changed")
    except Exception as exc:  # noqa: BLE001 - any rollback failure needs an operator; never retry blindly
        run.instance.attention = f"rollback of upgrade #{upgrade.id} failed: {_message(exc)} — needs an operator"
        _finish(upgrade, "rollback_failed", f"{cause}; rollback failed: {_message(exc)}")
        return
    status = "cancelled" if final_if_clean == "cancelled" else "rolled_back"
    _finish(upgrade, status, f"{cause} — rolled back to the previous version")


def _finish(upgrade: Upgrade, status: str, error: str | None = None) -> None:
    upgrade.status, upgrade.finished_at = status, utcnow()
    if error:
        upgrade.error = error[:2000]
    if status == "succeeded":
        upgrade.instance.attention = None
    _commit(upgrade.id)
    record(upgrade.actor, f"upgrade.finish.{upgrade.kind}", instance=upgrade.instance, plan_hash=upgrade.plan_hash,
           result=status, detail={"upgrade_id": upgrade.id, "to_tag": upgrade.to_tag})
    upgrade_ended(upgrade)  # a rollout it belongs to may move on


def _why(result: dict) -> str:
    if result.get("timed_out"):
        return "timed out"
    if result.get("signal"):
        return f"killed by signal {result['signal']}"
    return f"exit code {result.get('exit_code')}"


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


@contextmanager
def _heartbeat(app, upgrade_id: int, every_s: float = 5.0):
    """Keep upgrades.heartbeat_at fresh from a side thread while the job runs."""
    stop = threading.Event()

    def beat() -> None:
        with app.app_context():
            while not stop.wait(every_s):
                try:
                    with db.engine.begin() as conn:
                        conn.execute(db.update(Upgrade).where(Upgrade.id == upgrade_id, Upgrade.status == "running")
                                     .values(heartbeat_at=utcnow()))
                except Exception:  # noqa: BLE001 - a missed beat is tolerated; the reaper allows 90 s
                    log.warning("heartbeat for upgrade %s failed", upgrade_id)
            db.session.remove()

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{upgrade_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every_s + 1)

