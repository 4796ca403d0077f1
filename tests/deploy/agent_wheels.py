"""Agent wheels for the self-update tests: built by the real build backend from a copy of this source tree, under
another version, optionally with a file changed (a version that cannot start, say)."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
BACKEND = REPO / "ccp" / "deploy" / "agent" / "ccp_agent_build.py"

# Put in a copy's ccp/agent/cli.py: the version exits with 3 at start on a host whose config folder holds this file
# (the test's stand-in for "the new version cannot start on that host", e.g. a dependency it lacks there).
CANNOT_START_MARKER = "new-agent-cannot-start-here"
CRASH_ON_MARKED_HOST = f'''
import os as _os, sys as _sys
_cfg = _os.environ.get("CCP_AGENT_CONFIG") or next((a for a in _sys.argv if a.endswith(".toml")), "")
if _cfg and _os.path.exists(_os.path.join(_os.path.dirname(_cfg), "{CANNOT_START_MARKER}")):
    print("this agent version cannot start on this host", file=_sys.stderr)
    raise SystemExit(3)
'''

# Beside the config, this file makes a version patched with failing_check_on_marked_host report a failing check on
# trial (the stand-in for "the new version's own checks find something wrong on that host").
CHECK_FAILS_MARKER = "new-agent-check-fails-here"
TRIAL_RETURN = "    return _state_dir(config.state_dir) + _instances(config) + _runtime(config)\n"
FAILING_TRIAL_RETURN = f"""    found = _state_dir(config.state_dir) + _instances(config) + _runtime(config)
    if config.source and (config.source.parent / "{CHECK_FAILS_MARKER}").exists():
        found.append(Finding("fail", "stand-in check: this version finds {CHECK_FAILS_MARKER} beside its config"))
    return found
"""


def _backend(root: Path):
    path = root / "ccp" / "deploy" / "agent" / "ccp_agent_build.py"
    spec = importlib.util.spec_from_file_location(f"ccp_agent_build_{abs(hash(root))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_wheel(dest: Path, version: str, patches: dict[str, Callable[[str], str]] | None = None) -> Path:
    """Build the agent wheel of this checkout as ``version`` into ``dest``; ``patches`` rewrite files of a copy of
    the sources first ({"ccp/agent/cli.py": lambda text: ...})."""
    dest.mkdir(parents=True, exist_ok=True)
    root = REPO
    if patches:
        root = dest / f"src-{version}"
        shutil.rmtree(root, ignore_errors=True)
        source = _backend(REPO)
        for name in source.agent_files() + ["ccp/deploy/agent/ccp_agent_build.py", "ccp/deploy/agent/pyproject.toml"]:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / name, root / name)
        for name, patch in patches.items():
            (root / name).write_text(patch((root / name).read_text()))
    backend = _backend(root)
    sys.modules.pop(backend.__name__, None)
    return dest / backend.build_wheel(str(dest), {"version": version})


def crash_on_marked_host(text: str) -> str:
    """A patch for ccp/agent/cli.py: the version exits at start where CANNOT_START_MARKER is beside the config."""
    head, sep, rest = text.partition("from __future__ import annotations\n")
    return head + sep + CRASH_ON_MARKED_HOST + rest


def failing_check_on_marked_host(text: str) -> str:
    """A patch for ccp/agent/checks.py: the version's trial checks fail where CHECK_FAILS_MARKER is beside the
    config (it starts, runs its checks, and exits with ccp.agent.update.CHECKS_FAILED_EXIT)."""
    assert TRIAL_RETURN in text, "ccp/agent/checks.py's trial_findings changed: update this patch"
    return text.replace(TRIAL_RETURN, FAILING_TRIAL_RETURN)
