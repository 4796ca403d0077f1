"""WSGI entry point: `gunicorn app:app` (production) or `flask --app app run` (development)."""

import sys

from ccp.app import create_app
from ccp.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    print(f"ccp: configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
