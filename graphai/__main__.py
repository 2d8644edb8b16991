"""
``graphai`` / ``python -m graphai``: a self-contained demo of what graphai is for.

It runs a simulated support agent (a router choosing tools, two tools in parallel joined back,
a streaming LLM-like node and a detached audit branch), streams it live to the terminal and
shows the telemetry it produced. No network and no API key needed. ``graphai --help`` lists
the options; the implementation lives in :mod:`graphai._demo`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code (0 on success)."""
    from graphai._demo import main as demo_main

    return demo_main(argv)


if __name__ == "__main__":
    sys.exit(main())
