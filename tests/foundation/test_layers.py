"""The packages show the layers: no module imports from a layer above its own, and no modules import each other in
a circle. Every import counts, including those inside functions (a lazy import is still a dependency).

The allowed directions are written once, here (STYLE.md "One fact, one place"):

    entry points   ccp.app (factory), ccp.cli, ccp.demo, ccp.worker, ccp.deploy (gunicorn settings, the agent's build)
    edges          ccp.web, ccp.api, ccp.jobs, ccp.converters
    services       ccp.services
    drivers        ccp.drivers                      the agent    ccp.agent (server side; knows no database)
    foundations    ccp.models, ccp.extensions, ccp.rendering, ccp.hostops, ccp.envfile, ccp.vault, ccp.protocol,
                   ccp.intake (release intake: providers, tag policy, registry client)
    leaves         ccp (the package face: version only), ccp.rules, ccp.config, ccp.bodies

A module may import its own layer or any layer below. The agent may import only foundations it needs on a tenant
host (hostops, envfile, protocol) and leaves: never models, extensions, services, drivers or the web side.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ccp

ROOT = Path(ccp.__file__).resolve().parent
LAYERS = {
    "ccp.app": 5, "ccp.cli": 5, "ccp.demo": 5, "ccp.worker": 5, "ccp.deploy": 5,
    "ccp.web": 4, "ccp.api": 4, "ccp.jobs": 4, "ccp.converters": 4,
    "ccp.services": 3,
    "ccp.drivers": 2, "ccp.agent": 2,
    "ccp.models": 1, "ccp.extensions": 1, "ccp.rendering": 1, "ccp.hostops": 1, "ccp.envfile": 1, "ccp.vault": 1,
    "ccp.protocol": 1, "ccp.intake": 1,
    "ccp": 0, "ccp.rules": 0, "ccp.config": 0, "ccp.bodies": 0,
}
AGENT_MAY_IMPORT = ("ccp", "ccp.agent", "ccp.hostops", "ccp.envfile", "ccp.protocol", "ccp.rules", "ccp.bodies")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ccp modules `name` imports (anywhere in the file), resolved to the longest known module name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("ccp") and target != name:
                found.add(target)
    return found - {name}


def _layer(module: str) -> tuple[str, int]:
    while module not in LAYERS:
        module = module.rpartition(".")[0]
    return module, LAYERS[module]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        # a package's __init__ importing its own submodules is how packages are built, not a dependency cycle
        graph[name] = {t for t in _imports(name, path, known) if not t.startswith(name + ".")}
    return graph


def test_every_module_has_a_layer():
    unplaced = [m for m in _modules() if not any(m == p or m.startswith(p + ".") for p in LAYERS if p != "ccp")
                and m != "ccp"]
    assert unplaced == [], f"give these modules a layer in LAYERS: {unplaced}"


def test_no_module_imports_from_a_layer_above():
    upward = []
    for module, targets in _graph().items():
        home, level = _layer(module)
        for target in targets:
            there, target_level = _layer(target)
            if target_level > level:
                upward.append(f"{module} ({home}) imports {target} ({there})")
    assert upward == [], "imports pointing up the stack:\n" + "\n".join(sorted(upward))


def test_the_agent_imports_nothing_of_the_server():
    graph = _graph()
    wrong = sorted(f"{m} imports {t}" for m, targets in graph.items() if m.startswith("ccp.agent")
                   for t in targets if not any(t == ok or t.startswith(ok + ".") for ok in AGENT_MAY_IMPORT))
    assert wrong == [], "the agent must run on a tenant host without the control plane:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == [], f"modules importing each other in a circle: {cycles}"
