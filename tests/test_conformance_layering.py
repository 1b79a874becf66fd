"""The conformance kit's import rules (conformance/ARCHITECTURE.md), checked by scanning."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "conformance"

#: Layer of each module (path relative to the package, without .py); directories cover
#: every module inside them.
LAYERS = {
    "__init__": 1,
    "failures": 1,
    "transcript": 1,
    "target": 1,
    "baseline": 1,
    "results": 1,
    "spec": 1,
    "profile": 1,
    "coverage": 1,
    "redact": 1,
    "jsonvalues": 1,
    "identifiers": 1,
    "generation": 3,
    "frames": 2,
    "health": 2,
    "preflight": 2,
    "tokens": 2,
    "client": 2,
    "http": 2,
    "harness": 3,
    "steps": 3,
    "checks": 3,
    "reports": 4,
    "plugin": 5,
    "reference": 5,
    "cli": 5,
    "init": 5,
    "clientkit": 5,
}
MAY_IMPORT = {1: {1}, 2: {1, 2}, 3: {1, 2, 3}, 4: {1, 4}, 5: {1, 2, 3, 4, 5}}
NO_PYTEST = {1, 2, 4}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(relative: str) -> int:
    parts = relative.split("/")
    key = parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")
    if key not in LAYERS:
        raise AssertionError(f"conformance/{relative} has no layer in ARCHITECTURE.md's table")
    return LAYERS[key]


def imported_names(path: Path, package_parts: list[str] | None = None) -> Iterator[str]:
    """Every module name an import statement in the file refers to (top level or nested)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if package_parts is None:
        package_parts = ["conformance", *path.relative_to(PACKAGE).parent.parts]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package_parts[: len(package_parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and _call_name(node) in ("import_module", "__import__"):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield arg.value


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return node.func.id if isinstance(node.func, ast.Name) else ""


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_conformance_never_imports_the_reference_server(path: Path) -> None:
    for name in imported_names(path):
        assert name.split(".")[0] != "reference_server", (
            f"conformance/{path.relative_to(PACKAGE)} imports {name}: the kit judges servers "
            "through the network only (start the reference server as a subprocess)"
        )


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_import_only_what_the_architecture_allows(path: Path) -> None:
    relative = str(path.relative_to(PACKAGE))
    layer = layer_of(relative)
    for name in imported_names(path):
        parts = name.split(".")
        if parts[0] == "pytest" or parts[0] == "_pytest":
            assert layer not in NO_PYTEST, f"conformance/{relative} (layer {layer}) imports pytest"
        if parts[0] != "conformance" or len(parts) < 2 or parts[1] == "__version__":
            continue
        target = parts[1]
        if target not in LAYERS:
            continue  # a name imported from the package root, e.g. ConformanceFailure
        assert LAYERS[target] in MAY_IMPORT[layer], (
            f"conformance/{relative} (layer {layer}) imports conformance.{target} "
            f"(layer {LAYERS[target]})"
        )


def test_every_module_has_a_layer() -> None:
    for path in modules():
        layer_of(str(path.relative_to(PACKAGE)))


def test_the_scanner_sees_the_imports_it_must_refuse(tmp_path: Path) -> None:
    """Guard the guard: every form a forbidden import could take is detected."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import reference_server\n"
        "from reference_server.core import server\n"
        "def f():\n    from reference_server import testing\n"
        "importlib.import_module('reference_server.cli')\n"
        "__import__('reference_server.auth')\n"
        "from .. import plugin\n"
    )
    found = set(imported_names(probe, ["conformance", "checks"]))
    assert {
        "reference_server",
        "reference_server.core",
        "reference_server.testing",
        "reference_server.cli",
        "reference_server.auth",
        "conformance.plugin",
    } <= found
