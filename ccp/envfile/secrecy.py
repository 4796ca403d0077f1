"""Which .env values may be shown, and the per-key comparison of two .env texts: the one masking rule.

The agent applies it before a value leaves the host (files/diff's `env` table, env/keys' `values`) and CCP applies it
again to whatever an agent sends (an old or foreign agent must not be trusted to have masked), so a value is shown
only when both sides agree it is not a secret.

A key is secret when
- the template set lists it in `secret_keys` (CCP sends those names along with the request), or
- its name has a secret-looking word (PASSWORD, SECRET, TOKEN, KEY, DSN, SALT, ...: see SECRET_WORDS), or
- either of its values looks like a credential itself: a URL with a password (`scheme://user:pass@host`), a PEM
  block, or a long random-looking string, or equals the value of a secret key in the same file.
Masking shows less rather than more: a wrongly masked value reads "changed"; a wrongly shown one is a leak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ccp.envfile.dotenv import EnvParseError, parse_env

# Name parts (split on `_`, `-`, `.` and case changes) that make a key secret.
SECRET_WORDS = frozenset({
    "PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "SECRETS", "TOKEN", "TOKENS", "KEY", "KEYS", "APIKEY", "PRIVATE",
    "CREDENTIAL", "CREDENTIALS", "CRED", "CREDS", "DSN", "SALT", "AUTH", "COOKIE", "SIGNING", "CERT", "PEM", "OTP",
    "SEED", "HMAC", "WEBHOOK",
})
_NAME_PART_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_URL_PASSWORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@")
_RANDOM_RE = re.compile(r"^[A-Za-z0-9+/=_\-~]{20,}$")  # no dots: versions and host names are not random
MIN_SHARED_SECRET_LEN = 4  # shorter secret values are not compared with other keys' values ("1", "yes"...)


def key_looks_secret(name: str) -> bool:
    """True when a part of the key's name is a secret-looking word (`DB_PASSWORD`, `stripeApiKey`, `JWT.SECRET`)."""
    return any(part.upper() in SECRET_WORDS for part in _NAME_PART_RE.findall(name))


def value_looks_secret(value: str) -> bool:
    """True for a URL carrying a password, a PEM block, or a long random-looking string (letters and digits mixed)."""
    if _URL_PASSWORD_RE.search(value) or "-----BEGIN" in value:
        return True
    return bool(_RANDOM_RE.match(value)) and any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def secret_key_names(*files: dict[str, str], secret_keys=()) -> set[str]:
    """The keys of the given .env files (one, or the old and the new) that are secret by name, by the set's list, or
    by value, including a key holding a secret key's value in any of them (see the module docstring)."""
    listed = set(secret_keys)
    items = [(k, v) for values in files for k, v in values.items()]
    secret = {k for k, v in items if k in listed or key_looks_secret(k) or value_looks_secret(v)}
    shared = {v for k, v in items if k in secret and len(v) >= MIN_SHARED_SECRET_LEN}
    return secret | {k for k, v in items if v in shared}


@dataclass(frozen=True)
class EnvChange:
    """One key of a .env comparison. `change` is added, removed, changed or unchanged; `old`/`new` are the values
    (None when absent on that side, and always None for a secret key)."""

    key: str
    change: str
    secret: bool
    old: str | None = None
    new: str | None = None

    def as_dict(self) -> dict:
        """The protocol and API form."""
        return {"key": self.key, "change": self.change, "secret": self.secret, "old": self.old, "new": self.new}


CHANGES = ("added", "removed", "changed", "unchanged")


def compare_env(old_text: str, new_text: str, secret_keys=()) -> tuple[EnvChange, ...] | None:
    """Per-key comparison of two .env texts, values of secret keys withheld; None when either does not parse.

    Keys in the order of the new file, then the removed ones."""
    try:
        old, new = parse_env(old_text), parse_env(new_text)
    except EnvParseError:
        return None
    secret = secret_key_names(old, new, secret_keys=secret_keys)
    rows = []
    for key in [*new, *(k for k in old if k not in new)]:
        before, after = old.get(key), new.get(key)
        change = "added" if before is None else "removed" if after is None else \
            "unchanged" if before == after else "changed"
        hide = key in secret
        rows.append(EnvChange(key, change, hide, None if hide else before, None if hide else after))
    return tuple(rows)


def checked_changes(rows: object, secret_keys=()) -> tuple[EnvChange, ...] | None:
    """EnvChanges from an agent's answer, the masking rule applied again on this side; None when absent or malformed.

    A value the rule calls secret is dropped whatever the agent sent (a key is then marked secret)."""
    if not isinstance(rows, list):
        return None
    listed = set(secret_keys)
    out = []
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("key"), str) or row.get("change") not in CHANGES:
            return None
        old, new = row.get("old"), row.get("new")
        values = [v for v in (old, new) if v is not None]
        if any(not isinstance(v, str) for v in values):
            return None
        key = row["key"]
        hide = bool(row.get("secret")) or key in listed or key_looks_secret(key) or any(map(value_looks_secret, values))
        out.append(EnvChange(key, row["change"], hide, None if hide else old, None if hide else new))
    # A value equal to a secret's elsewhere in the table cannot be compared here (secret values are withheld): the
    # agent did that with the file in hand.
    return tuple(out)


def checked_values(values: object, asked: tuple[str, ...] = ()) -> dict[str, str]:
    """An env/keys answer's `values`, kept only for keys asked for whose values the rule does not call secret."""
    if not isinstance(values, dict):
        return {}
    return {k: v for k, v in values.items()
            if k in asked and isinstance(v, str) and not key_looks_secret(k) and not value_looks_secret(v)}
