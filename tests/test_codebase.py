"""The shape of the code: every module small enough to read in one sitting."""

from __future__ import annotations

from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "ttflow_async"
MAX_LINES = 400


@pytest.mark.parametrize("module", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_400_lines(module: Path) -> None:
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_LINES, (
        f"{module.relative_to(SRC)} has {lines} lines: split it by concern "
        f"(docs/architecture.md lists the modules and what each owns)"
    )
