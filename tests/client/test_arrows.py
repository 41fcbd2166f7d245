"""The arrows between client/'s rooms (docs/DESIGN.md "client/ rooms") point down: read from
the import statements, so a new import that points up fails here."""

from __future__ import annotations

import ast
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client"
LOWER = ("children", "sessions", "failure", "status", "sockets", "host_config",
         "session_settings", "testing_hooks", "tunnel_events")


def imports(module: str) -> set[str]:
    """Every module `client/<module>.py` imports (at any depth, lazily or not)."""
    names = set()
    for node in ast.walk(ast.parse((CLIENT / f"{module}.py").read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ("client." if node.level else "") + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_nothing_below_the_command_line_imports_it():
    for path in CLIENT.glob("*.py"):
        if path.stem in ("cli", "commands"):
            continue
        assert not {"client.cli", "client.commands"} & imports(path.stem), path.name


def test_the_engine_imports_no_command_line_and_its_rooms_not_the_engine():
    assert not {"client.cli", "client.commands"} & imports("engine")
    for module in LOWER:
        assert "client.engine" not in imports(module), module


def test_the_shared_bottom_needs_only_the_standard_library():
    for module in ("failure", "sockets"):
        ours = {name for name in imports(module) if name.split(".")[0] in ("client", "ike", "nm_plugin", "gui")}
        assert ours <= {"ike", "ike.events"}, (module, ours)   # failure.from_event reads ike.events
