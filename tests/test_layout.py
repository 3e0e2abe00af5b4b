"""The package's shape: a few modules at the top, small modules, no import circle, a lazy public API."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import deep_emotion

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "deep_emotion"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """deep_emotion modules `path` imports, at module level or inside functions (a lazy import is still a
    dependency), except under `if TYPE_CHECKING:` (annotations only)."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test)
        for n in ast.walk(node)
    }
    out: set[str] = set()
    for sub in ast.walk(tree):
        if id(sub) in typing_only:
            continue
        if isinstance(sub, ast.Import):
            out |= {a.name for a in sub.names if a.name.startswith("deep_emotion")}
        elif isinstance(sub, ast.ImportFrom):
            base = sub.module or ""
            if sub.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - sub.level + 1] + ([base] if base else []))
            if base.startswith("deep_emotion"):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in sub.names}
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    g = {}
    for name, path in files.items():
        deps = {d for d in imports_of(path) if d in files and d != name}
        # importing a.b.c imports a.b and a first (their __init__)
        for d in list(deps):
            parts = d.split(".")
            deps |= {".".join(parts[:k]) for k in range(2, len(parts)) if ".".join(parts[:k]) in files}
        g[name] = deps - {name}
    return g


def test_at_most_eight_modules_at_the_top_and_none_over_500_lines():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 8, top
    long = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long


def test_no_import_circle():
    g = graph()
    # a package's __init__ re-exporting its own modules is not a circle through that package
    edges = {m: {d for d in deps if not (m.startswith(d + ".") and d in g)} for m, deps in g.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in edges[m]:
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(d) :] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_cycle_check_finds_a_circle(tmp_path):
    """The check above can fail: two modules importing each other are reported."""
    global PKG, ROOT
    pkg = tmp_path / "deep_emotion"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from deep_emotion.b import x\n")
    (pkg / "b.py").write_text("from deep_emotion.a import y\n")
    saved = PKG, ROOT
    PKG, ROOT = pkg, tmp_path
    try:
        try:
            test_no_import_circle()
        except AssertionError as e:
            assert "deep_emotion.a" in str(e) and "deep_emotion.b" in str(e)
        else:
            raise AssertionError("the circle was not found")
    finally:
        PKG, ROOT = saved


def test_public_api_resolves_and_is_lazy():
    for name in deep_emotion.__all__:
        assert getattr(deep_emotion, name) is not None
    code = "import sys, deep_emotion, deep_emotion.models.card, deep_emotion.results; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
