"""Fresh venvs for install tests: a snapshot of the package, ``python -m venv``, pip and
isolated ``python -I`` runs, all with a clean environment and bounded. A network failure in
pip skips the test with a message, except under ``CI=true``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP_TIMEOUT_S = 300
RUN_TIMEOUT_S = 60
NETWORK_ERRORS = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Name or service not known"
    r"|Network is unreachable|ConnectTimeout|ReadTimeout|No matching distribution found"
    r"|Could not find a version that satisfies"
)


def clean_env() -> dict[str, str]:
    """This environment without Python, pip, graphai or OTel settings (and no active venv)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "PIP_", "GRAPHAI_", "OTEL_")) and k != "VIRTUAL_ENV"
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def run(cmd: list[str], timeout: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def pip(python: Path, *args: str, cwd: Path) -> None:
    """``python -m pip *args``; skips on a network failure (fails under ``CI=true``)."""
    proc = run([str(python), "-m", "pip", *args], PIP_TIMEOUT_S, cwd)
    if proc.returncode == 0:
        return
    out = proc.stdout + proc.stderr
    if NETWORK_ERRORS.search(out) and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"PyPI not reachable (pip {' '.join(args)}):\n{out[-2000:]}")
    pytest.fail(f"pip {' '.join(args)} failed ({proc.returncode}):\n{out[-4000:]}")


def py(python: Path, code: str, cwd: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """``python -I *flags -c code``: no cwd or user site on ``sys.path``, so only the venv's
    copy of a package can answer."""
    return run([str(python), "-I", *flags, "-c", code], RUN_TIMEOUT_S, cwd)


def snapshot(tmp_path: Path) -> Path:
    """A copy of the package to install (pip would build in the source tree otherwise)."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(
        ROOT / "graphai", src / "graphai", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    return src


def make_venv(tmp_path: Path, name: str = "venv") -> Path:
    """A fresh venv under ``tmp_path``; its python."""
    venv = tmp_path / name
    proc = run([sys.executable, "-m", "venv", str(venv)], PIP_TIMEOUT_S, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
