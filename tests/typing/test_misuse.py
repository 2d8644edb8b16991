"""The public signatures are typed, not ``Any``: mypy --strict rejects misuse in user code
(``tests/typing/misuse.py``), each error on its line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MISUSE = Path(__file__).with_name("misuse.py")


def test_misuse_is_rejected_line_by_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--no-error-summary",
         str(MISUSE.relative_to(ROOT))],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = {int(m.group(1)) for m in re.finditer(r"misuse\.py:(\d+): error:", proc.stdout)}
    expected = {
        n
        for n, line in enumerate(MISUSE.read_text().splitlines(), start=1)
        if "# error:" in line
    }
    assert errors == expected, proc.stdout
