"""Every Python snippet of the guides runs as written (each one is a whole program)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GUIDES = ["docs/steps.md", "docs/concurrency.md"]
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _snippets() -> list[tuple[str, int, str]]:
    found = []
    for guide in GUIDES:
        text = (REPO / guide).read_text(encoding="utf-8")
        for index, code in enumerate(_BLOCK.findall(text)):
            if "asyncio.run(" in code:
                found.append((guide, index, code))
    return found


@pytest.mark.parametrize(
    ("guide", "index", "code"), _snippets(), ids=[f"{g}#{i}" for g, i, _ in _snippets()]
)
def test_guide_snippet_runs(guide: str, index: int, code: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{guide} snippet {index} failed:\n{done.stderr}"
