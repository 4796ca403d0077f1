"""The tenant rulebook: what a valid instance field and image tag look like, written once.

The instances service checks every create/update (API, UI, CLI) against these rules, and rendering checks the same
rules again as its inner guard, so anything that can be saved can also be rendered. All patterns are ASCII and
matched whole (`fullmatch`): no trailing newline, no Unicode digits or look-alike letters slip through. Lengths match
the database columns, so PostgreSQL never has to refuse a value.

Each `check_*` function returns the cleaned value or raises RuleError with a message that names the field, never
a secret value. This module imports nothing from CCP: models, services, rendering and the web layer all use it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# docker compose: lowercase letters, digits, '-' and '_', starting with a letter or digit; 63 like the slug
# (the slug is the default project name, and DNS-label length keeps container names readable).
PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # the agent's own rule for key ids (ccp.agent.config)
ASCII_ID = re.compile(r"[0-9]{1,10}")
DIGEST = re.compile(r"sha(256:[0-9a-f]{64}|512:[0-9a-f]{128})")  # an OCI content digest, as registries answer it
PLAN_HASH = re.compile(r"[0-9a-f]{64}")  # a preview's plan hash: SHA-256, lowercase hex
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab allowed; newlines break .env files and configs
RESERVED_SLUGS = frozenset({"new", "add", "edit", "search"})  # UI paths under /instances/

MAX_ID = 2**31 - 1  # ids are 32-bit integer columns: a larger number is not an id (404, not a database error)
MAX_NAME = 200
MAX_URL = 500
MAX_INSTALL_DIR = 1000
MAX_VALUE = 4000  # one var or secret value
MAX_HEALTH_URLS = 20
MAX_MONITOR_WINDOW_S = 3600


class RuleError(ValueError):
    """A value breaks a tenant rule; the message says which rule (values of secrets are never quoted)."""


def check_slug(value: object) -> str:
    """A tenant slug: 1-63 of a-z 0-9 '-', starting with a letter or digit, not a reserved page name."""
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise RuleError("use 1-63 lowercase letters, digits or '-', starting with a letter or digit")
    if value in RESERVED_SLUGS:
        raise RuleError(f"{value!r} is reserved (it names a page)")
    return value


def check_project(value: object) -> str:
    """A docker compose project name: 1-63 of a-z 0-9 '_' '-', starting with a letter or digit."""
    if not isinstance(value, str) or not PROJECT.fullmatch(value):
        raise RuleError("use 1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit")
    return value


def check_tag(value: object) -> str:
    """A docker image tag: 1-128 of A-Z a-z 0-9 '_' '.' '-', not starting with '.' or '-'."""
    if not isinstance(value, str) or not TAG.fullmatch(value):
        shown = value if isinstance(value, str) and len(value) <= 140 else type(value).__name__
        raise RuleError(f"invalid image tag {shown!r}: use letters, digits, '_', '.', '-' "
                        "(max 128, no leading '.' or '-')")
    return value


def check_digest(value: object) -> str:
    """An image digest: sha256:<64 hex> (or sha512:<128 hex>), lowercase, as a registry's Docker-Content-Digest."""
    if not isinstance(value, str) or not DIGEST.fullmatch(value):
        raise RuleError("invalid image digest: expected sha256: followed by 64 lowercase hex digits")
    return value


def check_domain(value: object) -> str:
    """The tenant's public domain: a lowercase DNS name (required: nginx configs and URLs are built from it)."""
    if not isinstance(value, str) or not value:
        raise RuleError("required: the tenant's public domain, e.g. tenant.example.com")
    if not DOMAIN.fullmatch(value):
        raise RuleError("must be a lowercase DNS name (letters, digits, '-' and dots), at most 253 characters")
    return value


def check_name(value: object) -> str:
    """A display name: 1-200 characters, no newline or control character."""
    if not isinstance(value, str) or not value.strip():
        raise RuleError("required")
    return check_text(value, MAX_NAME)


