"""The shape of the code, checked from the source (issue 12).

- Nothing outside ``fundtrack.api`` imports strawberry, nor loads it through another
  module: the query layer, the pages, the exports, the CLI and the importers work without
  GraphQL.
- No import cycle between modules, counting the imports at module level (those run when a
  module loads; an import inside a function runs later and cannot deadlock a load).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fundtrack", "importers")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_pkg = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, *, top_level_only: bool) -> set[str]:
    """Every module ``module`` imports (``from a import b`` counts ``a.b`` when that is a
    module, else ``a``); with ``top_level_only``, only the statements run at load time
    (module body, including ``if``/``try`` blocks, but not ``if TYPE_CHECKING``)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    nodes: list[ast.AST] = []
    if top_level_only:
        todo: list[ast.AST] = list(tree.body)
        while todo:
            n = todo.pop()
            if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
                todo.extend(n.orelse)
            elif isinstance(n, ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    todo.extend(getattr(n, field, []))
            elif isinstance(n, ast.ExceptHandler):
                todo.extend(n.body)
            else:
                nodes.append(n)
    else:
        nodes = list(ast.walk(tree))
    out: set[str] = set()
    for n in nodes:
        if isinstance(n, ast.Import):
            out.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            base = _resolve(module, n)
            for a in n.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in MODULES else base)
    return out


def test_only_the_api_imports_strawberry() -> None:
    offenders = sorted(
        name for name in MODULES
        if not (name == "fundtrack.api" or name.startswith("fundtrack.api."))
        and any(i == "strawberry" or i.startswith("strawberry.")
                for i in _imports(name, top_level_only=False)))
    assert offenders == [], f"strawberry imported outside fundtrack.api: {offenders}"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        targets = set()
        for imp in _imports(name, top_level_only=True):
            # importing a.b.c loads a and a.b too
            parts = imp.split(".")
            for k in range(1, len(parts) + 1):
                t = ".".join(parts[:k])
                if t in MODULES and t != name:
                    targets.add(t)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_package_parent(a: str, b: str) -> bool:
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycle_between_modules() -> None:
    graph = _graph()
    # A package's __init__ re-exporting its own submodules is loading, not a cycle: drop the
    # edges between a package and the modules inside it.
    graph = {v: {w for w in ws if not _is_package_parent(v, w)} for v, ws in graph.items()}
    cycles = _cycles(graph)
    assert cycles == [], "import cycles (module-level imports): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_settings_are_read_from_the_environment_only_in_config() -> None:
    offenders = []
    for name, path in MODULES.items():
        if name == "fundtrack.config":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == [], f"environment read outside fundtrack/config.py: {offenders}"


#: Modules that serve GraphQL, so load strawberry on purpose (the ASGI app mounts the API).
LOADS_THE_API = ("fundtrack.api", "fundtrack.app")


def _serves_graphql(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in LOADS_THE_API)


def test_nothing_outside_the_api_loads_it_at_import() -> None:
    """The pages, exports, CLI, ingest and derived steps reach no ``fundtrack.api`` module
    through the imports that run when they load (transitively)."""
    graph = _graph()
    offenders = {}
    for name in MODULES:
        if _serves_graphql(name):
            continue
        seen, todo = set(), [name]
        while todo:
            for w in graph[todo.pop()]:
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        api = sorted(m for m in seen if _serves_graphql(m))
        if api:
            offenders[name] = api
    assert offenders == {}, f"modules that load the API when imported: {offenders}"


def test_importing_them_does_not_load_strawberry() -> None:
    """The same, by really importing every module outside the API in a fresh interpreter
    (catches imports the static graph cannot see); names the first that loads strawberry."""
    # (``__main__`` modules run their program when imported: the import graph covers them)
    names = [n for n in MODULES if not _serves_graphql(n) and not n.endswith(".__main__")]
    assert {"fundtrack.web.routes", "fundtrack.export", "fundtrack.cli"} <= set(names)
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "    if 'strawberry' in sys.modules:\n"
            "        sys.exit(f'importing {name} loaded strawberry')\n"
            "print(len(sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
