"""
graphai-otel and graphai-lib 0.0.12 both own the ``graphai/`` directory; pip installs one over
the other file by file. These tests pin what happens in a fresh venv (docs/differences.md,
"Migrating from graphai-lib"):

1. graphai-lib, then ours: ours is imported and ``import graphai`` logs the ``install.conflict``
   warning with the fix (also under ``-W error``: a log line, not a Python warning).
2. Then ``pip uninstall -y graphai-lib``: the shared files are deleted, ``from graphai import
   Graph`` fails (``graphai`` degrades to a namespace package: none of our code runs on import,
   so no message can be added there); ``graphai._dist.main()`` survives and names the repair;
   the documented repair (``pip install --force-reinstall --no-deps``) works.
3. Ours, then graphai-lib: upstream's ``__init__``/engine silently win; our check never runs.
   Pinned as the documented hazard.

Needs PyPI (graphai-lib, the core dependencies and the build backend are downloaded): a network
failure skips the test with a message, except under ``CI=true``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from graphai._dist import FIX, LOG_INSTALL_CONFLICT, REPAIR
from tests._venv import PIP_TIMEOUT_S, RUN_TIMEOUT_S, make_venv, pip, py, snapshot

UPSTREAM = "graphai-lib==0.0.12"
WARNING_LINE = f"{LOG_INSTALL_CONFLICT} other='graphai-lib' other_version='0.0.12' fix='{FIX}'"

# which engine answers `import graphai`, and whether our install check ran
PROBE = r"""
import json, sys
import graphai
print(json.dumps({
    "file": graphai.__file__,
    "ours": hasattr(graphai, "parse_stream_token") and hasattr(graphai, "__version__"),
    "checked": "graphai._dist" in sys.modules,
    "graph_module": graphai.Graph.__module__,
}))
"""
PROBE_TELEMETRY = "import graphai.telemetry; print(graphai.telemetry.is_instrumented())"
DIAGNOSE = "import graphai._dist as d; raise SystemExit(d.main())"

needs_upstream = pytest.mark.skipif(
    sys.version_info >= (3, 14), reason="graphai-lib 0.0.12 needs Python < 3.14"
)


def _probe(python: Path, cwd: Path) -> dict[str, object]:
    proc = py(python, PROBE, cwd)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    got: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    got["stderr"] = proc.stderr
    return got


@pytest.mark.slow
@needs_upstream
@pytest.mark.timeout(4 * PIP_TIMEOUT_S + 8 * RUN_TIMEOUT_S)
def test_ours_over_graphai_lib_warns_then_uninstall_breaks_and_repair_works(
    tmp_path: Path,
) -> None:
    src = snapshot(tmp_path)
    python = make_venv(tmp_path, "venv")
    pip(python, "install", UPSTREAM, cwd=tmp_path)
    pip(python, "install", str(src), cwd=tmp_path)

    # (1) ours answers and warns once, with the fix; -W error does not turn it into a failure
    got = _probe(python, tmp_path)
    assert got["ours"] is True and got["checked"] is True, got
    assert Path(str(got["file"])).resolve().is_relative_to(python.parent.parent.resolve())
    stderr = str(got["stderr"])
    assert stderr.count(LOG_INSTALL_CONFLICT) == 1, stderr
    assert WARNING_LINE in stderr.splitlines(), stderr
    proc = py(python, PROBE_TELEMETRY, tmp_path, "-W", "error")
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert WARNING_LINE in proc.stderr.splitlines(), proc.stderr
    proc = py(python, DIAGNOSE, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert FIX in proc.stdout, proc.stdout

    # (2) uninstalling graphai-lib deletes the shared files, ours included
    pip(python, "uninstall", "-y", "graphai-lib", cwd=tmp_path)
    proc = py(python, "from graphai import Graph", tmp_path)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "cannot import name 'Graph' from 'graphai'" in proc.stderr, proc.stderr
    # graphai/__init__.py is gone: a namespace package, none of our code runs on import
    proc = py(python, "import graphai; print(graphai.__file__)", tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "None", proc.stdout + proc.stderr
    # ... but the diagnosis survives and names the repair
    proc = py(python, DIAGNOSE, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "graphai/__init__.py" in proc.stdout and REPAIR in proc.stdout, proc.stdout

    # the documented repair (from this snapshot instead of PyPI)
    pip(python, "install", "--force-reinstall", "--no-deps", str(src), cwd=tmp_path)
    got = _probe(python, tmp_path)
    assert got["ours"] is True and got["checked"] is True, got
    assert LOG_INSTALL_CONFLICT not in str(got["stderr"]), got["stderr"]
    proc = py(python, PROBE_TELEMETRY, tmp_path, "-W", "error")
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    proc = py(python, DIAGNOSE, tmp_path)
    assert proc.returncode == 0 and "graphai-otel: ok" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.slow
@needs_upstream
@pytest.mark.timeout(2 * PIP_TIMEOUT_S + 4 * RUN_TIMEOUT_S)
def test_graphai_lib_over_ours_silently_wins(tmp_path: Path) -> None:
    """The documented hazard: upstream's files replace ours and our check never runs."""
    src = snapshot(tmp_path)
    python = make_venv(tmp_path, "venv")
    pip(python, "install", str(src), cwd=tmp_path)
    pip(python, "install", UPSTREAM, cwd=tmp_path)

    got = _probe(python, tmp_path)
    assert got["ours"] is False, got  # upstream's graphai/__init__.py
    assert got["checked"] is False, got  # our install check is not imported ...
    assert LOG_INSTALL_CONFLICT not in str(got["stderr"]), got["stderr"]  # ... so no warning
    # graphai.telemetry's files are still on disk and import, but the engine is upstream's
    # (no Graph(name=...)): nothing would be instrumented
    proc = py(
        python, "import graphai.telemetry; from graphai import Graph; Graph(name='x')", tmp_path
    )
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "TypeError" in proc.stderr and "name" in proc.stderr, proc.stderr
    assert "graphai.telemetry" not in proc.stderr, proc.stderr  # the telemetry import worked
    # the diagnosis (imported explicitly) does see both
    proc = py(python, DIAGNOSE, tmp_path)
    assert proc.returncode == 1 and FIX in proc.stdout, proc.stdout + proc.stderr


