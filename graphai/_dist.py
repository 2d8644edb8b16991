"""
Install conflicts with graphai-lib: both distributions own the ``graphai/`` directory.

graphai-otel (this distribution) and graphai-lib ship the same top-level package, so pip
installs one over the other file by file and never notices. Two outcomes matter:

- **Both installed, ours last.** Our files are on disk and work, but uninstalling graphai-lib
  later deletes the files the two share (``graphai/__init__.py``, ``graph.py``, ``callback.py``,
  ``utils.py``, ``nodes/``). ``check_conflict()``, run once by ``import graphai``, logs the
  warning :data:`LOG_INSTALL_CONFLICT` with the fix while everything still works.
- **Already broken** (graphai-lib uninstalled after ours): ``graphai/__init__.py`` is gone, so
  none of our code runs on ``import graphai`` (Python then sees a namespace package and
  ``from graphai import Graph`` fails with ``cannot import name 'Graph'``). ``missing_files()``
  and ``main()`` still work in that state (this module survives) and name the repair.

The import-time check must stay cheap and must never raise: it lists the ``sys.path``
directories for a graphai-lib ``*.dist-info``/``*.egg-info`` entry and imports
``importlib.metadata`` (about 20 ms) only when one is there. It logs through
``graphai._log.log_event`` and never uses ``warnings`` (applications run with ``-W error``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from graphai._log import log_event

__all__ = [
    "DISTRIBUTION",
    "FIX",
    "LOG_INSTALL_CONFLICT",
    "OTHER_DISTRIBUTION",
    "REPAIR",
    "check_conflict",
    "main",
    "missing_files",
    "other_version",
]

DISTRIBUTION = "graphai-otel"
"""This project's distribution name (the import name is ``graphai``)."""
OTHER_DISTRIBUTION = "graphai-lib"
"""Upstream's distribution: it owns the same ``graphai/`` directory."""
LOG_INSTALL_CONFLICT = "install.conflict"
"""Warning: graphai-lib is installed next to graphai-otel; uninstalling it would delete shared
files. Fields: ``other``, ``other_version``, ``fix``."""
INSTALL = f"pip install {DISTRIBUTION} (from an index) or pip install -e . (from a checkout)"
"""The install command that works, from an index and from a source checkout."""
INSTALL_OTEL = (
    f'pip install "{DISTRIBUTION}[otel]" (from an index) or pip install -e ".[otel]" (from a checkout)'
)
"""The same with the ``[otel]`` extra (SDK, OTLP exporters, Prometheus)."""
FIX = f"pip uninstall -y {OTHER_DISTRIBUTION} {DISTRIBUTION}, then {INSTALL}"
"""The clean-up for a venv that holds both distributions."""
REPAIR = f"pip install --force-reinstall --no-deps {DISTRIBUTION}"
"""The repair for a venv whose shared files graphai-lib's uninstall deleted."""

_checked = False


def _project_of(entry: str) -> str | None:
    """Normalized project name of a ``*.dist-info``/``*.egg-info`` directory name, else None."""
    for suffix in (".dist-info", ".egg-info"):
        if entry.endswith(suffix):
            stem = entry[: -len(suffix)]
            return stem.split("-", 1)[0].replace("_", "-").replace(".", "-").lower()
    return None


def _metadata_dir_present(project: str) -> bool:
    """Cheap pre-check: does any ``sys.path`` directory hold metadata for ``project``?"""
    for path in sys.path:
        try:
            names = os.listdir(path or ".")
        except OSError:  # a zip file, a missing directory
            continue
        if any(_project_of(n) == project for n in names):
            return True
    return False


def other_version() -> str | None:
    """graphai-lib's installed version, or None when it is not installed."""
    if not _metadata_dir_present(OTHER_DISTRIBUTION):
        return None
    import importlib.metadata  # lazy: only when a candidate exists (about 20 ms)

    try:
        return importlib.metadata.distribution(OTHER_DISTRIBUTION).version or "unknown"
    except importlib.metadata.PackageNotFoundError:
        return None


def check_conflict() -> str | None:
    """Log :data:`LOG_INSTALL_CONFLICT` (once per process) if graphai-lib is also installed.

    Returns graphai-lib's version when it is installed, else None. Never raises.
    """
    global _checked
    try:
        version = other_version()
        if version is not None and not _checked:
            log_event(
                "warning",
                LOG_INSTALL_CONFLICT,
                other=OTHER_DISTRIBUTION,
                other_version=version,
                fix=FIX,
            )
        _checked = True
        return version
    except Exception:
        return None


def missing_files() -> list[str]:
    """Files of the ``graphai/`` package listed in our RECORD but absent next to this module.

    Empty when everything is there, when graphai-otel's metadata is not installed (a source
    checkout) or for an editable install (its RECORD lists no package files).
    """
    import importlib.metadata

    try:
        files = importlib.metadata.distribution(DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        return []
    root = Path(__file__).resolve().parent.parent
    out = []
    for f in files:
        if f.parts[:1] != ("graphai",) or "__pycache__" in f.parts or f.suffix == ".pyc":
            continue
        if not (root / f).exists():
            out.append(str(f))
    return sorted(out)


def main() -> int:
    """Print the install's state; 0 when healthy, 1 on a conflict or missing files.

    Works in a broken install too: ``python -c "import graphai._dist as d; exit(d.main())"``.
    """
    status = 0
    version = other_version()
    if version is not None:
        print(
            f"{LOG_INSTALL_CONFLICT}: {OTHER_DISTRIBUTION} {version} is installed too; fix: {FIX}"
        )
        status = 1
    missing = missing_files()
    if missing:
        print(
            f"broken install: {len(missing)} file(s) of {DISTRIBUTION} are missing"
            f" (e.g. {missing[0]}), probably deleted by `pip uninstall {OTHER_DISTRIBUTION}`;"
            f" fix: {REPAIR}"
        )
        status = 1
    if status == 0:
        print(f"{DISTRIBUTION}: ok")
    return status


check_conflict()  # on first import, i.e. from ``import graphai`` (graphai/__init__.py)
