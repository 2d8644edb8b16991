"""
The terminal view: colours and glyphs (``Out``), one run's stream rendered live
(``StreamView``) and the multi-run progress display (``Board``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from graphai import Callback, Graph, parse_stream_token
from graphai._demo.sim import BRANCH_NODES, RunResult

_UNICODE = {
    "start": "▶",
    "end": "■",
    "END": "◆",
    "bar": "█",
    "wait": "░",
    "bg": "·",
    "full": "█",
    "empty": "░",
    "ok": "✓",
    "fail": "✗",
    "arrow": "→",
    "ellipsis": "…",
    "dot": "·",
}
_ASCII = {
    "start": ">",
    "end": "#",
    "END": "*",
    "bar": "#",
    "wait": "-",
    "bg": ".",
    "full": "#",
    "empty": "-",
    "ok": "ok",
    "fail": "FAIL",
    "arrow": "->",
    "ellipsis": "...",
    "dot": "|",
}


def _can_encode(stream: TextIO, text: str) -> bool:
    encoding = getattr(stream, "encoding", None)
    if encoding is None:  # an in-memory text stream (io.StringIO): any character goes
        return True
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def color_wanted(stream: TextIO, mode: str = "auto") -> bool:
    """Colours only when asked for, or in ``auto`` mode on a TTY without ``NO_COLOR`` set."""
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR", ""):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM", "") != "dumb"


class Out:
    """Terminal writer: colours, glyphs, and a progress line kept at the bottom on a TTY."""

    def __init__(self, stream: TextIO, color: bool, tty: bool) -> None:
        self.stream = stream
        self.color = color
        self.tty = tty
        self.g = _UNICODE if _can_encode(stream, "".join(_UNICODE.values())) else _ASCII
        self.width = max(60, shutil.get_terminal_size((100, 24)).columns)
        self._progress: Callable[[], str] | None = None
        self._shown = False
        self.closed = False  # the reader went away (broken pipe)

    def paint(self, text: str, *codes: str) -> str:
        if not self.color or not codes or not text:
            return text
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"

    def bold(self, text: str) -> str:
        return self.paint(text, "1")

    def dim(self, text: str) -> str:
        return self.paint(text, "2")

    def _put(self, text: str, flush: bool = True) -> None:
        """Write to the stream; once the reader is gone (``graphai | head``), drop output."""
        if self.closed:
            return
        try:
            if text:
                self.stream.write(text)
            if flush:
                self.stream.flush()
        except BrokenPipeError:
            self.closed = True

    def write(self, text: str) -> None:
        self._put(text)

    def line(self, text: str = "") -> None:
        """Write a full line (above the progress line, if one is shown)."""
        if self._shown:
            self._put("\r\x1b[K", flush=False)
        self._put(text + "\n", flush=False)
        self._shown = False
        self.refresh()

    def show_progress(self, render: Callable[[], str] | None) -> None:
        """Keep a progress line, drawn by ``render()``, at the bottom (TTY only)."""
        if not self.tty:
            return
        if render is None and self._shown:
            self._put("\r\x1b[K", flush=False)
            self._shown = False
        self._progress = render
        self.refresh()

    def refresh(self) -> None:
        if self._progress is not None:
            self._put("\r\x1b[K" + self._progress(), flush=False)
            self._shown = True
        self._put("")


def fmt_s(seconds: float | None) -> str:
    """A duration for the terminal: ``1.5ms``, ``42ms``, ``0.31s``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 0.00995:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 0.0995:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s"


def _node_tag(graph: Graph, name: str) -> str:
    nd = graph.nodes.get(name)
    if nd is None:
        return ""
    kind = str(getattr(nd, "kind", "node"))
    model = getattr(nd, "model", None)
    tag = f"{kind} {model}" if model else kind
    if name in BRANCH_NODES:
        tag += ", detached branch"
    return tag


@dataclass
class _NodeSeen:
    """What the consumer saw of one node run (from the stream alone)."""

    t0: float
    tokens: int = 0
    t_first: float | None = None
    t_last: float | None = None
    text: list[str] = field(default_factory=list)


