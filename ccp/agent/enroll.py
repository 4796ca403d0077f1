"""`ccp agent init`: plan and write an agent config for one or more instances plus a fresh key file, and say
exactly what to run (or type into the UI) on the CCP side.

Nothing is written until every input has been checked; an existing config or key file is replaced only when asked
(``force``). The key goes to its own file (0600) that the config names under ``[key_files]``, so the config itself
holds no secret.
"""
from __future__ import annotations

import os
import re
import secrets
import shlex
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ccp import rules
from ccp.agent.runtime import Answer, dir_entries
from ccp.envfile.dotenv import EnvParseError, parse_env

DEFAULT_CONFIG = Path("/etc/ccp/agent.toml")
DEFAULT_LISTEN = "0.0.0.0:8765"
DEFAULT_STATE_DIR = Path("/var/lib/ccp-agent")
# Compose's own order of default file names; CCP's default template set writes docker-compose.yml.
COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
_ANY_HOST = ("0.0.0.0", "::", "")


class InitError(ValueError):
    """``ccp agent init`` cannot go on; the message says what to change. Nothing was written."""


@dataclass
class PlannedInstance:
    """One instance as init found it: where it lives, its compose project and why, what CCP should be told."""

    slug: str
    install_dir: Path
    project: str
    project_source: str
    compose_files: tuple[str, ...]
    entries: dict
    domain: str | None = None
    tag: str | None = None

    @property
    def registered(self) -> bool:
        """A tenant whose own install wrote its .env: CCP must never hold that file (register, not provision)."""
        return ".env" in self.entries["files"]


@dataclass
class InitPlan:
    """Everything init will write and print, decided before anything is written."""

    config_path: Path
    key_file: Path
    key_id: str
    listen: str
    url: str
    state_dir: Path
    instances: list[PlannedInstance]
    notes: list[str] = field(default_factory=list)


def compose_project_name(name: str) -> str:
    """The project name compose derives from a folder name: lowercase, only a-z 0-9 '_' '-', starting alnum."""
    return re.sub(r"^[^a-z0-9]+", "", re.sub(r"[^a-z0-9_-]", "", name.lower()))