# in-process: the import-time check logs once, never raises and never uses `warnings`


def test_check_conflict_logs_once_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from graphai import _dist

    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []
    monkeypatch.setattr(_dist, "log_event", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(_dist, "_checked", False)
    monkeypatch.setattr(_dist, "other_version", lambda: "0.0.12")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _dist.check_conflict() == "0.0.12"
        assert _dist.check_conflict() == "0.0.12"
    assert calls == [
        (
            ("warning", LOG_INSTALL_CONFLICT),
            {"other": "graphai-lib", "other_version": "0.0.12", "fix": FIX},
        )
    ]

    def boom() -> str:
        raise OSError("unreadable site-packages")

    monkeypatch.setattr(_dist, "other_version", boom)
    assert _dist.check_conflict() is None


def test_metadata_names_are_matched_normalized() -> None:
    from graphai._dist import _project_of

    assert _project_of("graphai_lib-0.0.12.dist-info") == "graphai-lib"
    assert _project_of("graphai_lib-0.0.12-py3.11.egg-info") == "graphai-lib"
    assert _project_of("Graphai_Lib.egg-info") == "graphai-lib"
    assert _project_of("graphai_otel-0.1.0.dist-info") == "graphai-otel"
    assert _project_of("graphai") is None


def test_this_checkout_is_healthy() -> None:
    from graphai import _dist

    assert _dist.other_version() is None  # the dev venv must not hold graphai-lib
    assert _dist.missing_files() == []
