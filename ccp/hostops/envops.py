"""The tenant's .env on its host: key names out, in-place patches in.

Values leave this module only through ccp.envfile.secrecy's rule (non-secret values of keys CCP asks for by name)."""
from __future__ import annotations

from pathlib import Path

from ccp.envfile.dotenv import EnvParseError, EnvPatchError, env_key_names, parse_env, plan_patch
from ccp.envfile.secrecy import secret_key_names
from ccp.hostops.errors import BadRequest
from ccp.rules import VAR_NAME

ENV_FILE = ".env"


def read_env_text(path: Path) -> str | None:
    """Return the .env text, or None if there is no .env. Raises BadRequest if it is not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the tenant .env is not UTF-8 (byte {exc.start})") from None


MAX_VALUE_KEYS = 50


def checked_key_list(names: object, what: str, limit: int = 500) -> list[str]:
    """A request's list of .env key names, or BadRequest saying what is wrong with it."""
    if names is None:
        return []
    if not isinstance(names, list) or len(names) > limit:
        raise BadRequest(f"'{what}' must be a list of at most {limit} variable names")
    for name in names:
        if not isinstance(name, str) or not VAR_NAME.fullmatch(name):
            raise BadRequest(f"'{what}' holds {str(name)[:60]!r}, which is not a variable name")
    return names


def env_keys(path: Path, values_of: object = None) -> dict:
    """Return ``{"keys": [...], "exists": bool, "values": {...}}`` for the .env at ``path``.

    ``values`` holds the values of the keys named in ``values_of`` that the file sets and that are not secret by
    ccp.envfile.secrecy's rule (CCP asks for the keys it manages, e.g. IMAGE_TAG). Raises BadRequest if the file
    cannot be read or ``values_of`` is not a short list of variable names."""
    wanted = checked_key_list(values_of, "value", MAX_VALUE_KEYS)
    text = read_env_text(path)
    if text is None:
        return {"keys": [], "exists": False, "values": {}}
    try:
        keys, parsed = env_key_names(text), parse_env(text)
    except EnvParseError as exc:
        raise BadRequest(f"the tenant .env is not valid: {exc}") from None
    hidden = secret_key_names(parsed)
    return {"keys": keys, "exists": True,
            "values": {k: parsed[k] for k in wanted if k in parsed and k not in hidden}}


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
