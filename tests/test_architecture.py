"""The layering written down in ARCHITECTURE.md, checked on the source: no import cycles, no stray lazy imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "tasks", "config")

# A function-level import must say why it is not at the top: a comment on its line (or the line above) containing
# "cycle:" (the import cycle it breaks) or "lazy:" (an optional or heavy dependency, or work kept out of import
# time). Modules listed here are exempt as a whole, each with its reason.
LAZY_MODULES: dict[str, str] = {
    "app": "the app factory imports areas inside create_app() so that importing `app` builds nothing",
}

# Engines know nothing of requests or of the areas above them.
ENGINES = ("app.query", "app.ml", "app.warehouse", "app.db", "app.sandbox")
ABOVE_ENGINES = (
    "app.serving",
    "app.publishing",
    "app.console",
    "app.keys",
    "app.auth",
    "app.projects",
    "app.datasets",
    "app.registry",
)


def _modules() -> dict[str, Path]:
    mods = {}
    for base in PACKAGES:
        for path in (ROOT / base).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, str, bool, int]]:
    """(target module, imported dotted name, at module level?, line) for every import in `module`."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, str, bool, int]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            at_top = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((_resolve(alias.name) or "", alias.name, at_top, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join(parts + ([child.module] if child.module else []))
                for alias in child.names:
                    name = f"{base}.{alias.name}"
                    found.append((_resolve(name) or _resolve(base) or "", name, at_top, child.lineno))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue
            else:
                visit(child, at_top)

    visit(tree, True)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


IMPORTS = {module: _imports(module) for module in MODULES}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def _edges(module_level_only: bool) -> dict[str, set[str]]:
    return {m: {t for t, _, top, _ in IMPORTS[m] if t and t != m and (top or not module_level_only)} for m in MODULES}


def test_module_level_imports_have_no_cycle():
    assert _cycles(_edges(module_level_only=True)) == []


def test_all_imports_have_no_cycle_outside_the_marked_lazy_ones():
    """Counting function-level imports too, every cycle left is closed by an import marked `cycle:`."""
    edges = _edges(module_level_only=False)
    for module in MODULES:
        lines = MODULES[module].read_text(encoding="utf-8").splitlines()
        for target, _, top, lineno in IMPORTS[module]:
            if not top and "cycle:" in _comment_near(lines, lineno):
                edges[module].discard(target)
    assert _cycles(edges) == []


def _comment_near(lines: list[str], lineno: int) -> str:
    here = lines[lineno - 1]
    above = lines[lineno - 2].strip() if lineno >= 2 else ""
    comment = here.partition("#")[2]
    if above.startswith("#"):
        comment += " " + above
    return comment


def test_every_function_level_import_says_why():
    unexplained = []
    for module, imports in IMPORTS.items():
        if module in LAZY_MODULES:
            continue
        lines = MODULES[module].read_text(encoding="utf-8").splitlines()
        for _, name, top, lineno in imports:
            comment = _comment_near(lines, lineno)
            if not top and "cycle:" not in comment and "lazy:" not in comment:
                unexplained.append(f"{MODULES[module].relative_to(ROOT)}:{lineno} {name}")
    assert unexplained == []


def test_lazy_module_list_has_no_stale_entry():
    for module in LAZY_MODULES:
        assert module in MODULES
        assert any(not top for _, _, top, _ in IMPORTS[module]), f"{module} has no function-level import left"


def test_nothing_imports_routes():
    """Blueprints are registered by the app factory only; routes are the top of the stack."""
    offenders = [
        f"{m} -> {t}"
        for m, imports in IMPORTS.items()
        for t, _, _, _ in imports
        if t.endswith(".routes") and m != "app" and not t.startswith(m + ".")
    ]
    assert offenders == []


def test_engines_know_nothing_of_requests_or_areas():
    offenders = []
    for m, imports in IMPORTS.items():
        if not m.startswith(ENGINES):
            continue
        for t, name, _, _ in imports:
            if t.startswith(ABOVE_ENGINES) or t.startswith("tasks") or name in ("flask.request", "flask.g"):
                offenders.append(f"{m} -> {name}")
    assert offenders == []


def test_tasks_never_import_views():
    offenders = [
        f"{m} -> {t}"
        for m, imports in IMPORTS.items()
        if m.startswith("tasks")
        for t, name, _, _ in imports
        if t.endswith((".routes", ".schemas")) or t.startswith("app.console") or name in ("flask.request", "flask.g")
    ]
    assert offenders == []


def test_config_imports_nothing_of_the_app():
    offenders = [f"{m} -> {t}" for m, imports in IMPORTS.items() if m.startswith("config") for t, *_ in imports if t]
    offenders = [o for o in offenders if not o.split(" -> ")[1].startswith("config")]
    assert offenders == []


def test_the_web_process_never_loads_scikit_learn():
    """Training and scoring run on workers: building the app (every blueprint, every CLI group) stays light."""
    code = (
        "import sys; from app import create_app; create_app('testing'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
