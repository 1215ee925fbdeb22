"""The import layers of docs/architecture.md: no import runs back up.

Every module under src/cryomotion is parsed (not imported) and each ``cryomotion.*`` import,
at module level or inside a function (``TYPE_CHECKING`` blocks too), must name a module of
its own layer or of a layer below. Top to bottom:

    cli -> workflows -> analysis -> train -> systems -> models, simulate -> data, deform
        -> imaging, dynamics -> structure -> geometry, errors, atomic_write, npz_arrays

A new top-level package or module must be placed in ``LAYERS`` before it can be imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cryomotion

PACKAGE = Path(cryomotion.__file__).resolve().parent

# Top to bottom; the names of one tuple form one layer. "" is the package itself
# (``from cryomotion import __version__``).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("workflows",),
    ("analysis",),
    ("train",),
    ("systems",),
    ("models", "simulate"),
    ("data", "deform"),
    ("imaging", "dynamics"),
    ("structure",),
    ("geometry", "errors", "atomic_write", "npz_arrays", ""),
)
RANK = {name: len(LAYERS) - i for i, layer in enumerate(LAYERS) for name in layer}

# Modules that belong to a layer other than their folder's while they move, e.g.
# {"cryomotion.models.nma": "systems"} (empty: issue 10 moved the recipes to systems/).
PLACED: dict[str, str] = {}

# Upward imports tolerated while a move that removes them is under way, as (importer,
# imported) pairs, e.g. ("cryomotion.systems.segments", "cryomotion.analysis.segmentation");
# any other one fails test_no_import_runs_back_up. Issue 10 removed the last two
# (models/segments.py -> analysis.segmentation, models/autoencoder.py -> train.losses).
PENDING: frozenset[tuple[str, str]] = frozenset()


def module_name(path: Path) -> str:
    parts = ("cryomotion", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether ``name`` (cryomotion.…) is a module or package of the source tree."""
    relative = PACKAGE.joinpath(*name.split(".")[1:])
    return relative.with_suffix(".py").is_file() or (relative / "__init__.py").is_file()


def imports(path: Path, name: str | None = None) -> set[str]:
    """The cryomotion modules that ``path`` (module ``name``) imports, wherever the import
    statement is."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:  # `from cryomotion.systems import nma` imports a module
                sub = f"{module}.{alias.name}"
                found.add(sub if is_module(sub) else module)
    return {m for m in found if m == "cryomotion" or m.startswith("cryomotion.")}


def layer(module: str) -> str:
    if module in PLACED:
        return PLACED[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations() -> tuple[set[tuple[str, str]], set[str]]:
    """(importer, imported) pairs that run up a layer, and modules in no layer."""
    upward, unplaced = set(), set()
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for imported in imports(path):
            for module in (importer, imported):
                if layer(module) not in RANK:
                    unplaced.add(module)
            if layer(importer) in RANK and layer(imported) in RANK:
                if RANK[layer(imported)] > RANK[layer(importer)]:
                    upward.add((importer, imported))
    return upward, unplaced


def test_the_parser_sees_function_level_relative_and_from_imports(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "import numpy\n"
        "import cryomotion.errors\n"
        "from cryomotion import atomic_write, __version__\n"
        "from cryomotion.systems import nma\n"
        "from . import metrics\n"
        "from ..structure.io import read_model\n"
        "def f():\n"
        "    from cryomotion.analysis.segmentation import x\n"
    )
    assert imports(source, "cryomotion.train.example") == {
        "cryomotion.errors",
        "cryomotion.atomic_write",
        "cryomotion",
        "cryomotion.systems.nma",
        "cryomotion.train.metrics",
        "cryomotion.structure.io",
        "cryomotion.analysis.segmentation",
    }
    here = imports(PACKAGE / "cli" / "demo.py")
    assert "cryomotion.workflows.demo" in here and "cryomotion.cli.flag_types" in here
    assert layer("cryomotion.systems.nma") == "systems"
    assert layer("cryomotion") == "" and RANK["cli"] > RANK["workflows"] > RANK["errors"]
    names = {module_name(p) for p in PACKAGE.rglob("*.py")}
    assert {"cryomotion", "cryomotion.train.config", "cryomotion.workflows.demo"} <= names


def test_every_module_lies_in_a_layer():
    _, unplaced = violations()
    assert not unplaced, f"place these in LAYERS (tests/test_import_layers.py): {sorted(unplaced)}"


def test_no_import_runs_back_up():
    upward, _ = violations()
    new = sorted(upward - PENDING)
    assert not new, "imports running back up the layers:\n" + "\n".join(
        f"  {a} ({layer(a)}) -> {b} ({layer(b)})" for a, b in new
    )
