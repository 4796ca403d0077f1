"""Receivers: creating, validating and changing them (admins only, at the edges), and what they verify with.

A receiver's secret is made by CCP unless the admin brings one (GitHub, GitLab, Gitea: the secret typed into the
forge), and is returned exactly once, by create and by a secret rotation. Docker Hub and Quay carry it in their URL
path, so CCP always makes theirs (43 URL-safe characters, 256 bits). It is kept only as verification needs it
(ccp.models.Receiver); nothing here logs or audits a secret value.
"""

from __future__ import annotations

import secrets as _secrets
from collections import Counter

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ccp import rules
from ccp.extensions import db
from ccp.intake.events import REPOSITORY, Secret, signing_key, token_sha256
from ccp.intake.policy import PolicyInvalid, TagPolicy
from ccp.intake.providers import HMAC, PATH, PROVIDERS
from ccp.intake.registry import ImageRef
from ccp.models import RECEIVER_KINDS, Instance, Receiver
from ccp.services.audit import record
from ccp.services.errors import ServiceError
from ccp.vault import get_vault

FIELDS = ("name", "kind", "secret", "repository", "image", "registry_username", "registry_password", "instances",
          "semver_range", "tag_include", "tag_exclude", "min_age_s", "canary", "wave_size", "enabled")
EDITABLE = tuple(f for f in FIELDS if f not in ("name", "kind", "secret"))
RESERVED = frozenset({"new", "deliveries"})
MAX_MIN_AGE_S = 7 * 24 * 3600  # a week: a longer cooldown is a manual release
MAX_WAVE = 1000


class ReceiverInvalid(ServiceError):
    """Invalid receiver fields: `details` maps field -> message."""

    status, code = 422, "validation_failed"


class ReceiverNotFound(ServiceError):
    status, code = 404, "not_found"


def get_receiver(name: str) -> Receiver | None:
    """The receiver called `name` (None for anything that is not a receiver name)."""
    if not isinstance(name, str) or not rules.SLUG.fullmatch(name):
        return None
    return db.session.execute(select(Receiver).filter_by(name=name)).scalar_one_or_none()


def list_receivers() -> list[Receiver]:
    """Every receiver, by name."""
    return list(db.session.execute(select(Receiver).order_by(Receiver.name)).scalars())


def create_receiver(data: dict, *, actor: str) -> tuple[Receiver, str | None]:
    """Validate and save a receiver; returns it and the secret to show once (None when the admin brought one).

    Raises ReceiverInvalid (nothing saved), naming every bad field, or 409 `name_taken`."""
    clean, errors = _validated({"canary": 1, "wave_size": 5, "enabled": True, **data}, creating=True)
    if errors:
        raise ReceiverInvalid("the receiver is not valid: " + ", ".join(sorted(errors)), errors)
    receiver = Receiver(name=clean.pop("name"), kind=clean.pop("kind"))
    shown = _set_secret(receiver, clean.pop("secret", None))
    _apply(receiver, clean)
    db.session.add(receiver)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ServiceError(f"a receiver called {receiver.name!r} exists", {"name": "taken"}, status=409,
                           code="name_taken") from None
    record(actor, "receiver.create", target=receiver.name, detail={"kind": receiver.kind})
    return receiver, shown


def field_errors(data: dict, receiver: Receiver | None = None) -> dict[str, str]:
    """What create (no `receiver`) or update would refuse in `data`, by field; saves nothing (for a form that
    found errors of its own and shows them all at once)."""
    if receiver is None:
        return _validated({"canary": 1, "wave_size": 5, **data}, creating=True)[1]
    current = {f: getattr(receiver, f) for f in EDITABLE if f != "registry_password"}
    return _validated({**current, "kind": receiver.kind, **data}, creating=False,
                      has_password=bool(receiver.registry_password_enc))[1]


