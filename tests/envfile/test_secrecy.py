"""The one masking rule for .env values (ccp.envfile.secrecy): which keys are secret, the per-key comparison, and
the re-check CCP applies to what an agent sends."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from ccp.envfile.secrecy import (EnvChange, checked_changes, checked_values, compare_env, key_looks_secret,
                                 secret_key_names, value_looks_secret)


def test_secret_names_by_word_not_by_substring():
    for name in ("DB_PASSWORD", "POSTGRES_PASSWORD", "jwtSecret", "stripeApiKey", "APIKey", "SENTRY_DSN", "api-token",
                 "SMTP_PASS", "AWS_ACCESS_KEY_ID", "SESSION_SECRET", "COOKIE_SALT", "TLS_PRIVATE_PEM"):
        assert key_looks_secret(name), name
    for name in ("IMAGE_TAG", "DOMAIN", "MONKEY_MODE", "KEYCLOAK_URL", "PASSENGER_COUNT", "TOKENIZER", "LOG_LEVEL"):
        assert not key_looks_secret(name), name


def test_secret_values_by_shape():
    assert value_looks_secret("postgres://app:hunter2@db:5432/app")
    assert value_looks_secret("-----BEGIN PRIVATE KEY-----\nabc")
    assert value_looks_secret("aB3xY9kLm2Qr7TzW1vN8")  # random-looking, 20 chars
    for shown in ("v2.10.3", "2024.11.30-build.1234567890abcdef", "https://example.com/path", "true", "en_US",
                  "registry.example.com/app/web", "postgres://db:5432/app", "ghcr.io/acme/app:v2"):
        assert not value_looks_secret(shown), shown


def test_compare_env_shows_plain_values_and_withholds_secrets():
    old = "IMAGE_TAG=v1\nDOMAIN=a.example\nDB_PASSWORD=old-pw-1\nCUSTOM=k3yk3yk3y\nGONE=1\nSAME_AS_PW=old-pw-1\nLATER=z\n"
    new = ("IMAGE_TAG=v2\nDOMAIN=a.example\nDB_PASSWORD=new-pw-2\nCUSTOM=other\nNEW_FLAG=on\nSAME_AS_PW=x\n"
           "LATER=new-pw-2\n")
    rows = {r.key: r for r in compare_env(old, new, secret_keys=["CUSTOM"])}
    assert rows["IMAGE_TAG"] == EnvChange("IMAGE_TAG", "changed", False, "v1", "v2")
    assert rows["DOMAIN"] == EnvChange("DOMAIN", "unchanged", False, "a.example", "a.example")
    assert rows["DB_PASSWORD"] == EnvChange("DB_PASSWORD", "changed", True, None, None)
    assert rows["CUSTOM"] == EnvChange("CUSTOM", "changed", True, None, None)  # the set lists it
    assert rows["SAME_AS_PW"].secret and rows["SAME_AS_PW"].old is None  # holds a secret's value
    assert rows["LATER"].secret and rows["LATER"].new is None  # holds the new file's secret value
    assert rows["GONE"] == EnvChange("GONE", "removed", False, "1", None)
    assert rows["NEW_FLAG"] == EnvChange("NEW_FLAG", "added", False, None, "on")
    assert list(rows)[-1] == "GONE"  # new file's order, then the removed keys
    dumped = json.dumps([r.as_dict() for r in rows.values()])
    for secret in ("old-pw-1", "new-pw-2", "k3yk3yk3y"):
        assert secret not in dumped


def test_compare_env_of_an_invalid_file_is_none():
    assert compare_env("A='unterminated\n", "A=1\n") is None


def test_checked_changes_masks_what_an_agent_should_have_masked():
    sent = [{"key": "DB_PASSWORD", "change": "changed", "secret": False, "old": "a", "new": "b"},
            {"key": "URL", "change": "changed", "secret": False, "old": "https://u:p4ss@h/", "new": "https://h/"},
            {"key": "LISTED", "change": "added", "secret": False, "old": None, "new": "plain"},
            {"key": "IMAGE_TAG", "change": "changed", "secret": False, "old": "v1", "new": "v2"}]
    rows = {r.key: r for r in checked_changes(sent, secret_keys=("LISTED",))}
    assert rows["DB_PASSWORD"] == EnvChange("DB_PASSWORD", "changed", True)
    assert rows["URL"] == EnvChange("URL", "changed", True)
    assert rows["LISTED"] == EnvChange("LISTED", "added", True)
    assert rows["IMAGE_TAG"] == EnvChange("IMAGE_TAG", "changed", False, "v1", "v2")


def test_checked_changes_refuses_malformed_answers():
    assert checked_changes(None) is None
    assert checked_changes({"key": "A"}) is None
    assert checked_changes([{"key": "A", "change": "exploded"}]) is None
    assert checked_changes([{"key": "A", "change": "added", "new": 5}]) is None


def test_checked_values_keeps_only_asked_plain_values():
    answer = {"IMAGE_TAG": "v3", "DB_PASSWORD": "x", "UNASKED": "y", "TOKENISH": "aB3xY9kLm2Qr7TzW1vN8"}
    assert checked_values(answer, ("IMAGE_TAG", "DB_PASSWORD", "TOKENISH")) == {"IMAGE_TAG": "v3"}
    assert checked_values(["nope"], ("IMAGE_TAG",)) == {}


_names = st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True)
_values = st.from_regex(r"[A-Za-z0-9_.:/@-]{0,30}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(old=st.dictionaries(_names, _values, max_size=8), new=st.dictionaries(_names, _values, max_size=8),
       listed=st.lists(_names, max_size=3))
def test_no_secret_value_ever_leaves_the_comparison(old, new, listed):
    rows = compare_env("".join(f"{k}='{v}'\n" for k, v in old.items()),
                       "".join(f"{k}='{v}'\n" for k, v in new.items()), secret_keys=listed)
    secret = secret_key_names(old, new, secret_keys=listed)
    assert {r.key for r in rows} == set(old) | set(new)
    shown = {v for r in rows for v in (r.old, r.new) if v is not None}
    for key in secret:
        for value in (old.get(key), new.get(key)):
            if value and len(value) >= 4:
                assert value not in shown, (key, value)
    for r in rows:
        assert r.secret == (r.key in secret)
