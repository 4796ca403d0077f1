"""Render a tenant's whole template set, deterministically and all-or-nothing.

Same inputs give the same bytes: no timestamps, files sorted, a header comment that only names the tenant and the set
(name + version). ``*.j2`` files run in a Jinja2 SandboxedEnvironment with StrictUndefined and their trailing newline
kept; other files are copied byte-for-byte (and get no header). A registered tenant's ``.env`` is never rendered: CCP
holds none of its secrets. Compiled templates and static files are cached per set directory so a warm render of the
default set takes well under 10 ms (see bench/bench_render.py).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from ccp.envfile.dotenv import EnvPatchError, encode_value
from ccp.rendering.context import build_context
from ccp.rendering.sets import TemplateSet, load_template_set

__all__ = ["RenderError", "RenderResult", "env_value", "render_instance", "render_set"]

ENV_FILE = ".env"
_HASH_COMMENT_SUFFIXES = (".yml", ".yaml", ".conf", ".toml", ".sh", ".env", ".ini", ".cfg", ".py", ".rules")


class RenderError(Exception):
    """Rendering failed; nothing was produced. Carries the template file, line and variable when known."""

    def __init__(self, message: str, *, template: str | None = None, line: int | None = None,
                 variable: str | None = None):
        self.message, self.template, self.line, self.variable = message, template, line, variable
        where = f"{template} line {line}" if template and line else (template or "template set")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class RenderResult:
    """The rendered set: ``files`` maps output relpath -> content (sorted by path)."""

    files: dict[str, str]
    set_name: str
    set_version: str
    image_tag: str


def env_value(value: object) -> str:
    """The ``env_value`` template filter: ``value`` written for a compose .env line so compose reads it back literally.

    The one .env value encoder (ccp.envfile.dotenv.encode_value) does the quoting, the same one the agent's .env
    patch uses. Raises ValueError (without echoing the value) when no spelling is safe.
    """
    try:
        return encode_value("a rendered value", str(value))
    except EnvPatchError as exc:
        raise ValueError(str(exc)) from None


_lock = threading.Lock()
_environments: dict[str, SandboxedEnvironment] = {}
_static_cache: dict[str, tuple[tuple[int, int], str]] = {}


def _environment(root: Path) -> SandboxedEnvironment:
    """One sandboxed environment per set directory; Jinja caches compiled templates and re-checks mtimes."""
    key = str(root.resolve())
    with _lock:
        env = _environments.get(key)
        if env is None:
            env = SandboxedEnvironment(
                loader=jinja2.FileSystemLoader(key),
                undefined=jinja2.StrictUndefined,
                keep_trailing_newline=True,
                autoescape=False,
                auto_reload=True,
                cache_size=1000,
            )
            env.filters["env_value"] = env_value
            _environments[key] = env
        return env


def _static(path: Path, rel: str) -> str:
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _static_cache.get(str(path))
    if cached and cached[0] == stamp:
        return cached[1]
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise RenderError("not UTF-8 text; template sets hold text files only", template=rel) from None
    _static_cache[str(path)] = (stamp, text)
    return text


def _header(output: str, tenant_slug: str, tset: TemplateSet) -> tuple[str, str] | None:
    """Return (prefix, suffix) comment markers for an output file, or None when the format has no comments."""
    name = os.path.basename(output)
    if name == ENV_FILE or name.endswith(_HASH_COMMENT_SUFFIXES):
        marks = ("# ", "")
    elif name.endswith(".sql"):
        marks = ("-- ", "")
    elif name.endswith((".md", ".html")):
        marks = ("<!-- ", " -->")
    else:
        return None
    lines = (
        f"Managed by CCP: template set {tset.name} {tset.version}, tenant {tenant_slug}.",
        "Edits here are replaced on the next release upgrade; change the set or the tenant's vars instead.",
    )
    return "".join(f"{marks[0]}{line}{marks[1]}\n" for line in lines), marks[0]


def _with_header(output: str, content: str, tenant_slug: str, tset: TemplateSet) -> str:
    header = _header(output, tenant_slug, tset)
    if header is None:
        return content
    if content.startswith("#!"):  # keep a script's shebang on the first line
        first, _, rest = content.partition("\n")
        return f"{first}\n{header[0]}{rest}"
    return header[0] + content


def _template_line(exc: BaseException, filename: str) -> int | None:
    """Jinja rewrites tracebacks so template frames carry the template's file name and line."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _variable(message: str, source_line: str) -> str | None:
    match = re.search(r"has no attribute '(\w+)'", message) or re.search(r"'(\w+)' is undefined", message)
    if not match:
        return None
    name = match.group(1)
    dotted = re.search(rf"([A-Za-z_][\w.]*)\.{re.escape(name)}\b", source_line)
    return f"{dotted.group(1)}.{name}" if dotted else name