def _slug_from(name: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", name.lower())).strip("-")[:63]


def parse_instance(spec: str) -> tuple[str, Path]:
    """``SLUG=DIR`` or ``DIR`` (the slug is then derived from the folder name); the dir must exist."""
    slug, sep, directory = spec.partition("=")
    if not sep:
        slug, directory = "", spec
    path = Path(directory)
    if not path.is_absolute():
        raise InitError(f"--instance {spec}: the install dir must be an absolute path")
    if not path.is_dir():
        raise InitError(f"--instance {spec}: {path} is not an existing directory")
    slug = slug or _slug_from(path.name)
    try:
        rules.check_slug(slug)
    except rules.RuleError as exc:
        raise InitError(f"--instance {spec}: slug {slug!r}: {exc} (write it as SLUG={directory})") from None
    return slug, path


def _env_facts(install_dir: Path) -> dict[str, str]:
    """The few non-secret .env values init reads: the compose project, the domain and the image tag."""
    try:
        env = parse_env((install_dir / ".env").read_text())
    except (OSError, UnicodeDecodeError, EnvParseError):
        return {}
    return {k: env[k] for k in ("COMPOSE_PROJECT_NAME", "DOMAIN", "IMAGE_TAG") if k in env}


def _compose_name(install_dir: Path, files: tuple[str, ...]) -> str | None:
    try:
        doc = yaml.safe_load((install_dir / files[0]).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = doc.get("name") if isinstance(doc, dict) else None
    return name if isinstance(name, str) and rules.PROJECT.fullmatch(name) else None


def detect_project(install_dir: Path, files: tuple[str, ...], env: dict[str, str],
                   containers: dict[str, set[str]] | Answer) -> tuple[str, str]:
    """(project, where it came from): the containers Docker ran from this dir, else COMPOSE_PROJECT_NAME in its
    .env, else ``name:`` in its compose file, else the folder name -- compose's own order after ``-p``."""
    if isinstance(containers, dict):
        found = containers.get(os.path.normpath(str(install_dir.resolve())), set())
        found |= containers.get(os.path.normpath(str(install_dir)), set())
        if len(found) > 1:
            raise InitError(f"containers of {len(found)} compose projects were started from {install_dir} "
                            f"({', '.join(sorted(found))}): choose one with --project SLUG=NAME")
        if found:
            return found.pop(), "its containers' compose label"
    if rules.PROJECT.fullmatch(env.get("COMPOSE_PROJECT_NAME", "")):
        return env["COMPOSE_PROJECT_NAME"], "COMPOSE_PROJECT_NAME in its .env"
    name = _compose_name(install_dir, files)
    if name:
        return name, f"name: in {files[0]}"
    return compose_project_name(install_dir.name), "the folder name"


def plan_instance(spec: str, project_of: dict[str, str], domain_of: dict[str, str],
                  containers: dict[str, set[str]] | Answer) -> PlannedInstance:
    """Check one ``--instance`` and find its compose files, project, domain and tag (``project_of`` and
    ``domain_of``: the operator's own choices by slug, which win)."""
    slug, install_dir = parse_instance(spec)
    project, domain = project_of.get(slug), domain_of.get(slug)
    files = tuple(n for n in COMPOSE_FILE_NAMES if (install_dir / n).is_file())[:1] or ("docker-compose.yml",)
    env = _env_facts(install_dir)
    if project:
        source = "--project"
    else:
        project, source = detect_project(install_dir, files, env, containers)
    try:
        rules.check_project(project)
    except rules.RuleError as exc:
        raise InitError(f"{slug}: compose project {project!r} (from {source}): {exc}; "
                        f"give one with --project {slug}=NAME") from None
    domain = domain or env.get("DOMAIN")
    try:
        domain = rules.check_domain(domain) if domain else None
    except rules.RuleError as exc:
        raise InitError(f"{slug}: domain {domain!r}: {exc}") from None
    tag = env.get("IMAGE_TAG")
    tag = tag if tag and rules.TAG.fullmatch(tag) else None
    return PlannedInstance(slug, install_dir, project, source, files, dir_entries(install_dir), domain, tag)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for item in values:
        slug, sep, value = item.partition("=")
        if not sep or not slug or not value:
            raise InitError(f"{option} {item}: write it as SLUG=VALUE")
        out[slug] = value
    return out


def plan_init(instances: tuple[str, ...], *, config_path: Path = DEFAULT_CONFIG, key_file: Path | None = None,
              key_id: str | None = None, listen: str = DEFAULT_LISTEN, url: str | None = None,
              state_dir: Path = DEFAULT_STATE_DIR, projects: tuple[str, ...] = (), domains: tuple[str, ...] = (),
              force: bool = False, containers: dict[str, set[str]] | Answer | None = None) -> InitPlan:
    """Check every input and decide what to write; raises InitError (nothing written) on the first problem."""
    if not instances:
        raise InitError("name at least one instance: --instance SLUG=/install/dir")
    config_path = Path(config_path).absolute()
    key_file = Path(key_file).absolute() if key_file else config_path.with_suffix(".key")
    key_id = key_id or time.strftime("k%Y%m%d")
    try:
        rules.check_key_id(key_id)
    except rules.RuleError as exc:
        raise InitError(f"--key-id {key_id!r}: {exc}") from None
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InitError(f"--listen {listen!r} must be HOST:PORT (e.g. {DEFAULT_LISTEN})")
    notes = []
    if not url:
        shown = _host_name() if host.strip("[]") in _ANY_HOST else host
        url = f"http://{shown}:{port}"
        notes.append(f"CCP will call the agent at {url}; if CCP knows this host by another name or address, "
                     "rerun with --url.")
    try:
        rules.check_http_url(url, "--url")
    except rules.RuleError as exc:
        raise InitError(str(exc)) from None
    for path in (config_path, key_file):
        if path.exists() and not force:
            raise InitError(f"{path} already exists: rerun with --force to replace it (a new key: the CCP side "
                            "then needs the new key for every instance of this agent)")
    by_slug = {}
    project_of, domain_of = _pairs(projects, "--project"), _pairs(domains, "--domain")
    for spec in instances:
        inst = plan_instance(spec, project_of, domain_of, containers or {})
        if inst.slug in by_slug:
            raise InitError(f"instance {inst.slug!r} is named twice")
        by_slug[inst.slug] = inst
    unknown = (set(project_of) | set(domain_of)) - set(by_slug)
    if unknown:
        raise InitError(f"--project/--domain name no --instance: {', '.join(sorted(unknown))}")
    if isinstance(containers, Answer):
        notes.append(f"Docker did not answer ({containers.text}); compose projects come from the files and "
                     "folder names: check them with `ccp agent check` once Docker runs.")
    if host.strip("[]") in ("127.0.0.1", "localhost", "::1"):
        notes.append(f"The agent listens on {host} only: CCP must run on this host (or reach it via a tunnel).")
    return InitPlan(config_path, key_file, key_id, listen, url, Path(state_dir), list(by_slug.values()), notes)


def _host_name() -> str:
    name = socket.getfqdn()
    return socket.gethostname() if name.startswith("localhost") else name


def _toml(value) -> str:
    # A JSON string is a valid TOML basic string (same escapes), and so is a list of them.
    import json

    return json.dumps(value)


def render_config(plan: InitPlan) -> str:
    """The agent.toml text for ``plan`` (no secret in it: the key stays in ``plan.key_file``)."""
    lines = ["# Written by `ccp agent init`; see docs/agent.md. Check it with `ccp agent check`.",
             f"listen = {_toml(plan.listen)}", f"state_dir = {_toml(str(plan.state_dir))}", "",
             "[key_files]                     # key id -> file holding the secret (0600)",
             f"{plan.key_id} = {_toml(str(plan.key_file))}"]
    for inst in plan.instances:
        lines += ["", f"[instances.{inst.slug}]", f"install_dir = {_toml(str(inst.install_dir))}",
                  f"project = {_toml(inst.project)}  # from {inst.project_source}",
                  f"compose_files = {_toml(list(inst.compose_files))}"]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # the umask may have taken bits away; it never adds any
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_init(plan: InitPlan) -> str:
    """Generate a key, write the key file (0600) and then the config (0644); returns the key."""
    key = secrets.token_urlsafe(32)
    try:
        _write_atomic(plan.key_file, key + "\n", 0o600)
        _write_atomic(plan.config_path, render_config(plan), 0o644)
    except OSError as exc:
        raise InitError(f"cannot write {exc.filename or plan.config_path}: {exc.strerror or exc} "
                        "(run as root, or choose --config/--key-file elsewhere)") from None
    return key


def ccp_add_command(plan: InitPlan, inst: PlannedInstance) -> str:
    """The exact `ccp instance add` line for one instance (the key is read from standard input, never argv)."""
    argv = ["ccp", "instance", "add", inst.slug, "--agent-url", plan.url, "--agent-key-id", plan.key_id,
            "--agent-key-stdin", "--project", inst.project, "--domain", inst.domain or "DOMAIN"]
    if inst.tag:
        argv += ["--tag", inst.tag]
    if inst.registered:
        argv.append("--registered")
    return " ".join(shlex.quote(a) if a != "DOMAIN" else a for a in argv)


def instructions(plan: InitPlan, key: str) -> str:
    """What init prints after writing: what it wrote, how to start the agent, and what to run on CCP."""
    out = [f"Wrote {plan.config_path} for {len(plan.instances)} instance(s) and a new key {plan.key_id!r} in "
           f"{plan.key_file} (0600)."]
    for inst in plan.instances:
        held = (f"holds {inst.entries['count']} entries" if inst.entries["count"] else "is empty")
        out.append(f"  {inst.slug}: {inst.install_dir} ({held}), compose project {inst.project!r} from "
                   f"{inst.project_source}, {'registered' if inst.registered else 'provisioned'} "
                   f"({'its .env is its own: CCP never holds it' if inst.registered else 'CCP writes its files'})")
    out += [f"  Note: {note}" for note in plan.notes]
    out += ["", "1. Check and start the agent on this host:",
            f"     ccp-agent check --config {shlex.quote(str(plan.config_path))}",
            f"     ccp-agent --config {shlex.quote(str(plan.config_path))}     "
            "(or the ccp-agent systemd unit / container, docs/operations.md)",
            "", "2. On the CCP host, run this for each instance; it waits for one line on standard input: "
            "paste the key, then Enter.", ""]
    out += [f"     {ccp_add_command(plan, inst)}" for inst in plan.instances]
    if any(inst.domain is None for inst in plan.instances):
        out.append("     (replace DOMAIN with the tenant's public domain: its .env has no DOMAIN)")
    out += ["", f"   Key {plan.key_id} (shown this once; it stays in {plan.key_file}, readable by its owner only):",
            f"     {key}", "",
            f"   Or in CCP's UI, Add instance: agent URL {plan.url}, key id {plan.key_id}, the key above, and per "
            "instance its slug, compose project and registered/provisioned as listed above."]
    return "\n".join(out)
