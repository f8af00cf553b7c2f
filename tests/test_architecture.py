"""The shape of the package (docs/architecture.md), checked on the source: who may import whom,
entry points that no module imports, one home per constant, modules of a readable size."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mclcr_keras"
MAX_LINES = 350
# `python -m mclcr_keras.<tool>`: argparse and one library call each; nothing imports them.
ENTRY_POINTS = {"mclcr_keras.build_records", "mclcr_keras.train", "mclcr_keras.evaluate",
                "mclcr_keras.export", "mclcr_keras.predict", "mclcr_keras.demo_data",
                "mclcr_keras.demo.__main__", "mclcr_keras.viz.__main__",
                "mclcr_keras.serve.__main__"}
SHELL = "mclcr_keras.cli"
# What each part of the package may import from the package (besides itself).
BASE = {"mclcr_keras.errors", "mclcr_keras.files", "mclcr_keras.lazy"}
ALLOWED = {
    "mclcr_keras": set(),  # the package's __init__: the version, nothing else
    "mclcr_keras.errors": set(),
    "mclcr_keras.files": {"mclcr_keras.errors"},
    "mclcr_keras.lazy": set(),
    "mclcr_keras.quiet_tf": set(),
    "mclcr_keras.layers": set(),
    "mclcr_keras.metrics": set(),
    "mclcr_keras.losses": {"mclcr_keras.models.config"},
    "mclcr_keras.data": BASE,
    "mclcr_keras.models": BASE | {"mclcr_keras.layers", "mclcr_keras.losses"},
    "mclcr_keras.training": BASE | {"mclcr_keras.data", "mclcr_keras.models",
                                    "mclcr_keras.losses", "mclcr_keras.metrics"},
    # predict --explain draws with viz.explain (lazily, inference.explanations); nothing else of viz
    "mclcr_keras.inference": BASE | {"mclcr_keras.data", "mclcr_keras.models",
                                     "mclcr_keras.viz.explain"},
    "mclcr_keras.viz": BASE | {"mclcr_keras.data", "mclcr_keras.models", "mclcr_keras.layers"},
    "mclcr_keras.evaluation": BASE | {"mclcr_keras.data", "mclcr_keras.inference",
                                      "mclcr_keras.metrics", "mclcr_keras.viz",
                                      "mclcr_keras.training"},
    "mclcr_keras.serve": BASE | {"mclcr_keras.data", "mclcr_keras.inference"},
    # the Beam engines of build_records and predict: the same conversion and scoring pieces
    "mclcr_keras.beam": BASE | {"mclcr_keras.data", "mclcr_keras.inference",
                                "mclcr_keras.quiet_tf"},
    "mclcr_keras.demo": BASE | {"mclcr_keras.data", "mclcr_keras.models", "mclcr_keras.training",
                                "mclcr_keras.inference", "mclcr_keras.evaluation",
                                "mclcr_keras.viz"},
}
# Constants that used to live in several modules: exactly one module assigns each.
SHARED_CONSTANTS = ("VARIANTS", "LABEL_NAMES", "SPLITS", "SOURCES", "VIDEO_EXTENSIONS",
                    "IMAGE_EXTENSIONS", "SUPCON_DENOMINATORS", "DISTRIBUTE", "REDUCE_LR",
                    "PIXELS_SIGNATURE", "BYTES_SIGNATURE", "CONFIG_FILE", "BEST_MODEL",
                    "DATASET_JSON", "SCHEMA_VERSION", "EXIT_USAGE", "ENGINES")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every ``mclcr_keras`` module a file imports, at any depth (lazy imports included)."""
    name = module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this package
                base = name.split(".")[: -node.level or None]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # `from mclcr_keras.data import schema` imports the submodule schema
            found.update(f"{module}.{alias.name}" for alias in node.names
                         if f"{module}.{alias.name}" in MODULES)
    return {m for m in found if m == "mclcr_keras" or m.startswith("mclcr_keras.")}


def part_of(module: str) -> str:
    """The entry of `ALLOWED` a module belongs to (its top-level package or module)."""
    for part in sorted(ALLOWED, key=len, reverse=True):
        if module == part or (part != "mclcr_keras" and module.startswith(part + ".")):
            return part
    return module


def test_the_walk_finds_the_package():
    assert {"mclcr_keras.cli", "mclcr_keras.data.writer.build", "mclcr_keras.training.loop",
            "mclcr_keras.inference.scorer", "mclcr_keras.demo.stages"} <= set(MODULES)
    assert ENTRY_POINTS <= set(MODULES)
    # The checker sees lazy, function-level imports too.
    assert "mclcr_keras.data.writer.build" in imports_of(MODULES["mclcr_keras.build_records"])


@pytest.mark.parametrize("module", sorted(set(MODULES) - ENTRY_POINTS - {SHELL}))
def test_libraries_import_only_what_their_part_may(module):
    part = part_of(module)
    assert part in ALLOWED, f"{module} belongs to no part of docs/architecture.md"
    allowed = ALLOWED[part] | {part}
    wrong = sorted(m for m in imports_of(MODULES[module])
                   if m != "mclcr_keras" and m not in allowed and part_of(m) not in allowed)
    assert not wrong, f"{module} ({part}) may not import {wrong}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_an_entry_point_and_only_entry_points_use_the_shell(module):
    imported = imports_of(MODULES[module])
    assert not imported & ENTRY_POINTS, f"{module} imports {sorted(imported & ENTRY_POINTS)}"
    if module not in ENTRY_POINTS:
        assert SHELL not in imported, f"{module} is a library and imports {SHELL}"


@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_entry_points_run_in_the_shell(module):
    source = MODULES[module].read_text()
    assert SHELL in imports_of(MODULES[module])
    assert "cli.run(" in source and "def main(" in source


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_readable(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (> {MAX_LINES}): split it"


def test_every_shared_constant_has_one_home():
    homes = {name: [] for name in SHARED_CONSTANTS}
    for module, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            for target in targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                for item in names:
                    if isinstance(item, ast.Name) and item.id in homes:
                        homes[item.id].append(module)
    assert {name: where for name, where in homes.items() if len(where) != 1} == {}


def third_party_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_beam_package_imports_apache_beam():
    """Beam is the optional ``beam`` extra: the rest of the package works without it."""
    users = {name for name, path in MODULES.items() if "apache_beam" in third_party_imports(path)}
    assert users and all(name.startswith("mclcr_keras.beam.") for name in users), sorted(users)