def update_receiver(receiver: Receiver, data: dict, *, actor: str) -> Receiver:
    """Apply a partial change (name, kind and secret stay: see rotate_secret); raises ReceiverInvalid."""
    unknown = sorted(f for f in set(data) - set(EDITABLE) if isinstance(f, str))
    current = {f: getattr(receiver, f) for f in EDITABLE if f != "registry_password"}
    clean, errors = _validated({**current, "kind": receiver.kind, **data}, creating=False,
                               has_password=bool(receiver.registry_password_enc))
    errors.update({f[:64]: "cannot be changed here" for f in unknown})
    if errors:
        raise ReceiverInvalid("the change is not valid: " + ", ".join(sorted(errors)), errors)
    changes = {k: v for k, v in clean.items() if k in data}
    if "registry_username" in data and not clean.get("registry_username"):
        changes["registry_password"] = None  # no user, no password
    _apply(receiver, changes)
    db.session.commit()
    action = "receiver.update"
    if set(data) == {"enabled"}:
        action = "receiver.enable" if receiver.enabled else "receiver.disable"
    record(actor, action, target=receiver.name, detail={"fields": sorted(data)})
    return receiver


def rotate_secret(receiver: Receiver, *, actor: str, secret: str | None = None) -> str | None:
    """Replace the receiver's secret (CCP makes one unless given); returns the new secret to show once."""
    clean, errors = _validated({"kind": receiver.kind, "secret": secret}, creating=False, only=("secret",))
    if errors:
        raise ReceiverInvalid("the secret is not valid", errors)
    shown = _set_secret(receiver, clean.get("secret"))
    db.session.commit()
    record(actor, "receiver.secret.rotate", target=receiver.name)
    return shown


def secret_of(receiver: Receiver) -> Secret:
    """What a delivery to `receiver` is verified with."""
    key = receiver.hmac_key()
    return Secret(hmac_key=signing_key(key) if key else None, token_sha256=receiver.secret_sha256)


def policy_of(receiver: Receiver) -> TagPolicy:
    """The receiver's tag policy (its fields were checked when saved)."""
    return TagPolicy.of(receiver.semver_range, receiver.tag_include, receiver.tag_exclude)


def hook_path_secret(receiver: Receiver) -> bool:
    """Whether the receiver's URL carries its secret in the path (Docker Hub, Quay)."""
    return PROVIDERS[receiver.kind].secret_form("") == PATH


def rotate_vault(vault) -> int:
    """Re-encrypt receivers' secrets under the newest key (for `ccp rotate-encryption-key`); returns the count."""
    count = 0
    for receiver in list_receivers():
        for column in ("secret_enc", "registry_password_enc"):
            if getattr(receiver, column):
                setattr(receiver, column, vault.rotate(getattr(receiver, column)))
                count += 1
    db.session.commit()
    return count


def _set_secret(receiver: Receiver, given: str | None) -> str | None:
    secret = given or _secrets.token_urlsafe(32)
    if PROVIDERS[receiver.kind].secret_form(secret) == HMAC:
        receiver.secret_enc, receiver.secret_sha256 = get_vault().encrypt(secret), None
    else:
        receiver.secret_enc, receiver.secret_sha256 = None, token_sha256(secret)
    return None if given else secret


def _apply(receiver: Receiver, clean: dict) -> None:
    for name, value in clean.items():
        if name == "registry_password":
            receiver.set_registry_password(value)
        else:
            setattr(receiver, name, value)


def _validated(data: dict, *, creating: bool, only: tuple[str, ...] = (),
               has_password: bool = False) -> tuple[dict, dict]:
    """(clean values, field -> message) for the fields in `data` (`has_password`: one is stored already)."""
    clean, errors = {}, {}
    unknown = sorted(set(data) - set(FIELDS))
    errors.update({name[:64]: "unknown field" for name in unknown if isinstance(name, str)})
    kind = data.get("kind")
    if kind not in RECEIVER_KINDS:
        errors["kind"] = "one of " + ", ".join(RECEIVER_KINDS)
        kind = None
    checks = {"name": _name, "repository": _repository, "image": _image, "registry_username": _username,
              "registry_password": _password, "instances": _instances, "min_age_s": _min_age,
              "canary": _wave, "wave_size": _wave, "enabled": _bool, "secret": lambda v: _secret(v, kind)}
    for field, check in checks.items():
        if field not in data or (only and field not in only) or (field == "name" and not creating):
            continue
        try:
            clean[field] = check(data[field])
        except rules.RuleError as exc:
            errors[field] = str(exc)
    if creating and "name" not in clean and "name" not in errors:
        errors["name"] = "required"
    if not only:
        _check_policy(data, clean, errors)
        if not clean.get("image") and "image" not in errors:
            errors["image"] = "required: the image repository CCP resolves tags at, e.g. ghcr.io/acme/app"
        if "repository" not in errors and not clean.get("repository") and clean.get("image"):
            clean["repository"] = ImageRef.parse(clean["image"]).path
        _check_credentials(data, clean, errors, has_password)
    clean["kind"] = kind
    if not creating:
        clean.pop("kind")
    return clean, errors


