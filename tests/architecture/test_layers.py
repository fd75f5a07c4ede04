"""The layering in docs/architecture.md, checked: who may import whom, and where SQL lives.

Each rule reads the source with `ast`, so it sees every import (also the ones made only
for type checking) without running any module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fastim"

#: A string that starts an SQL statement: the store's business alone.
SQL = re.compile(r"^\s*(SELECT|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|CREATE\s+TABLE|"
                 r"ALTER\s+TABLE|REPLACE\s+INTO)\b", re.IGNORECASE)


def modules(folder: str = "") -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every fastim module the file imports, absolute or relative."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "fastim" or name.startswith("fastim.")}


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def imports_of(folder: str) -> list[tuple[str, str]]:
    """(file, imported module) for every fastim import made under a folder of the package."""
    return [(str(path.relative_to(PACKAGE.parent)), name)
            for path in modules(folder) for name in sorted(imported(path))]


def violations(folder: str, allowed: tuple[str, ...]) -> list[str]:
    return [f"{where} imports {name}" for where, name in imports_of(folder)
            if name != "fastim" and not within(name, *allowed)]


def reaching(folders: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{where} imports {name}" for folder in folders
            for where, name in imports_of(folder) if within(name, *forbidden)]


@pytest.mark.parametrize(
    ("folder", "allowed"),
    [
        # The libraries know nothing of the app: fastim.ws stands alone, fastim.http hands
        # upgrades to fastim.ws and nothing else.
        ("ws", ("fastim.ws",)),
        ("http", ("fastim.http", "fastim.ws")),
        # The store speaks SQL for the domain but never imports it.
        ("store", ("fastim.store", "fastim.errors")),
        # The bus carries events; it knows neither the accounts nor the hub.
        ("bus", ("fastim.bus", "fastim.errors")),
    ],
)
def test_a_layer_imports_only_what_is_below_it(folder: str, allowed: tuple[str, ...]) -> None:
    assert violations(folder, allowed) == []


def test_the_domain_never_imports_the_handlers_or_the_root() -> None:
    assert reaching(("accounts", "chat", "media", "notify"),
                    ("fastim.handlers", "fastim.app")) == []


def test_handlers_reach_the_store_only_through_the_services() -> None:
    assert reaching(("handlers",), ("fastim.store",)) == []


def sql_strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value.strip()[:60]}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value)
    ]


def test_only_the_store_holds_sql() -> None:
    found = [line for path in modules() if PACKAGE / "store" not in path.parents
             for line in sql_strings(path)]
    assert found == []


def test_the_rules_can_fail() -> None:
    """The checks above see what they claim to: the store does hold SQL, and a handler
    module's imports are found."""
    assert any(sql_strings(path) for path in modules("store"))
    assert reaching(("handlers",), ("fastim.http",))
