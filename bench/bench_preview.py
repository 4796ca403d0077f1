"""How long a release preview takes through a real agent on loopback, and where the time goes.

Two tenants of the default set at v1 (one provisioned, one registered), each served by a real agent (ccp.agent, in a
thread of this process, signed HTTP on 127.0.0.1) with the dry-run runtime; CCP on SQLite in a temporary instance
folder. Each round previews v2 for both tenants through the upgrades service, as the UI and the API do. The parts
are timed apart in the same rounds: rendering the set, the agent's health call, its files/diff call (and env/keys
for the registered tenant), and parsing the compose file for env coverage the first time (the preview itself reuses
the parse of a text it has seen: ccp.envfile.compose_refs.compose_variables).

Goal (issue #17): preview p50 <= 20 ms for both kinds of tenant.

    python3 bench/bench_preview.py [--rounds 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ccp-bench-preview-"))
    os.environ.update(CCP_INSTANCE_DIR=str(tmp / "instance"), CCP_DATABASE_URL=f"sqlite:///{tmp}/ccp.db",
                      CCP_SECRET_KEY="bench-secret-key-" + "x" * 32)
    from types import SimpleNamespace

    from ccp.app import create_app
    from ccp.envfile.compose_refs import _compose_variables as compose_variables
    from ccp.extensions import db
    from ccp.models import Instance
    from ccp.rendering.render import render_instance
    from ccp.services import upgrades
    from ccp.services.instances import create_instance
    from ccp.drivers import driver_for
    from tests import tenants

    app = create_app()
    agents = []
    with app.app_context():
        db.create_all()
        made = {}
        for kind in ("provisioned", "registered"):
            registered = kind == "registered"
            slug = f"bench-{kind[:3]}"
            install = tmp / "hosts" / slug
            data = {"slug": slug, "name": slug, "domain": f"{slug}.example.test", "driver": "local",
                    "install_dir": str(install), "compose_project": slug.replace("-", ""),
                    "is_registered": registered, "image_tag": "v1"}
            secrets = None if registered else tenants.provisioned_secrets()
            if secrets:
                data["secrets"] = secrets
            shape = SimpleNamespace(**{**data, "vars": {}, "health_urls": [], "template_set": "default"})
            tenants.make_tenant_files(install, shape, "v1", secrets=secrets,
                                      registered_env=tenants.REGISTERED_ENV_HEAD.format(canary=tenants.CANARY)
                                      if registered else None)
            agent = tenants.start_agent(tmp / "agents" / slug, {slug: install}, data["compose_project"])
            agents.append(agent)
            data.update(driver="remote", agent_url=agent.url, agent_key_id=agent.key_id, agent_key=agent.key)
            made[kind] = create_instance(data, actor="bench").id

        rows = []
        for kind, inst_id in made.items():
            inst = db.session.get(Instance, inst_id)
            settings = app.config["CCP"]
            upgrades.preview_release(inst, "v2")  # warm: imports, template cache, first connection
            total, render, health, diff, coverage = [], [], [], [], []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                upgrades.preview_release(inst, "v2")
                total.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                result = render_instance(inst, "v2", secrets=inst.decrypted_secrets())
                render.append(time.perf_counter() - t0)
                driver = driver_for(inst, settings)
                t0 = time.perf_counter()
                driver.health()
                health.append(time.perf_counter() - t0)
                files = dict(result.files)
                t0 = time.perf_counter()
                driver.diff_files(files)
                if inst.is_registered:
                    driver.env_keys(("IMAGE_TAG",))
                diff.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                compose_variables.__wrapped__(files["docker-compose.yml"])  # uncached: a text seen the first time
                coverage.append(time.perf_counter() - t0)
            rows.append((kind, total, render, health, diff, coverage))
    for agent in agents:
        agent.stop()

    print(f"\nRelease preview through a real agent on loopback, default set, {args.rounds} rounds "
          f"(p50 / p95 in ms; goal: preview p50 <= 20 ms)\n")
    header = ("tenant", "preview", "render", "health call", "diff call(s)", "compose parse")
    print("".join(f"{h:>16}" for h in header))
    for kind, *parts in rows:
        cells = [f"{p50:.1f} / {p95:.1f}" for p50, p95 in map(_ms, parts)]
        print(f"{kind:>16}" + "".join(f"{c:>16}" for c in cells))
    for kind, total, *_ in rows:
        verdict = "meets" if statistics.median(total) * 1000 <= 20 else "MISSES"
        print(f"{kind}: p50 {statistics.median(total) * 1000:.1f} ms -> {verdict} the 20 ms goal")


if __name__ == "__main__":
    main()
