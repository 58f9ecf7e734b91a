"""The layer order of the code base, kept: every import (also those inside functions) runs downward or
sideways within a layer, and no two files import each other, directly or in a ring.

Bottom to top (the README's "Code layout and layers" says the same):

1. ``streamscore.foundation`` (errors, settings, logs, wire vocabulary) and the bare ``streamscore`` package
2. ``schemas``       3. ``models``     4. ``drift``      5. ``connectors``    6. ``jobs``
7. ``streamscore.lifecycle``    8. ``streamscore.stack``    9. ``streamscore.harness``
10. ``benchmarks``   11. ``streamscore.cli``

Each layer is one folder, so the order also rules out cycles between folders.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

LAYERS = (
    ("streamscore", "streamscore.foundation"),
    ("schemas",),
    ("models",),
    ("drift",),
    ("connectors",),
    ("jobs",),
    ("streamscore.lifecycle",),
    ("streamscore.stack",),
    ("streamscore.harness",),
    ("benchmarks",),
    ("streamscore.cli",),
)
TOP_PACKAGES = ("streamscore", "schemas", "models", "drift", "connectors", "jobs", "benchmarks")
PURE_CORE = ("schemas", "models", "drift")  # never import the engine or the Kafka client
ENGINE_PACKAGES = ("pyflink", "confluent_kafka")


def layer_of(module: str) -> int:
    """The index of the layer whose longest prefix names ``module``; ``streamscore`` alone is the ground floor."""
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            exact_only = prefix == "streamscore"
            named = module == prefix or (not exact_only and module.startswith(prefix + "."))
            if named and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add its folder to LAYERS (and the README)")
    return best


def project_modules() -> dict[str, Path]:
    modules = {}
    for top in TOP_PACKAGES:
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the file, those inside functions included."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import name``: the submodule pkg.name where there is one, else pkg itself
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that an imported name lands in (``pkg.mod.func`` -> ``pkg.mod``), or None."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, dict[str, int]]:
    modules = project_modules()
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        for line, name in imported_names(path, module):
            target = resolve(name, modules)
            if target and target != module:
                edges.setdefault(target, line)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one member (import rings)."""
    index, low, stack, on_stack, rings, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            ring = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                ring.append(member)
                if member == node:
                    break
            if len(ring) > 1:
                rings.append(sorted(ring))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return rings


GRAPH = import_graph()


def test_every_module_has_a_layer():
    for module in GRAPH:
        layer_of(module)


def test_no_import_runs_upward():
    upward = [f"{module} (layer {layer_of(module) + 1}) imports {target} (layer {layer_of(target) + 1}) "
              f"at line {line}"
              for module, edges in GRAPH.items() for target, line in edges.items()
              if layer_of(target) > layer_of(module)]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_import_cycles_between_files():
    rings = strongly_connected(GRAPH)
    assert not rings, "files that import each other (directly or in a ring): " + "; ".join(map(" <-> ".join, rings))


@pytest.mark.parametrize("package", PURE_CORE)
def test_pure_core_never_imports_the_engine_or_the_kafka_client(package):
    offenders = [f"{path.relative_to(REPO)}:{line} imports {name}"
                 for module, path in project_modules().items() if module.split(".")[0] == package
                 for line, name in imported_names(path, module) if name.split(".")[0] in ENGINE_PACKAGES]
    assert not offenders, "\n".join(offenders)


def test_the_checker_sees_an_upward_import_inside_a_function(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from streamscore.cli.main import main\n    return main\n")
    names = [name for _, name in imported_names(source, "schemas.probe")]
    target = resolve("streamscore.cli.main.main", project_modules())
    assert "streamscore.cli.main.main" in names and target == "streamscore.cli.main"
    assert layer_of(target) > layer_of("schemas.probe")


def test_the_checker_finds_a_ring():
    assert strongly_connected({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]


# Outside the settings, only these read a setting-like variable of their own environment, each for a reason:
ENVIRONMENT_READERS = {
    "jobs.job_secrets": "the job's driver finds the properties file its submitter left (a path, not a setting)",
    "jobs.submitter_daemon": "gives each job script it runs its caller's environment, then restores its own",
}


def _environment_reads(path: Path) -> list[int]:
    """Lines that read a ``STREAMSCORE_*`` (or computed) variable: os.environ.get / [] / os.getenv.
    A literal other name (PATH, the device machine's OUT) is the process's, not a setting."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv") and node.args:
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        else:
            continue
        literal = isinstance(key, ast.Constant) and isinstance(key.value, str)
        if not literal or key.value.startswith("STREAMSCORE_"):
            lines.append(node.lineno)
    return lines


def test_settings_are_read_in_one_place():
    readers = {f"{path.relative_to(REPO)}:{line}"
               for module, path in project_modules().items()
               if not module.startswith("streamscore.foundation") and module not in ENVIRONMENT_READERS
               for line in _environment_reads(path)}
    assert not readers, f"environment read outside streamscore/foundation (use the settings): {sorted(readers)}"


def test_errors_keep_their_cause():
    dropped = [f"{path.relative_to(REPO)}:{node.lineno}"
               for path in project_modules().values()
               for node in ast.walk(ast.parse(path.read_text(), str(path)))
               if isinstance(node, ast.Raise) and isinstance(node.cause, ast.Constant) and node.cause.value is None]
    assert not dropped, f"'raise ... from None' drops the cause (librdkafka's error, the OSError...): {dropped}"


def test_the_environment_check_sees_a_setting_read(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('import os\nA = os.environ.get("STREAMSCORE_X")\nB = os.environ["PATH"]\nC = os.getenv(NAME)\n')
    assert _environment_reads(probe) == [2, 4]
