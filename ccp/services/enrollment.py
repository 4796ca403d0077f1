"""Enrolling a tenant: ask an agent, before anything is saved, what it is and what it offers.

`probe_agent` is what "Add instance" calls the moment the operator has typed the agent's URL and key: one signed
`GET /v1/health` through the remote driver, with the configured agent timeouts, turned into an `AgentProbe` the
screen can show as it is -- version, protocol, capabilities, the host's Docker and compose versions, each
instance the agent serves with its compose project and the top-level names in its install dir -- or one sentence
saying what is wrong and what to do about it. Nothing is stored and the key never appears in the result.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from ccp import rules
from ccp.drivers import AgentAuthFailed, AgentRejected, DriverError
from ccp.drivers.agent_client import AgentClient
from ccp.drivers.remote import RemoteDriver
from ccp.protocol import (DRY_RUN_CAPABILITY, HEALTH_FILES_CAP, HEALTH_INSTANCE_DETAILS, HEALTH_RUNTIME,
                          MIN_KEY_CHARS, PROTOCOL_VERSION)
from ccp.services.errors import ServiceError
from ccp.services.fleet import REQUIRED_CAPABILITIES

# What the agent's 401 reasons (ccp.protocol.signing) mean for the person enrolling.
_AUTH_HINTS = {
    "unknown key id": "the agent knows no key by this key id: copy the key id `ccp-agent init` printed",
    "signature mismatch": "the key does not match the agent's key for this key id: paste the key again",
    "clock skew": "this CCP's clock and the agent host's differ by more than a minute: synchronise them (NTP)",
    "signed before this agent started": "the clocks of CCP and the agent host disagree: synchronise them (NTP)",
}


@dataclass(frozen=True)
class InstanceOffer:
    """One instance the agent serves, as its health reported it (None: an agent too old to say)."""

    slug: str
    project: str | None = None
    install_dir: str | None = None
    exists: bool | None = None
    file_count: int | None = None
    files: tuple[str, ...] = ()
    files_truncated: bool = False

    @property
    def empty(self) -> bool | None:
        """True when the install dir holds nothing yet (a tenant CCP will provision); None when unknown."""
        return None if self.file_count is None else self.file_count == 0


@dataclass(frozen=True)
class AgentProbe:
    """What one signed health call to an agent found. ``ok``: reachable, same protocol, every capability CCP
    needs, and (when asked) serving the expected slug; otherwise ``problem`` says why in plain words."""

    url: str
    reachable: bool
    problem: str | None = None
    version: str | None = None
    protocol: int | None = None
    capabilities: tuple[str, ...] = ()
    missing_capabilities: tuple[str, ...] = ()
    dry_run: bool = False
    runtime_reported: bool = False
    docker_version: str | None = None
    compose_version: str | None = None
    warnings: tuple[str, ...] = ()
    instances: tuple[InstanceOffer, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reachable and self.problem is None

    def instance(self, slug: str) -> InstanceOffer | None:
        """The offer for ``slug``, if the agent serves it."""
        return next((i for i in self.instances if i.slug == slug), None)


def _check_inputs(url: object, key_id: object, key: object) -> None:
    errors = {}
    for field, check in (("agent_url", lambda v: rules.check_http_url(v, "the agent URL")),
                         ("agent_key_id", rules.check_key_id)):
        try:
            check(url if field == "agent_url" else key_id)
        except rules.RuleError as exc:
            errors[field] = str(exc)
    if not isinstance(key, str) or len(key) < MIN_KEY_CHARS or rules.CONTROL_CHARS.search(key):
        errors["agent_key"] = f"the agent key is at least {MIN_KEY_CHARS} characters on one line"
    if errors:
        raise ServiceError("the agent's address or key is not valid", errors, code="invalid")


def _offers(details: object, slugs: list) -> tuple[InstanceOffer, ...]:
    details = details if isinstance(details, dict) else {}
    out = []
    for slug in sorted(s for s in slugs if isinstance(s, str)):
        d = details.get(slug) if isinstance(details.get(slug), dict) else {}
        files = d.get("files") if isinstance(d.get("files"), list) else []
        count = d.get("count")
        out.append(InstanceOffer(
            slug=slug, project=d.get("project") if isinstance(d.get("project"), str) else None,
            install_dir=d.get("install_dir") if isinstance(d.get("install_dir"), str) else None,
            exists=d.get("exists") if isinstance(d.get("exists"), bool) else None,
            file_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
            files=tuple(str(f) for f in files[:HEALTH_FILES_CAP]), files_truncated=bool(d.get("truncated"))))
    return tuple(out)


def _unreachable(url: str, exc: DriverError) -> AgentProbe:
    if isinstance(exc, AgentAuthFailed):
        reason = next((hint for text, hint in _AUTH_HINTS.items() if text in str(exc)), None)
        return AgentProbe(url, True, f"the agent refused CCP's key: {reason or exc}")
    if isinstance(exc, AgentRejected):
        return AgentProbe(url, True, f"this address answers, but not like a CCP agent ({exc}): is it the agent's "
                                     "URL and port?")
    kind = "did not answer in time" if "timed out" in str(exc) else "cannot be reached"
    return AgentProbe(url, False, f"the agent at {url} {kind}: check that it runs (`ccp-agent check` on its host) "
                                  "and that this CCP host may reach that address and port (firewall)")


def probe_agent(url: str, key_id: str, key: str, *, slug: str | None = None, settings=None) -> AgentProbe:
    """Ask the agent at ``url`` for its health with ``key_id``/``key``; never stores anything.

    Raises ServiceError (400, ``details`` per field) for a malformed URL, key id or key, before any network call.
    Everything the agent does or fails to do comes back as an AgentProbe; with ``slug``, an agent that does not
    serve that instance is a problem too. Timeouts: CCP_AGENT_CONNECT_TIMEOUT_S / CCP_AGENT_READ_TIMEOUT_S.
    """
    _check_inputs(url, key_id, key)
    settings = settings or current_app.config["CCP"]
    client = AgentClient(url, key_id, key.encode(), connect_timeout=settings.agent_connect_timeout_s,
                         read_timeout=settings.agent_read_timeout_s)
    try:
        health = RemoteDriver(client, slug or "-").health()
    except DriverError as exc:
        return _unreachable(url, exc)
    finally:
        client.close()
    protocol = health.get("protocol")
    caps = tuple(sorted(c for c in health.get("capabilities") or () if isinstance(c, str)))
    runtime = health.get(HEALTH_RUNTIME)
    runtime = runtime if isinstance(runtime, dict) else None
    found = dict(
        version=str(health.get("version") or "") or None, protocol=protocol if isinstance(protocol, int) else None,
        capabilities=caps, missing_capabilities=tuple(c for c in REQUIRED_CAPABILITIES if c not in caps),
        dry_run=DRY_RUN_CAPABILITY in caps, runtime_reported=runtime is not None,
        docker_version=_text(runtime, "docker"), compose_version=_text(runtime, "compose"),
        instances=_offers(health.get(HEALTH_INSTANCE_DETAILS), health.get("instances") or []))
    warnings = [str(p) for p in (runtime or {}).get("problems") or () if isinstance(p, str)]
    if runtime is None:
        warnings.append("this agent is too old to report its Docker and compose versions or its install dirs")
    if found["dry_run"]:
        warnings.append("the agent runs the dry-run runtime: an apply there never changes a container")
    return AgentProbe(url, True, _problem(found, slug), warnings=tuple(warnings), **found)


def _text(runtime: dict | None, name: str) -> str | None:
    value = (runtime or {}).get(name)
    return value if isinstance(value, str) and value else None


def _problem(found: dict, slug: str | None) -> str | None:
    if found["protocol"] is None:
        return "this address answers /v1/health, but not with a CCP agent's answer (no protocol): is it the agent?"
    if found["protocol"] != PROTOCOL_VERSION:
        return (f"the agent speaks protocol {found['protocol']}, this CCP speaks {PROTOCOL_VERSION}: install the "
                "same release of the agent as of CCP")
    if found["missing_capabilities"]:
        return (f"the agent is too old for CCP's upgrades (it lacks {', '.join(found['missing_capabilities'])}): "
                "upgrade it")
    served = [i.slug for i in found["instances"]]
    if slug and slug not in served:
        return (f"the agent serves no instance {slug!r} (it serves: {', '.join(served) or 'none'}): use one of "
                "those slugs, or add it to the agent's config (`ccp-agent init`)")
    return None
