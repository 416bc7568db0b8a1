"""The import map of DESIGN.md, checked by parsing every module under pretrain/ (no imports run).

An import is any `import`/`from ... import` anywhere in a module (inside functions too) and any
string constant naming a `pretrain` module (`importlib.import_module` targets, lazy-name tables).
The "part" of `pretrain.X.Y` is `X` (`pretrain/errors.py` is the part `errors`). Rules:
- no import cycle between parts;
- the low parts import only what the map allows (`LOW_PARTS`); `errors` imports nothing;
- `ray` is imported only under pretrain/distributed/;
- nothing imports the CLI.
Each violation is printed with file:line so the fix is one jump away.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "pretrain"

# What each low part may import (besides itself). The upper parts (weights, train, evaluate,
# distributed, bench, quickstart, smoke, and any new one) may import anything but cli, without cycles.
LOW_PARTS: dict[str, set[str]] = {
    "errors": set(),
    "pixels": set(),  # the pixel contract (mean/std, token grid): data and models read it directly
    "models": {"errors", "pixels"},
    "masking": {"errors"},
    "config": {"errors", "pixels", "models"},
    "data": {"errors", "pixels", "masking", "config"},
    "runtime": {"errors", "models", "config"},  # placement and library quieting, below train and evaluate
}

# No edge against the map is allowed (the public `from_pretrained` lives in `pretrain.weights`).
ALLOWED_EDGES: set[tuple[str, str]] = set()

# Known violations being removed by another change right now; each entry is (file, imported part).
# Empty this set when that change lands: the test then holds the code to the map.
BEING_REMOVED: set[tuple[str, str]] = set()

NAMED_MODULE = re.compile(r"^pretrain(\.\w+)+(:\w+)?$")


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository root, e.g. pretrain/data/shards/build.py
    line: int
    module: str  # absolute dotted name, e.g. pretrain.train.entry or ray.train

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str | None:
    """`pretrain.data.shards.build` -> `data`; None for modules outside pretrain or the package root."""
    pieces = module.split(".")
    if pieces[0] != "pretrain" or len(pieces) < 2:
        return None
    return pieces[1]


def runtime_nodes(tree: ast.AST):
    """Every node of the module except those under `if TYPE_CHECKING:` (never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_module(name: str) -> bool:
    """Whether `pretrain.<name>` is a module or package (not an attribute like __version__)."""
    return (PACKAGE_ROOT / name).is_dir() or (PACKAGE_ROOT / f"{name}.py").is_file()


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    file = str(path.relative_to(PACKAGE_ROOT.parent))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[Import] = []
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found += [Import(file, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pretrain import cli` imports the module pretrain.cli
            names = [
                f"{base}.{alias.name}" if base == "pretrain" and _is_module(alias.name) else base
                for alias in node.names
            ]
            found += [Import(file, node.lineno, name) for name in dict.fromkeys(names)]
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and NAMED_MODULE.match(node.value)
        ):
            found.append(Import(file, node.lineno, node.value.split(":")[0]))
    return found


def all_imports() -> list[Import]:
    return [imp for path in sorted(PACKAGE_ROOT.rglob("*.py")) for imp in imports_of(path)]


def part_edges(imports: list[Import]) -> dict[tuple[str, str], list[Import]]:
    """(importing part, imported part) -> the imports making that edge (self-edges left out)."""
    edges: dict[tuple[str, str], list[Import]] = {}
    for imp in imports:
        source = part_of(module_name(PACKAGE_ROOT.parent / imp.file))
        target = part_of(imp.module)
        if source and target and source != target:
            edges.setdefault((source, target), []).append(imp)
    return edges


def exempt(imp: Import, target: str) -> bool:
    return (imp.file, target) in ALLOWED_EDGES | BEING_REMOVED


def find_cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Every elementary cycle's node list, each found once (from its smallest node)."""
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
    cycles: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for following in sorted(graph.get(node, ())):
            if following == start:
                cycles.append(path[:])
            elif following > start and following not in path:
                walk(start, following, path + [following])

    for start in sorted(graph):
        walk(start, start, [start])
    return cycles


def format_violations(lines: list[str]) -> str:
    return f"{len(lines)} import-map violation(s):\n  " + "\n  ".join(lines)


def test_no_cycle_between_parts():
    edges = {
        edge: [imp for imp in found if not exempt(imp, edge[1])]
        for edge, found in part_edges(all_imports()).items()
    }
    edges = {edge: found for edge, found in edges.items() if found}
    problems = []
    for cycle in find_cycles(set(edges)):
        ring = cycle + [cycle[0]]
        where = [f"{a} -> {b} at {edges[(a, b)][0].where}" for a, b in zip(ring, ring[1:])]
        problems.append(" -> ".join(ring) + " (" + "; ".join(where) + ")")
    assert not problems, format_violations(problems)


def test_low_parts_import_only_what_the_map_allows():
    problems = []
    for (source, target), found in sorted(part_edges(all_imports()).items()):
        if source in LOW_PARTS and target not in LOW_PARTS[source]:
            problems += [
                f"{imp.where}: {source} imports {imp.module} ({target})"
                for imp in found
                if not exempt(imp, target)
            ]
    assert not problems, format_violations(problems)


def test_ray_is_imported_only_under_distributed():
    problems = [
        f"{imp.where}: imports {imp.module}"
        for imp in all_imports()
        if imp.module.split(".")[0] == "ray" and not imp.file.startswith("pretrain/distributed/")
    ]
    assert not problems, format_violations(problems)


def test_nothing_imports_the_cli():
    problems = [
        f"{imp.where}: imports {imp.module}"
        for imp in all_imports()
        if part_of(imp.module) == "cli" and not imp.file.startswith("pretrain/cli/")
    ]
    assert not problems, format_violations(problems)


def test_the_exemptions_are_still_needed():
    """An exemption for an import that no longer exists must go, so it cannot hide a new one."""
    used = {(imp.file, part_of(imp.module)) for imp in all_imports()}
    stale = sorted(f"{file} -> {part}" for file, part in BEING_REMOVED - used)
    assert not stale, f"remove these from BEING_REMOVED, they are gone: {stale}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import pretrain.train.entry\n", ["pretrain.train.entry"]),
        ("def f():\n    from pretrain.distributed import shard_tasks\n", ["pretrain.distributed"]),
        ("from . import stages\n", ["pretrain.data.streams"]),
        ("from ..shards import manifest\n", ["pretrain.data.shards"]),
        ("from pretrain import cli\n", ["pretrain.cli"]),
        ("TABLE = {'x': 'pretrain.weights.load'}\n", ["pretrain.weights.load"]),
        ("from pretrain import __version__\n", ["pretrain"]),
        ("if TYPE_CHECKING:\n    from pretrain.train import entry\n", []),
        ("import ray.train\n", ["ray.train"]),
    ],
)
def test_imports_are_found_inside_functions_relative_and_by_name(tmp_path, monkeypatch, source, expected):
    package = tmp_path / "pretrain" / "data" / "streams"
    package.mkdir(parents=True)
    (tmp_path / "pretrain" / "cli").mkdir()
    module = package / "example.py"
    module.write_text(source)
    monkeypatch.setattr(f"{__name__}.PACKAGE_ROOT", tmp_path / "pretrain")
    assert [imp.module for imp in imports_of(module)] == expected


def test_cycles_are_found():
    assert find_cycles(
        {
            ("data", "distributed"),
            ("distributed", "train"),
            ("train", "data"),
            ("evaluate", "train"),
            ("train", "evaluate"),
        }
    ) == [["data", "distributed", "train"], ["evaluate", "train"]]