def _check_credentials(data: dict, clean: dict, errors: dict, has_password: bool) -> None:
    if "registry_username" in errors or "registry_password" in errors:
        return
    user = clean.get("registry_username")
    password = clean.get("registry_password") if "registry_password" in data else has_password
    if user and not password:
        errors["registry_password"] = "required with a registry user (a password or access token)"
    elif password and not user and "registry_password" in data:
        errors["registry_username"] = "required with a registry password"


def _check_policy(data: dict, clean: dict, errors: dict) -> None:
    values = {f: data.get(f) for f in ("semver_range", "tag_include", "tag_exclude")}
    for field, value in values.items():
        if value is not None:
            try:
                rules.check_text(value, 200)
            except rules.RuleError as exc:
                errors[field] = str(exc)
    if any(f in errors for f in values):
        return
    try:
        TagPolicy.of(values["semver_range"], values["tag_include"], values["tag_exclude"])
    except PolicyInvalid as exc:
        errors[exc.field] = str(exc)
        return
    clean.update({f: (v or None) for f, v in values.items() if f in data})


def _name(value) -> str:
    value = rules.check_slug(value)
    if value in RESERVED:
        raise rules.RuleError(f"{value!r} is reserved (it names a page)")
    return value


def _repository(value) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not REPOSITORY.fullmatch(value):
        raise rules.RuleError("the repository events name, e.g. acme/app (letters, digits, . _ - / :)")
    return value.lower()


def _image(value) -> str:
    if not isinstance(value, str):
        raise rules.RuleError("an image repository such as ghcr.io/acme/app")
    try:
        ImageRef.parse(rules.check_text(value, 255))
    except ValueError as exc:
        raise rules.RuleError(str(exc)) from None
    return value


def _username(value) -> str | None:
    return None if value in (None, "") else rules.check_text(value, 200)


def _password(value) -> str | None:
    return None if value in (None, "") else rules.check_text(value, 1000)


def _secret(value, kind) -> str | None:
    if value in (None, ""):
        return None
    if kind and PROVIDERS[kind].secret_form("") == PATH:
        raise rules.RuleError("CCP makes this secret (it goes into the URL): leave it empty")
    value = rules.check_text(value, 200)
    if len(value) < 16 or not value.isascii() or any(c.isspace() for c in value):
        raise rules.RuleError("at least 16 printable ASCII characters without spaces (or empty: CCP makes one)")
    if value.startswith("whsec_"):
        try:
            if len(signing_key(value)) < 16:
                raise ValueError
        except ValueError:
            raise rules.RuleError("a whsec_ secret must be base64 of at least 16 bytes after whsec_") from None
    return value


def _instances(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise rules.RuleError("a list of instance slugs (empty: every instance)")
    if any(not rules.SLUG.fullmatch(s) for s in value):
        raise rules.RuleError("instances must be slugs (a-z 0-9 -)")
    repeated = sorted(s for s, n in Counter(value).items() if n > 1)
    if repeated:
        raise rules.RuleError(f"listed more than once: {', '.join(repeated)[:200]}")
    known = set(db.session.execute(select(Instance.slug).where(Instance.slug.in_(value))).scalars())
    unknown = [s for s in value if s not in known]
    if unknown:
        raise rules.RuleError(f"unknown instance(s): {', '.join(unknown)[:200]}")
    return list(value)


def _min_age(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MIN_AGE_S:
        raise rules.RuleError(f"whole seconds from 0 to {MAX_MIN_AGE_S}, or empty for none")
    return value or None


def _wave(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WAVE:
        raise rules.RuleError(f"a whole number from 1 to {MAX_WAVE}")
    return value


def _bool(value) -> bool:
    if not isinstance(value, bool):
        raise rules.RuleError("true or false")
    return value
