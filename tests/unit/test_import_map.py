"""The import map of the README ("How the code is organised"), checked by parsing every module under
pretrain/ (no imports run). The rules live in `import_map.py` beside this file; the README's table is
rendered from them and checked here too.

An import is any `import`/`from ... import` anywhere in a module (inside functions too) and any
string constant naming a `pretrain` module (`importlib.import_module` targets, lazy-name tables).
The "part" of `pretrain.X.Y` is `X` (`pretrain/errors.py` is the part `errors`). Rules:
- every part imports only the parts its row allows (`import_map.PARTS`), which lie below it;
- no import cycle between parts, between modules, or between the folders of a part
  (`pretrain/data/video` <-> `pretrain/data/augment`);
- `ray` is imported only under pretrain/distributed/;
- nothing imports the CLI.
Each violation is printed with file:line so the fix is one jump away.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from import_map import PARTS, RAY_ONLY_IN, RULES, readme_block, render_table

REPO = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = REPO / "pretrain"

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


def is_module(dotted: str) -> bool:
    """Whether `pretrain.x.y` names a module or package of ours (not an attribute like __version__)."""
    pieces = dotted.split(".")
    if pieces[0] != "pretrain":
        return False
    path = PACKAGE_ROOT.joinpath(*pieces[1:])
    return path.is_dir() or path.with_suffix(".py").is_file()


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
                f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base for alias in node.names
            ]
            found += [Import(file, node.lineno, name) for name in dict.fromkeys(names)]
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and NAMED_MODULE.match(node.value)
        ):
            found.append(Import(file, node.lineno, node.value.split(":")[0]))
    return found


@functools.cache
def all_imports() -> list[Import]:
    """Every import of the package, parsed once per test session."""
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
    return (imp.file, target) in BEING_REMOVED


def resolved(module: str) -> str | None:
    """The longest prefix of `module` that is one of our modules (None outside the package)."""
    pieces = module.split(".")
    while len(pieces) > 1 and not is_module(".".join(pieces)):
        pieces.pop()
    return ".".join(pieces) if len(pieces) > 1 and is_module(".".join(pieces)) else None


def module_edges(imports: list[Import]) -> dict[tuple[str, str], list[Import]]:
    """(importing module, imported module) -> the imports making that edge. Importing a package's
    own parent package is left out (Python runs it first anyway, it is not a dependency)."""
    edges: dict[tuple[str, str], list[Import]] = {}
    for imp in imports:
        source, target = module_name(REPO / imp.file), resolved(imp.module)
        if target and target != source and not source.startswith(target + "."):
            edges.setdefault((source, target), []).append(imp)
    return edges


def folder_of(module: str) -> str:
    """`pretrain.data.video.crop` -> `pretrain.data.video`; a package is its own folder."""
    return module if (PACKAGE_ROOT.parent / module.replace(".", "/")).is_dir() else module.rpartition(".")[0]


def folder_edges(edges: dict[tuple[str, str], list[Import]]) -> dict[tuple[str, str], list[Import]]:
    """Module edges between folders, neither inside the other (`data.video` -> `data.augment`)."""
    found: dict[tuple[str, str], list[Import]] = {}
    for (source, target), imports in edges.items():
        a, b = folder_of(source), folder_of(target)
        if a != b and not a.startswith(b + ".") and not b.startswith(a + "."):
            found.setdefault((a, b), []).extend(imports)
    return found


def tangles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one node: the nodes of every import cycle,
    grouped (Tarjan's algorithm; linear, unlike listing every elementary cycle of a large graph)."""
    graph: dict[str, list[str]] = {}
    for source, target in sorted(edges):
        graph.setdefault(source, []).append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for following in graph.get(node, ()):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def describe_tangles(edges: dict[tuple[str, str], list[Import]]) -> list[str]:
    """A line per tangle: its nodes, then each edge inside it with the first import making it."""
    lines = []
    for component in tangles(set(edges)):
        inside = [(a, b) for a, b in sorted(edges) if a in component and b in component]
        where = "; ".join(f"{a} -> {b} at {edges[(a, b)][0].where}" for a, b in inside)
        lines.append(" <-> ".join(component) + f" ({where})")
    return lines


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


def test_every_part_imports_only_what_its_row_allows():
    problems = []
    for (source, target), found in sorted(part_edges(all_imports()).items()):
        rule = RULES.get(source)
        if rule is None:
            problems.append(f"{found[0].where}: the part {source} has no row in tests/unit/import_map.py")
        elif target not in rule.may_import:
            problems += [
                f"{imp.where}: {source} imports {imp.module} ({target})"
                for imp in found
                if not exempt(imp, target)
            ]
    assert not problems, format_violations(problems)


def test_the_map_names_every_part_and_only_lower_parts():
    """The rules allow no cycle by construction: each part may import only parts listed below it."""
    parts = {
        path.stem
        for path in PACKAGE_ROOT.iterdir()
        if path.suffix == ".py" or (path / "__init__.py").is_file()
    }
    assert {part.name for part in PARTS} == parts - {"__init__", "__main__"}
    for position, part in enumerate(PARTS):
        assert part.may_import <= {lower.name for lower in PARTS[:position]}, part.name


def test_no_cycle_between_modules():
    problems = describe_tangles(module_edges(all_imports()))
    assert not problems, format_violations(problems)


def test_no_cycle_between_folders():
    problems = describe_tangles(folder_edges(module_edges(all_imports())))
    assert not problems, format_violations(problems)


def test_readme_table_is_generated_from_the_map():
    readme = (REPO / "README.md").read_text()
    assert readme_block(readme) == render_table(), (
        "regenerate: python tests/unit/import_map.py --write README.md"
    )


def test_ray_is_imported_only_under_distributed():
    problems = [
        f"{imp.where}: imports {imp.module}"
        for imp in all_imports()
        if imp.module.split(".")[0] == "ray" and not imp.file.startswith(f"pretrain/{RAY_ONLY_IN}/")
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


def test_tangles_group_the_modules_of_each_cycle():
    edges = {("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d"), ("f", "a")}
    assert tangles(edges) == [["a", "b", "c"], ["d", "e"]]
    assert tangles({("a", "b"), ("b", "c")}) == []


def test_folder_edges_leave_out_a_folder_and_its_subfolders():
    def edge(a: str, b: str) -> dict:
        return {(a, b): [Import("pretrain/x.py", 1, b)]}

    assert set(folder_edges(edge("pretrain.data.video.frames", "pretrain.data.augment.transforms"))) == {
        ("pretrain.data.video", "pretrain.data.augment")
    }
    assert folder_edges(edge("pretrain.data.shards.build", "pretrain.data.shards.listing")) == {}
    assert folder_edges(edge("pretrain.data.streams.loader", "pretrain.data")) == {}
