"""The tenant's .env on its host: key names out, in-place patches in; values never leave this module."""
from __future__ import annotations

from pathlib import Path

from ccp.envfile.dotenv import EnvParseError, EnvPatchError, env_key_names, parse_env, plan_patch
from ccp.hostops.errors import BadRequest

ENV_FILE = ".env"


def read_env_text(path: Path) -> str | None:
    """Return the .env text, or None if there is no .env. Raises BadRequest if it is not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the tenant .env is not UTF-8 (byte {exc.start})") from None


def env_keys(path: Path) -> dict:
    """Return ``{"keys": [...], "exists": bool}`` for the .env at ``path``; raises BadRequest if it cannot be read."""
    text = read_env_text(path)
    if text is None:
        return {"keys": [], "exists": False}
    try:
        return {"keys": env_key_names(text), "exists": True}
    except EnvParseError as exc:
        raise BadRequest(f"the tenant .env is not valid: {exc}") from None


def plan_env_patch(path: Path, updates: object) -> tuple[str, str, list[str], list[str]]:
    """Compute (old_text, new_text, changed, appended) for ``updates``; nothing is written.

    Raises BadRequest for a bad update (message names the key, never the value) or an unreadable .env.
    """
    if not isinstance(updates, dict) or not updates:
        raise BadRequest("'set' must be a non-empty object of KEY: value")
    old = read_env_text(path) or ""
    try:
        new, changed, appended = plan_patch(old, updates)
    except (EnvPatchError, EnvParseError) as exc:
        raise BadRequest(str(exc)) from None
    return old, new, changed, appended


def secret_values(path: Path, min_len: int = 4) -> list[str]:
    """Return the .env values long enough to be worth hiding from command output (longest first)."""
    text = read_env_text(path)
    if not text:
        return []
    try:
        values = parse_env(text).values()
    except EnvParseError:
        return []
    return sorted({v for v in values if len(v) >= min_len}, key=len, reverse=True)
