"""Which checks verify which requirements, read from the check modules' source.

No server and no pytest collection are needed: the ``requirements`` markers are read with
:mod:`ast`, so the docs site and ``rep-conformance list`` can show coverage anywhere.
A marker on a function, on a class, or a module-level ``pytestmark`` all count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHECKS_DIR = Path(__file__).with_name("checks")


@dataclass(frozen=True)
class CheckInfo:
    check_id: str
    requirement_ids: tuple[str, ...]
    informational: bool
    doc: str


def _marks(decorators: list[ast.expr], name: str) -> Iterator[ast.Call | ast.Attribute]:
    for node in decorators:
        target = node.func if isinstance(node, ast.Call) else node
        if isinstance(target, ast.Attribute) and target.attr == name:
            value = target.value
            if isinstance(value, ast.Attribute) and value.attr == "mark":
                yield node if isinstance(node, ast.Call) else target


def _requirement_args(decorators: list[ast.expr]) -> list[str]:
    found: list[str] = []
    for mark in _marks(decorators, "requirements"):
        if isinstance(mark, ast.Call):
            found.extend(
                a.value
                for a in mark.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            )
    return found


def _module_marks(tree: ast.Module) -> list[ast.expr]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            value = node.value
            return list(value.elts) if isinstance(value, ast.List | ast.Tuple) else [value]
    return []


def _functions(body: list[ast.stmt]) -> Iterator[tuple[ast.FunctionDef, list[ast.expr]]]:
    for node in body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            yield node, []
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for inner, _ in _functions(node.body):
                yield inner, list(node.decorator_list)


def scan_module(path: Path) -> list[CheckInfo]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module_marks = _module_marks(tree)
    found = []
    for function, class_marks in _functions(tree.body):
        decorators = module_marks + class_marks + list(function.decorator_list)
        ids = tuple(dict.fromkeys(_requirement_args(decorators)))
        informational = any(True for _ in _marks(decorators, "informational"))
        doc = (ast.get_docstring(function) or "").split("\n\n")[0].replace("\n", " ")
        found.append(CheckInfo(f"{path.name}::{function.name}", ids, informational, doc))
    return found


def all_checks(directory: Path = CHECKS_DIR) -> list[CheckInfo]:
    found: list[CheckInfo] = []
    for path in sorted(directory.glob("test_*.py")):
        found.extend(scan_module(path))
    return found


def tests_by_requirement(directory: Path = CHECKS_DIR) -> dict[str, list[str]]:
    """Requirement id -> ids of the checks that name it, in module order."""
    found: dict[str, list[str]] = {}
    for check in all_checks(directory):
        for requirement_id in check.requirement_ids:
            found.setdefault(requirement_id, []).append(check.check_id)
    return found
