"""PEP 517 build backend for the light ``ccp-agent`` distribution (standard library only).

Why not setuptools: the modules live in the CCP source tree two folders up, and the package ``ccp`` also holds
the server's modules (models, app, worker ...), which setuptools would ship wholesale with ``ccp``. This backend
writes exactly the agent's modules (``AGENT_SOURCES``, the packages tests/foundation/test_layers.py lets the agent
import) plus the agent's systemd unit, with the name, dependencies and script from pyproject.toml beside it.

In a CCP checkout the sources are at ``../../..``; in an sdist this backend made, they sit beside it.
"""
from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Packages (every .py file in them) and single modules of the agent, as paths under the source root.
AGENT_SOURCES = ("ccp/__init__.py", "ccp/rules.py", "ccp/bodies.py", "ccp/agent", "ccp/hostops", "ccp/envfile",
                 "ccp/protocol", "ccp/deploy/__init__.py", "ccp/deploy/ccp-agent.service")
_EPOCH = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources make the same wheel


def _root() -> Path:
    return HERE if (HERE / "ccp" / "agent").is_dir() else HERE.parents[2]


def _project() -> dict:
    return tomllib.loads((HERE / "pyproject.toml").read_text())["project"]


_VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"', re.M)
_override: str | None = None  # config_settings {"version": ...} while build_wheel runs


def _version() -> str:
    return _override or _VERSION_LINE.search((_root() / "ccp" / "__init__.py").read_text()).group(1)


def _source(name: str) -> bytes:
    """A source file's bytes; with a version override, ccp/__init__.py says that version (so the agent reports it)."""
    data = (_root() / name).read_bytes()
    if _override and name == "ccp/__init__.py":
        data = _VERSION_LINE.sub(f'__version__ = "{_override}"', data.decode(), count=1).encode()
    return data


def agent_files() -> list[str]:
    """Every file the wheel holds, as paths under the source root (sorted; no caches)."""
    root, out = _root(), []
    for entry in AGENT_SOURCES:
        path = root / entry
        if path.is_dir():
            out += [p.relative_to(root).as_posix() for p in path.rglob("*.py") if "__pycache__" not in p.parts]
        elif path.is_file():
            out.append(entry)
        else:
            raise FileNotFoundError(f"ccp-agent build: {path} is missing")
    return sorted(out)


def _metadata() -> str:
    project = _project()
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {_version()}",
             f"Summary: {project['description']}", f"Requires-Python: {project['requires-python']}"]
    lines += [f"Requires-Dist: {dep}" for dep in project["dependencies"]]
    return "\n".join(lines) + "\n"


def _dist_info() -> str:
    return f"ccp_agent-{_version()}.dist-info"


def _wheel_name() -> str:
    return f"ccp_agent-{_version()}-py3-none-any.whl"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _dist_info_files() -> dict[str, bytes]:
    scripts = _project().get("scripts", {})
    entry_points = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
    wheel = "Wheel-Version: 1.0\nGenerator: ccp_agent_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    info = _dist_info()
    return {f"{info}/METADATA": _metadata().encode(), f"{info}/WHEEL": wheel.encode(),
            f"{info}/entry_points.txt": entry_points.encode()}


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    item = zipfile.ZipInfo(name, _EPOCH)
    item.external_attr = 0o644 << 16
    item.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(item, data)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None) -> str:
    """Write the wheel into ``wheel_directory``; returns its file name. ``config_settings={"version": "1.2.3"}``
    builds it under another version (tests of the agent's self-update; ``pip wheel -C version=...``)."""
    global _override
    wanted = (config_settings or {}).get("version")
    if wanted is not None and not re.match(r"^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$", str(wanted)):
        raise ValueError(f"ccp-agent build: version {wanted!r} is not a version string")
    _override = str(wanted) if wanted else None
    try:
        return _build_wheel(Path(wheel_directory))
    finally:
        _override = None


def _build_wheel(wheel_directory: Path) -> str:
    records = []
    target = Path(wheel_directory) / _wheel_name()
    with zipfile.ZipFile(target, "w") as zf:
        for name in agent_files():
            data = _source(name)
            _add(zf, name, data)
            records.append(_record_line(name, data))
        for name, data in _dist_info_files().items():
            _add(zf, name, data)
            records.append(_record_line(name, data))
        record = f"{_dist_info()}/RECORD"
        _add(zf, record, ("\n".join(records + [f"{record},,"]) + "\n").encode())
    return target.name


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None) -> str:
    """Write the .dist-info folder (pip reads the dependencies from it before building)."""
    for name, data in _dist_info_files().items():
        path = Path(metadata_directory) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return _dist_info()


def build_sdist(sdist_directory, config_settings=None) -> str:
    """Write an sdist: this backend, pyproject.toml and the agent's sources, buildable on their own."""
    base = f"ccp_agent-{_version()}"
    target = Path(sdist_directory) / f"{base}.tar.gz"
    files = {name: (_root() / name).read_bytes() for name in agent_files()}
    files |= {name: (HERE / name).read_bytes() for name in ("pyproject.toml", "ccp_agent_build.py")}
    files["PKG-INFO"] = _metadata().encode()
    with tarfile.open(target, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            item = tarfile.TarInfo(f"{base}/{name}")
            item.size, item.mode, item.mtime = len(data), 0o644, 1577836800
            tar.addfile(item, io.BytesIO(data))
    return target.name
