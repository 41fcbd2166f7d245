"""Every row of the README's Status table names tests that exist (issue 12: the README claims
only what a test proves; the tests themselves run in their own lanes)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def status_rows() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Status", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]


def named_tests(cell: str) -> list[tuple[str, str]]:
    """(file, test) pairs; "::name" alone continues the previous file."""
    pairs, current = [], None
    for path, name in re.findall(r"(tests/[\w/]+\.py)?::(\w+)", cell):
        current = path or current
        pairs.append((current, name))
    return pairs


def test_every_status_row_names_a_test_that_exists():
    rows = status_rows()
    assert len(rows) > 20
    missing = []
    for row in rows:
        proof = row.split("|")[2]
        pairs = named_tests(proof)
        if "scripts/check-fresh-machine.sh" in proof:
            assert (REPO / "scripts/check-fresh-machine.sh").exists()
            continue
        assert pairs, f"row names no test: {row}"
        for path, name in pairs:
            tree = ast.parse((REPO / path).read_text())
            functions = {node.name for node in ast.walk(tree)
                         if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
            if name not in functions:
                missing.append(f"{path}::{name}")
    assert missing == []
