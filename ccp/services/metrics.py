"""Prometheus metrics read from the database and Redis at scrape time (a custom collector, no in-process counters).

Because every number comes from the shared database and queue, any web process answers a scrape with the same
fleet-wide values, and nothing is lost when a process restarts.

Metrics:
  ccp_upgrades{kind,status}                          gauge: upgrade rows by kind and status
  ccp_upgrades_finished_total{kind,status}           counter: finished upgrades (final statuses only)
  ccp_upgrade_step_duration_seconds{step}            histogram over every finished step
  ccp_queue_jobs{state}                              gauge: RQ jobs queued / started / failed / deferred / scheduled
  ccp_agent_up{instance}                             gauge: 1 when the agent was seen within heartbeat_stale_s
  ccp_agent_last_seen_timestamp_seconds{instance}    gauge: unix time the agent was last seen (absent if never)
  ccp_instances                                      gauge: number of instances
  ccp_rollouts{status}                               gauge: rollouts by status (running, succeeded, halted, ...)
"""

from __future__ import annotations

import logging

from flask import Flask
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import case, func, select

from ccp.extensions import db
from ccp.models import FINAL_STATUSES, UPGRADE_KINDS, Instance, Rollout, Upgrade, UpgradeStep, as_utc, utcnow
from ccp.services.rollouts import FINAL as ROLLOUT_FINAL

log = logging.getLogger(__name__)

STEP_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
KNOWN_STATUSES = ("queued", "running", *FINAL_STATUSES)


class CcpCollector:
    """Collects CCP metrics from the database and Redis; must run inside the app context (a request)."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self):
        """Yield the metric families (each source fails on its own: a dead Redis does not hide DB metrics)."""
        with self.app.app_context():
            for source in (self._upgrades, self._steps, self._queue, self._agents, self._rollouts):
                try:
                    yield from source()
                except Exception:
                    db.session.rollback()
                    log.exception("metrics source %s failed", source.__name__)
                    err = GaugeMetricFamily("ccp_metrics_source_error", "1 when a metrics source failed",
                                            labels=["source"])
                    err.add_metric([source.__name__.strip("_")], 1)
                    yield err

    def _upgrades(self):
        rows = db.session.execute(
            select(Upgrade.kind, Upgrade.status, func.count()).group_by(Upgrade.kind, Upgrade.status)
        ).all()
        counts = {(k, s): n for k, s, n in rows}
        gauge = GaugeMetricFamily("ccp_upgrades", "Upgrades by kind and status", labels=["kind", "status"])
        finished = CounterMetricFamily("ccp_upgrades_finished", "Finished upgrades by kind and final status",
                                       labels=["kind", "status"])
        # Every known combination is exported (as 0 when absent) so rate() and alerts see a series from the start.
        kinds = sorted(set(UPGRADE_KINDS) | {k for k, _ in counts})
        statuses = list(KNOWN_STATUSES) + sorted({s for _, s in counts} - set(KNOWN_STATUSES))
        for kind in kinds:
            for status in statuses:
                n = counts.get((kind, status), 0)
                gauge.add_metric([kind, status], n)
                if status in FINAL_STATUSES:
                    finished.add_metric([kind, status], n)
        yield gauge
        yield finished

    def _steps(self):
        duration = _duration_seconds(UpgradeStep.started_at, UpgradeStep.finished_at)
        columns = [UpgradeStep.name, func.count(), func.coalesce(func.sum(duration), 0.0)]
        columns += [func.sum(case((duration <= b, 1), else_=0)) for b in STEP_BUCKETS]
        rows = db.session.execute(
            select(*columns)
            .filter(UpgradeStep.started_at.is_not(None), UpgradeStep.finished_at.is_not(None))
            .group_by(UpgradeStep.name)
        ).all()
        hist = HistogramMetricFamily("ccp_upgrade_step_duration_seconds", "Duration of finished upgrade steps",
                                     labels=["step"])
        for name, count, total, *cumulative in rows:
            buckets = [(_le(b), int(c or 0)) for b, c in zip(STEP_BUCKETS, cumulative, strict=True)]
            buckets.append(("+Inf", int(count)))
            hist.add_metric([name], buckets, float(total or 0.0))
        yield hist

    def _queue(self):
        from ccp.extensions import get_background_queue, get_queue

        gauge = GaugeMetricFamily("ccp_queue_jobs", "RQ jobs on CCP's queues by state (queue: main for upgrades, "
                                  "rollouts and the rest, background for scans)", labels=["queue", "state"])
        for name, queue in (("main", get_queue()), ("background", get_background_queue())):
            gauge.add_metric([name, "queued"], queue.count)
            gauge.add_metric([name, "started"], queue.started_job_registry.count)
            gauge.add_metric([name, "failed"], queue.failed_job_registry.count)
            gauge.add_metric([name, "deferred"], queue.deferred_job_registry.count)
            gauge.add_metric([name, "scheduled"], queue.scheduled_job_registry.count)
        yield gauge

    def _agents(self):

        stale_s = self.app.config["CCP"].heartbeat_stale_s
        now = utcnow()
        up = GaugeMetricFamily("ccp_agent_up", f"1 when the agent was seen in the last {stale_s:g} s",
                               labels=["instance"])
        seen = GaugeMetricFamily("ccp_agent_last_seen_timestamp_seconds", "When the agent was last seen",
                                 labels=["instance"])
        total = 0
        for slug, last_seen in db.session.execute(select(Instance.slug, Instance.last_seen_at).order_by(Instance.slug)):
            total += 1
            fresh = last_seen is not None and (now - as_utc(last_seen)).total_seconds() <= stale_s
            up.add_metric([slug], 1 if fresh else 0)
            if last_seen is not None:
                seen.add_metric([slug], as_utc(last_seen).timestamp())
        yield up
        yield seen
        yield GaugeMetricFamily("ccp_instances", "Number of instances", value=total)

    def _rollouts(self):
        counts = dict(db.session.execute(select(Rollout.status, func.count()).group_by(Rollout.status)).all())
        gauge = GaugeMetricFamily("ccp_rollouts", "Rollouts by status", labels=["status"])
        for status in ("running", *ROLLOUT_FINAL, *sorted(set(counts) - {"running", *ROLLOUT_FINAL})):
            gauge.add_metric([status], counts.get(status, 0))  # every known status, as 0 when absent
        yield gauge


def render_metrics(app: Flask) -> bytes:
    """The Prometheus text exposition of CCP's metrics (a fresh registry per scrape: no global state)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CcpCollector(app))
    return generate_latest(registry)


def _duration_seconds(start, end):
    """A SQL expression for end - start in seconds, on SQLite and PostgreSQL."""
    if db.engine.dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def _le(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) else f"{bound:.1f}"
