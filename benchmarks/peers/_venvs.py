"""
The peer engines' venvs: one per engine under ``benchmarks/peers/.venvs/`` (gitignored), built
from the pinned lock file ``requirements/<engine>.txt`` on the same base interpreter as ours
(so every engine runs the same CPython build).

Idempotent and cached: each venv holds a stamp with the key it was built for (a hash of the
lock file, the base interpreter's version and the platform); a venv whose stamp matches is used
as it is, any other is deleted and rebuilt. The stamp is written last, so an interrupted build
is rebuilt on the next run. Installation: ``pip install --no-deps -r <lock>`` (exact versions,
nothing resolved anew), then ``pip check`` (the lock is complete and consistent).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCKS = HERE / "requirements"
VENVS = HERE / ".venvs"
STAMP = ".peers-key"
PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")


def base_interpreter() -> str:
    """The interpreter our venv was made from (``sys.executable`` outside a venv)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def python_of(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def lock_file(name: str) -> Path:
    path = LOCKS / f"{name}.txt"
    if not path.exists():
        raise SystemExit(f"no lock file {path} for peer venv {name!r}")
    return path


def key(name: str) -> str:
    h = hashlib.sha256(lock_file(name).read_bytes())
    h.update(f"{sys.version}|{platform.system()}|{platform.machine()}".encode())
    return h.hexdigest()[:16]


def pins(name: str) -> dict[str, str]:
    """``{distribution: version}`` from a lock file (comments and blank lines skipped)."""
    out = {}
    for line in lock_file(name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            dist, version = line.split("==", 1)
            out[dist.strip()] = version.strip()
    return out


def is_current(name: str) -> bool:
    venv = VENVS / name
    stamp = venv / STAMP
    return python_of(venv).exists() and stamp.exists() and stamp.read_text().strip() == key(name)


def ensure(name: str) -> Path:
    """The venv's interpreter, after building the venv if it is missing or stale."""
    venv = VENVS / name
    if is_current(name):
        return python_of(venv)
    t0 = time.perf_counter()
    print(f"peers: building {venv} from {lock_file(name).name}", file=sys.stderr)
    if venv.exists():
        shutil.rmtree(venv)
    VENVS.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.gettempdir()  # never the repository: its files must not shadow packages
    subprocess.run([base_interpreter(), "-m", "venv", str(venv)], check=True, cwd=tmp)
    py = str(python_of(venv))
    subprocess.run(
        [py, *PIP, "install", "-q", "--no-deps", "-r", str(lock_file(name))], check=True, cwd=tmp
    )
    check = subprocess.run([py, *PIP, "check"], capture_output=True, text=True, cwd=tmp)
    if check.returncode != 0:
        raise SystemExit(f"{venv}: the lock file is incomplete or inconsistent:\n{check.stdout}")
    (venv / STAMP).write_text(key(name) + "\n")
    print(f"peers: {name} ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return python_of(venv)
