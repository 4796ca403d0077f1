"""The CCP application factory: settings, extensions, blueprints and CLI, bound to one Flask app."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from flask import Flask

def _top_folder(name: str) -> str:
    """Find a top-level folder (templates/, static/, migrations/) in a source checkout, editable or regular install."""
    candidates = [
        Path(__file__).resolve().parent.parent / name,  # source checkout / editable install
        Path(sys.prefix) / "share" / "ccp" / name,  # wheel install (data-files)
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return str(candidate)
    raise RuntimeError(f"CCP cannot find its {name}/ folder (looked in {', '.join(map(str, candidates))})")


def create_app(config: dict | None = None) -> Flask:
    """Build the Flask app: settings from the environment (overridden by `config`), extensions, blueprints, CLI.

    Raises ccp.config.ConfigError with a one-line message naming the bad variable.
    """
    from ccp.config import Settings
    from ccp.extensions import csrf, db, login_manager, migrate, redis_store
    from ccp.vault import Vault

    overrides = dict(config or {})
    environ = overrides.pop("environ", None)
    settings = Settings.from_env(environ)
    for key, value in overrides.pop("settings", {}).items():
        setattr(settings, key, value)
    settings.validate()
    settings.ensure_generated_secrets()

    app = Flask(
        "ccp",  # the package (not this module): the app name and root path stay "ccp"
        template_folder=_top_folder("templates"),
        static_folder=_top_folder("static"),
        instance_path=str(settings.instance_dir),
    )
    app.config.update(settings.to_flask())
    app.config.update(overrides)
    if settings.proxy_hops:
        # Behind N trusted reverse proxies: take scheme/host/client address from X-Forwarded-*, so TLS is seen
        # (Secure cookies, HSTS) and rate limits key on the real client.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops,
                                x_host=settings.proxy_hops)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app.extensions["ccp_vault"] = Vault(settings.encryption_keys)
    db.init_app(app)
    migrate.init_app(app, db, directory=_top_folder("migrations"), render_as_batch=True, compare_type=True)
    redis_store.init_app(app)
    login_manager.init_app(app)
    csrf.init_app(app)

    from ccp import models  # noqa: F401 - register models with the metadata
    from ccp import api, bodies, converters, web
    from ccp.web import security

    converters.init_app(app)
    bodies.init_app(app)
    web.init_app(app)
    api.init_app(app)
    security.init_app(app)
    return app
