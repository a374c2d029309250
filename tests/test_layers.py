"""The package floors of docs/architecture.md, checked from the code's own imports.

Every import of a synthloop module counts: at the top of a file, inside a function, or under TYPE_CHECKING.
A module may import its own package and packages on lower floors; nothing imports up or sideways; no two
modules import each other, directly or around a circle; no module takes a private name from another.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "synthloop"
FLOOR_LINE = re.compile(r"^\s*floor\s+(\d+)\s*:\s*(.+?)\s*$")


def floors() -> dict[str, int]:
    """unit name -> floor, from the `floors` block of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("```floors", 1)[1].split("```", 1)[0]
    out: dict[str, int] = {}
    for line in block.splitlines():
        match = FLOOR_LINE.match(line)
        if match:
            for unit in match.group(2).split():
                out[unit.rstrip("/").removesuffix(".py")] = int(match.group(1))
    return out


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] not in ("__init__", "__main__") else "synthloop"


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every synthloop import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("synthloop")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("synthloop"):
                continue
            names = [a.name for a in node.names]
            submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
            found += [(m, [], node.lineno) for m in submodules]
            rest = [n for n in names if f"{base}.{n}" not in known]
            if rest or not submodules:
                found.append((base, rest, node.lineno))
    return found


def test_no_import_runs_up_a_floor_or_sideways():
    order = floors()
    mods = modules()
    problems = []
    for name, path in mods.items():
        unit = unit_of(name)
        assert unit in order, f"{path}: package {unit!r} has no floor in docs/architecture.md"
        for target, _, line in imports(path, set(mods)):
            other = unit_of(target)
            if other == unit:
                continue
            if order[other] >= order[unit]:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {unit} (floor {order[unit]}) imports {target} "
                                f"({other}, floor {order[other]})")
    assert not problems, "\n".join(problems)


def executed(importer: str, target: str, mods: dict[str, Path]) -> list[str]:
    """The modules an import runs: the target and every package __init__ above it that the importer is not in
    (those are initialized already)."""
    parts = target.split(".")
    found = []
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name in mods and name != importer and not (importer + ".").startswith(name + "."):
            found.append(name)
    return found


def test_no_import_circle():
    mods = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for target, _, _ in imports(path, set(mods)):
            graph[name].update(executed(name, target, mods))
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(mods):
        if node not in index:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_no_private_name_crosses_a_module():
    mods = modules()
    problems = []
    for name, path in mods.items():
        for target, names, line in imports(path, set(mods)):
            if target == name:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                problems.append(f"{path.relative_to(ROOT)}:{line}: imports {', '.join(private)} from {target}")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_violation(tmp_path):
    """The checks above can fail: an import up a floor and a private import are found in a planted file."""
    planted = PACKAGE / "engines" / "_planted_for_test.py"
    try:
        planted.write_text("from synthloop.loops.controller import _dumps\n")
        found = imports(planted, set(modules()))
        assert found == [("synthloop.loops.controller", ["_dumps"], 1)]
        order = floors()
        assert order[unit_of("synthloop.loops.controller")] > order["engines"]
    finally:
        planted.unlink()