class StreamView:
    """Consumes one run's string stream (``parse_stream_token``) and renders it.

    ``detail="full"``: node boundaries with the tokens streamed in between (single run).
    ``detail="boundaries"``: one line per node start/end, prefixed by the run tag.
    ``detail="none"``: nothing per node (the run still counts for the progress line).
    """

    def __init__(
        self, out: Out, graph: Graph, callback: Callback, run_no: int, detail: str
    ) -> None:
        self.out = out
        self.graph = graph
        self.cb = callback
        self.run_no = run_no
        self.detail = detail
        self.open: dict[str, _NodeSeen] = {}
        self.order: list[str] = []  # open nodes, most recent last
        self.tokens = 0
        self.t0 = time.perf_counter()
        self.t_first: float | None = None
        self.current: str | None = None
        self.done = False
        self.boundaries = 0
        self._col = 0  # column of the token text in "full" mode (0: at a line start)

    # -- helpers --------------------------------------------------------------------------------
    def prefix(self) -> str:
        """The run tag in front of this run's lines (empty in "full" mode)."""
        if self.detail == "full":
            return ""
        colors = ("36", "35", "33", "32", "34", "31")
        return self.out.paint(f"run {self.run_no:<3}", colors[(self.run_no - 1) % len(colors)]) + " "

    def _break_line(self) -> None:
        if self._col:
            self.out.write("\n")
            self._col = 0

    def _emit(self, text: str) -> None:
        if self.detail == "full":
            self._break_line()
            self.out.write(text + "\n")
        elif self.detail == "boundaries":
            self.out.line(self.prefix() + text)

    def _content(self, token: str) -> None:
        """Print a content token in "full" mode: indented, word-wrapped, newlines kept."""
        indent = "    "
        width = self.out.width - 2
        parts = token.split("\n")
        for i, part in enumerate(parts):
            if i:
                self.out.write("\n")
                self._col = 0
            if not part:
                continue
            if self._col == 0:
                part = part.lstrip(" ")
                self.out.write(indent)
                self._col = len(indent)
            elif self._col + len(part) > width and part.startswith(" "):
                self.out.write("\n" + indent)
                part = part.lstrip(" ")
                self._col = len(indent)
            self.out.write(part)
            self._col += len(part)

    # -- the consumer ---------------------------------------------------------------------------
    async def consume(self) -> None:
        g = self.out.g
        async for raw in self.cb.aiter():
            now = time.perf_counter()
            item = parse_stream_token(raw, self.cb)
            if item.kind == "token":
                self.tokens += 1
                if self.t_first is None:
                    self.t_first = now
                name = self.order[-1] if self.order else None
                seen = self.open.get(name) if name is not None else None
                if seen is not None:
                    seen.tokens += 1
                    if seen.t_first is None:
                        seen.t_first = now
                    seen.t_last = now
                    seen.text.append(raw)
                if self.detail == "full":
                    self._content(raw)
            elif item.kind == "start" and item.node is not None:
                self.boundaries += 1
                self.open[item.node] = _NodeSeen(t0=now)
                self.order.append(item.node)
                self.current = item.node
                tag = _node_tag(self.graph, item.node)
                raw_s = f"  {self.out.dim(raw)}" if self.detail == "full" else ""
                self._emit(
                    f"{self.out.paint(g['start'], '1', '36')} {self.out.bold(item.node)}"
                    f"  {self.out.dim(tag)}{raw_s}"
                )
            elif item.kind == "end" and item.node is not None:
                self.boundaries += 1
                seen = self.open.pop(item.node, None)
                if item.node in self.order:
                    self.order.remove(item.node)
                self.current = self.order[-1] if self.order else None
                self._emit(self._end_line(item.node, seen, now, raw))
            elif item.kind == "END":
                self.done = True
                if self.detail == "full":
                    self._break_line()
                    total = now - self.t0
                    self.out.write(
                        f"{self.out.paint(g['END'], '1', '35')} {self.out.bold('END')}  "
                        f"{self.out.dim(f'stream closed after {fmt_s(total)}')}  "
                        f"{self.out.dim(raw)}\n"
                    )
            # item.kind == "node" (the node-id marker <graphai:NAME:>) needs no output

    def _end_line(self, name: str, seen: _NodeSeen | None, now: float, raw: str) -> str:
        g = self.out.g
        parts = [f"{self.out.paint(g['end'], '32')} {name}"]
        if seen is not None:
            stats = [fmt_s(now - seen.t0)]
            if seen.tokens:
                stats.append(f"{seen.tokens} tok")
                if seen.t_first is not None:
                    stats.append(f"ttft {fmt_s(seen.t_first - seen.t0)}")
                if seen.tokens > 1 and seen.t_last is not None and seen.t_first is not None:
                    span = seen.t_last - seen.t_first
                    if span > 0:
                        stats.append(f"{(seen.tokens - 1) / span:.1f} tok/s")
            parts.append(self.out.dim(f" {g['dot']} ".join(stats)))
            if self.detail == "boundaries" and seen.text:
                text = "".join(seen.text).replace("\n", " ").strip()
                limit = 60
                if len(text) > limit:
                    text = text[:limit].rstrip() + g["ellipsis"]
                parts.append(self.out.dim(f'"{text}"'))
        if self.detail == "full":
            parts.append(self.out.dim(raw))
        return "  ".join(parts)


