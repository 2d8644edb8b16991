"""The README's example runs as shown and prints what a reader expects."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None, "README has no python example"
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code.group(1)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "<graphai:answer:start:>",
        "<graphai:answer:>",
        "Hello",
        " ",
        "world",
        "<graphai:answer:end:>",
        "<graphai:END:>",
        "{'query': 'hi', 'answer': 'Hello world'}",
    ]