def check_text(value: object, limit: int = MAX_VALUE) -> str:
    """A one-line text value: a string of at most `limit` characters without newlines or control characters."""
    if not isinstance(value, str):
        raise RuleError("must be a string")
    if len(value) > limit:
        raise RuleError(f"at most {limit} characters")
    if CONTROL_CHARS.search(value):
        raise RuleError("contains a newline or control character")
    if _has_surrogate(value):
        raise RuleError("contains an unpaired surrogate (not valid Unicode text)")
    return value


def check_http_url(value: object, what: str = "URL") -> str:
    """An http(s) URL with a host and no `user:password@` part (credentials in URLs end up in logs and pages)."""
    if not isinstance(value, str):
        raise RuleError(f"{what} must be an http(s):// URL")
    check_text(value, MAX_URL)
    if not value.isascii():
        raise RuleError(f"{what} must be ASCII (write international domains in their xn-- form)")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise RuleError(f"{what} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RuleError(f"{what} must be an http(s):// URL")
    if "@" in parts.netloc:
        raise RuleError(f"{what} must not carry a user or password (user:password@); the agent has its own key")
    return value


def check_key_id(value: object) -> str:
    """An agent key id: 1-64 of A-Z a-z 0-9 '_' '.' '-' (the agent refuses any other)."""
    if not isinstance(value, str) or not KEY_ID.fullmatch(value):
        raise RuleError("use 1-64 of A-Z a-z 0-9 '_' '.' '-'")
    return value


def check_install_dir(value: object) -> str:
    """An absolute path on the tenant host (at most 1000 characters, one line)."""
    value = check_text(value, MAX_INSTALL_DIR) if isinstance(value, str) else value
    if not isinstance(value, str) or not value.startswith("/"):
        raise RuleError("must be an absolute path")
    return value


def check_var_name(value: object) -> str:
    """A template var or secret name: a shell-style identifier of at most 128 characters."""
    if not isinstance(value, str) or not VAR_NAME.fullmatch(value):
        raise RuleError("names use letters, digits and '_' (not starting with a digit), at most 128")
    return value


def check_values(values: object, kind: str) -> dict[str, str]:
    """A mapping NAME -> one-line string value (vars or secrets). Messages name keys, never values."""
    if not isinstance(values, dict):
        raise RuleError(f"must map NAME to a string value ({kind})")
    out = {}
    for key, value in values.items():
        try:
            check_var_name(key)
        except RuleError as exc:
            raise RuleError(f"{_shown_name(key)}: {exc}") from None
        if not isinstance(value, str):
            raise RuleError(f"{key}: the value must be a string")
        try:
            check_text(value)
        except RuleError as exc:
            raise RuleError(f"{key}: {exc}") from None
        out[key] = value
    return out


def check_health_urls(values: object) -> list[str]:
    """Up to 20 http(s) URLs that must answer after an upgrade."""
    if not isinstance(values, list):
        raise RuleError("must be a list of http(s):// URLs")
    if len(values) > MAX_HEALTH_URLS:
        raise RuleError(f"at most {MAX_HEALTH_URLS} URLs")
    for number, url in enumerate(values, 1):
        check_http_url(url, f"URL {number}")
    return list(values)


def check_monitor_window(value: object) -> int | None:
    """Seconds the health URLs must keep answering after an upgrade (None: the global CCP_MONITOR_WINDOW_S)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MONITOR_WINDOW_S:
        raise RuleError(f"must be a whole number of seconds from 0 to {MAX_MONITOR_WINDOW_S}, or empty for the default")
    return value


def check_plan_hash(value: object) -> str:
    """A preview's plan hash: 64 lowercase hex characters."""
    if not isinstance(value, str) or not PLAN_HASH.fullmatch(value):
        raise RuleError("must be a preview's plan hash (64 lowercase hex characters)")
    return value


def parse_id(text: str) -> int | None:
    """An id from URL or query text: ASCII digits within the 32-bit column range, else None."""
    if not isinstance(text, str) or not ASCII_ID.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _shown_name(key: object) -> str:
    return repr(key[:40]) if isinstance(key, str) else type(key).__name__