class Board:
    """Multi-run progress: a redrawn line on a TTY, a line per finished run otherwise."""

    def __init__(self, out: Out, total: int) -> None:
        self.out = out
        self.total = total
        self.done = 0
        self.failed = 0
        self.views: dict[int, StreamView] = {}
        self.t0 = time.perf_counter()
        self.tokens_done = 0

    def text(self) -> str:
        g = self.out.g
        width = 24
        filled = round(self.done / self.total * width) if self.total else width
        bar = self.out.paint(g["full"] * filled, "32") + self.out.dim(g["empty"] * (width - filled))
        live = [v for v in self.views.values() if not v.done]
        tokens = self.tokens_done + sum(v.tokens for v in live)
        flight = ", ".join(
            f"run {v.run_no} {v.current or g['ellipsis']}"
            + (f" {v.open[v.current].tokens} tok" if v.current in v.open else "")
            for v in live[:3]
        )
        more = f" +{len(live) - 3}" if len(live) > 3 else ""
        elapsed = time.perf_counter() - self.t0
        rest = (
            f" {self.done}/{self.total} runs {g['dot']} {tokens} tokens {g['dot']} {elapsed:.1f}s"
            + (f" {g['dot']} in flight: {flight}{more}" if live else "")
        )
        return bar + rest[: max(10, self.out.width - width - 2)]

    def finished(self, res: RunResult) -> None:
        self.done += 1
        self.failed += 0 if res.ok else 1
        self.tokens_done += res.tokens
        g = self.out.g
        mark = self.out.paint(g["ok"], "32") if res.ok else self.out.paint(g["fail"], "31")
        detail = (
            f"{fmt_s(res.seconds)} {g['dot']} {res.tokens} tok {g['dot']} "
            f"ttft {fmt_s(res.ttft)} {g['dot']} route {res.route}"
        )
        if res.error:
            detail += f" {g['dot']} {self.out.paint(res.error, '31')}"
        view = self.views.get(res.no)
        prefix = view.prefix() if view is not None else f"run {res.no:<3} "
        self.out.line(f"{prefix}{mark} {detail}")
        if not self.out.tty:
            elapsed = time.perf_counter() - self.t0
            self.out.line(
                self.out.dim(
                    f"progress: {self.done}/{self.total} runs done {g['dot']} "
                    f"{self.tokens_done} tokens {g['dot']} {elapsed:.1f}s"
                )
            )

    async def ticker(self, interval: float = 0.1) -> None:
        if not self.out.tty:
            return
        self.out.show_progress(self.text)
        while True:
            await asyncio.sleep(interval)
            self.out.refresh()