def _render_template(env: SandboxedEnvironment, tset: TemplateSet, rel: str, context: dict) -> str:
    # Jinja names template frames after the loader's path: the resolved root joined with rel.
    filename = os.path.join(str(tset.root.resolve()), *rel.split("/"))
    try:
        return env.get_template(rel).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"syntax error: {exc.message}", template=rel, line=exc.lineno) from None
    except jinja2.UndefinedError as exc:
        line = _template_line(exc, filename)
        source = Path(filename).read_text(encoding="utf-8").splitlines()
        text = source[line - 1] if line and line <= len(source) else ""
        variable = _variable(exc.message or "", text)
        raise RenderError(f"missing value {variable or exc.message}", template=rel, line=line,
                          variable=variable) from None
    except jinja2.exceptions.SecurityError as exc:
        raise RenderError(f"sandbox violation: {exc}", template=rel, line=_template_line(exc, filename)) from None
    except (jinja2.TemplateError, ValueError, TypeError, ArithmeticError, LookupError) as exc:
        raise RenderError(f"{type(exc).__name__}: {exc}", template=rel, line=_template_line(exc, filename)) from None


def render_set(tset: TemplateSet, context: dict, *, include_env: bool = True) -> dict[str, str]:
    """Render every file of ``tset`` with ``context``; returns output relpath -> content, sorted.

    ``include_env=False`` leaves ``.env`` out (registered tenants). Raises RenderError on the first failure.
    """
    env = _environment(tset.root)
    slug = context["tenant"]["slug"]
    files: dict[str, str] = {}
    for rel in tset.files:
        output = tset.output_path(rel)
        if output == ENV_FILE and not include_env:
            continue
        if rel.endswith(".j2"):
            files[output] = _with_header(output, _render_template(env, tset, rel, context), slug, tset)
        else:
            files[output] = _static(tset.root / rel, rel)
    return dict(sorted(files.items()))


def render_instance(
    instance,
    tag: str | None = None,
    *,
    secrets: dict | None = None,
    extra_dirs: Iterable[str | os.PathLike] = (),
    default_tag: str = "latest",
    digest: str | None = None,
) -> RenderResult:
    """Render ``instance``'s template set for ``tag`` (else its own tag, else ``default_tag``), and ``digest`` (what
    the tag resolved to, exposed to templates as ``image_digest``) when the release carries one.

    Returns the complete file set or raises: RenderError (template problem: file, line, variable), ValueError
    (bad tag or instance data), TemplateSetError (unknown or malformed set). Never returns a partial set.
    """
    tset = load_template_set(getattr(instance, "template_set", None) or "default", extra_dirs)
    context = build_context(instance, tag, secrets=secrets, default_tag=default_tag, template_set=tset, digest=digest)
    files = render_set(tset, context, include_env=not context["tenant"]["is_registered"])
    return RenderResult(files=files, set_name=tset.name, set_version=tset.version, image_tag=context["image_tag"])
