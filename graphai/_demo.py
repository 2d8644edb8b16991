"""
The ``graphai`` demo: a simulated support agent, streamed live, and the telemetry it produced.

The graph (``support-agent``)::

    receive ─▶ plan (router, streams its reasoning)
                ├─▶ call_tools ─┬─▶ search_docs    (tool) ─┐
                │               └─▶ lookup_account (tool) ─┴─▶ synthesize (llm, streams) ─▶ respond
                └─▶ synthesize (small talk needs no tools)
    synthesize ┄▶ audit_redact ─▶ audit_store      (detached branch: add_branch(wait=False))

Everything is simulated locally with a seeded random generator (token timing like a hosted LLM:
first token after 200-400 ms, then 30-60 tokens/s), scaled by ``--speed``. The terminal view is
built only from the string stream (``Callback.aiter()`` classified with ``parse_stream_token``);
the waterfall and the metrics summary at the end come from the OpenTelemetry spans (an SDK
``InMemorySpanExporter`` on the tracer provider ``graphai.telemetry.configure()`` built) and
from the Prometheus ``/metrics`` endpoint it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import graphai
from graphai import Callback, Graph, node, parse_stream_token, router
from graphai.telemetry import env
from graphai.telemetry import names as N

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from graphai.telemetry.setup import TelemetryHandle

__all__ = ["build_graph", "build_parser", "main"]

GRAPH_NAME = "support-agent"
SERVICE_NAME = "graphai-demo"
LLM_MODEL = "sim-llm-large"
BRANCH_NODES = frozenset({"audit_redact", "audit_store"})
DETAIL_RUNS = 5  # multi-run mode: node boundaries are printed for the first runs only


# =================================================================================================
# simulation
# =================================================================================================
class Sim:
    """Local stand-in for network latency and LLM token timing, scaled by ``speed``."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed

    @staticmethod
    def rng(seed: int, what: str) -> random.Random:
        """A generator per (run seed, node): runs are reproducible and independent."""
        return random.Random(f"{seed}:{what}")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)

    async def stream(
        self,
        callback: Any,
        text: str,
        rng: random.Random,
        *,
        ttft: tuple[float, float] = (0.2, 0.4),
        rate: tuple[float, float] = (30.0, 60.0),
    ) -> None:
        """Stream ``text`` as LLM-like tokens: a first-token delay, then gaps around 1/rate
        (log-normal, with an occasional hiccup)."""
        await self.sleep(rng.uniform(*ttft))
        mean_gap = 1.0 / rng.uniform(*rate)
        for i, token in enumerate(tokenize(text, rng)):
            if i:
                gap = rng.lognormvariate(math.log(mean_gap), 0.35)
                if rng.random() < 0.015:
                    gap *= rng.uniform(3.0, 6.0)
                await self.sleep(gap)
            await callback.acall(token)


_TOKEN_RE = re.compile(r"\n+| ?[\w'#$%/-]+| ?[^\w\s]")


def tokenize(text: str, rng: random.Random) -> list[str]:
    """Split text roughly like a BPE tokenizer: words with their leading space, punctuation on
    its own, newlines as their own tokens, and some long words in two pieces."""
    out: list[str] = []
    for m in _TOKEN_RE.finditer(text):
        piece = m.group()
        core = piece.lstrip(" ")
        if len(core) > 7 and core.isalpha() and rng.random() < 0.6:
            cut = rng.randint(3, len(core) - 3)
            out.append(piece[: len(piece) - len(core)] + core[:cut])
            out.append(core[cut:])
        else:
            out.append(piece)
    return out


# -- the support desk the agent works for --------------------------------------------------------
QUERIES: tuple[str, ...] = (
    "I was charged twice for order #{order}. Can I get a refund?",
    "Where is my package? Order #{order} was due on Monday.",
    "How do I move my team to the Business plan, and do we keep our data?",
    "What is the 'seat adjustment' line on my last invoice?",
    "Thanks, that fixed it. Have a nice day!",
)

_INTENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("billing.refund", ("refund", "charged twice")),
    ("shipping.status", ("package", "due on", "delivery")),
    ("plan.upgrade", ("plan", "upgrade")),
    ("billing.invoice", ("invoice", "seat")),
    ("smalltalk", ("thanks", "thank you", "nice day")),
)

DOCS: dict[str, tuple[str, ...]] = {
    "billing.refund": ("refund-policy", "duplicate-charges", "payment-methods"),
    "shipping.status": ("carrier-tracking", "delivery-delays", "lost-parcels"),
    "plan.upgrade": ("plans-compared", "data-migration", "team-admin"),
    "billing.invoice": ("invoice-lines", "seat-billing", "proration"),
}

_ANSWERS: dict[str, str] = {
    "billing.refund": (
        "I'm sorry about the double charge on order #{order}. I checked your account: "
        "the payment went through twice on {date}, {amount} each. As the {doc0} article explains, a "
        "duplicate charge is refunded in full, so I have opened refund request R-{ticket} for "
        "{amount}.\n\nThe money usually reaches your card within 3-5 business days; "
        "your bank may show it as a reversal. {filler}"
    ),
    "shipping.status": (
        "Order #{order} left our warehouse on {date} and is with the carrier now. The "
        "tracking history shows a delay at the regional hub, which matches the notice in "
        "{doc0}.\n\nThe new estimate is {eta}. If it has not arrived by then, reply here and "
        "I will start a replacement under the {doc1} guideline. {filler}"
    ),
    "plan.upgrade": (
        "Your workspace is on the {plan} plan with {seats} seats. You can switch to Business "
        "under Settings → Billing → Change plan; the change is prorated from today.\n\n"
        "Nothing is lost: projects, history and integrations stay as they are ({doc1} "
        "explains the details). {filler}"
    ),
    "billing.invoice": (
        "The seat adjustment on your last invoice covers the {seats} seats that were added "
        "mid-cycle. They are billed pro rata for the days they were active, as described in "
        "{doc1}.\n\nYour next invoice will show the full seat count only. {filler}"
    ),
    "smalltalk": "You're welcome, happy to help! {filler}",
}

_FILLERS: tuple[str, ...] = (
    "Is there anything else I can help you with today?",
    "You will also get a confirmation by email in a few minutes.",
    "I have added a note to your account so that the next agent sees the whole story.",
    "If anything looks off, just reply to this message and we will pick it up from here.",
    "Thanks for your patience while I looked into this.",
)


def classify(query: str) -> str:
    q = query.lower()
    for intent, words in _INTENTS:
        if any(w in q for w in words):
            return intent
    return "smalltalk"


# =================================================================================================
# the graph
# =================================================================================================
_Decorator = Callable[[Callable[..., Any]], Any]


def _node(**options: Any) -> _Decorator:
    """``@graphai.node(**options)``, typed for ``mypy --strict`` (the called form is untyped)."""
    deco: _Decorator = node(**options)
    return deco


def _router(**options: Any) -> _Decorator:
    """``@graphai.router(**options)``, typed for ``mypy --strict``."""
    deco: _Decorator = router(**options)
    return deco


def build_graph(sim: Sim) -> Graph:
    """The ``support-agent`` graph, with every node simulated by ``sim``."""

    @_node(start=True)
    async def receive(query: str, user: str, seed: int) -> dict[str, Any]:
        """Normalise the request and classify it (fast, no tokens)."""
        await sim.sleep(0.01 + sim.rng(seed, "receive").uniform(0.0, 0.01))
        return {"intent": classify(query), "query": query.strip(), "user": user}

    @_router(stream=True)
    async def plan(query: str, intent: str, seed: int, callback: Any) -> dict[str, Any]:
        """An LLM-like router: streams a short rationale, then picks the next node."""
        rng = sim.rng(seed, "plan")
        needs_tools = intent != "smalltalk"
        choice = "call_tools" if needs_tools else "synthesize"
        reason = (
            "needs the knowledge base and the customer's account"
            if needs_tools
            else "no lookup needed, answer directly"
        )
        text = f"intent {intent} (confidence 0.{rng.randint(82, 97)}): {reason} → {choice}"
        await sim.stream(callback, text, rng, ttft=(0.15, 0.3), rate=(45.0, 70.0))
        return {"choice": choice}

    @node
    async def call_tools(intent: str) -> dict[str, Any]:
        """Fan out: the two tools below run in parallel (add_parallel)."""
        await sim.sleep(0.005)
        return {"tool_calls": ["search_docs", "lookup_account"]}

    # stream=True without a `callback` parameter: the tool's start/end markers show up in the
    # stream (the terminal view shows its boundaries), and it emits no tokens of its own.
    @_node(stream=True, kind="tool")
    async def search_docs(query: str, intent: str, seed: int) -> dict[str, Any]:
        """Knowledge-base search (simulated latency 250-500 ms)."""
        rng = sim.rng(seed, "search_docs")
        await sim.sleep(rng.uniform(0.25, 0.5))
        return {"docs": list(DOCS.get(intent, ()))}

    @_node(stream=True, kind="tool")
    async def lookup_account(user: str, order: str, seed: int) -> dict[str, Any]:
        """Account/order lookup (simulated latency 120-300 ms)."""
        rng = sim.rng(seed, "lookup_account")
        await sim.sleep(rng.uniform(0.12, 0.3))
        return {
            "account": {
                "user": user,
                "plan": rng.choice(["Starter", "Team"]),
                "seats": rng.randint(3, 40),
                "order": order,
                "amount": f"${rng.randint(19, 240)}.{rng.randint(0, 99):02d}",
                "date": f"{rng.choice(['March', 'April', 'May'])} {rng.randint(2, 27)}",
            }
        }

    @_node(stream=True, kind="llm", model=LLM_MODEL)
    async def synthesize(
        query: str,
        intent: str,
        seed: int,
        callback: Any,
        order: str = "",
        docs: list[str] | None = None,
        account: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The answer, streamed token by token (the LLM call of the graph)."""
        rng = sim.rng(seed, "synthesize")
        acc = account or {}
        d = list(docs or ()) + ["our help center"] * 2
        fillers = rng.sample(_FILLERS, k=2 if intent == "smalltalk" else 1)
        text = _ANSWERS.get(intent, _ANSWERS["smalltalk"]).format(
            order=order,
            date=acc.get("date", "Monday"),
            amount=acc.get("amount", "$49.00"),
            plan=acc.get("plan", "Team"),
            seats=acc.get("seats", 5),
            ticket=rng.randint(10000, 99999),
            eta=f"{rng.choice(['Thursday', 'Friday', 'next Monday'])}",
            doc0=d[0],
            doc1=d[1],
            filler=" ".join(fillers),
        )
        await sim.stream(callback, text, rng)
        return {"draft": text}

    @_node(end=True)
    async def respond(draft: str, docs: list[str] | None = None) -> dict[str, Any]:
        """Package the answer (non-streaming: it still gets a span)."""
        await sim.sleep(0.008)
        return {"answer": draft, "citations": list(docs or ())}

    @_node(stream=True)
    async def audit_redact(draft: str, seed: int) -> dict[str, Any]:
        """Audit branch, step 1: strip personal data from the transcript."""
        await sim.sleep(sim.rng(seed, "audit_redact").uniform(0.03, 0.08))
        return {"redacted": re.sub(r"#\d+", "#…", draft)}

    @_node(stream=True, kind="tool")
    async def audit_store(redacted: str, seed: int) -> dict[str, Any]:
        """Audit branch, step 2: write the transcript to the audit log."""
        await sim.sleep(sim.rng(seed, "audit_store").uniform(0.08, 0.16))
        return {"stored": len(redacted)}

    g = Graph(max_steps=20, name=GRAPH_NAME)
    for n in (
        receive,
        plan,
        call_tools,
        search_docs,
        lookup_account,
        synthesize,
        respond,
        audit_redact,
        audit_store,
    ):
        g.add_node(n)
    g.add_router(sources=[receive], router=plan, destinations=[call_tools, synthesize])
    g.add_parallel(call_tools, [search_docs, lookup_account])
    g.add_join([search_docs, lookup_account], synthesize)
    g.add_edge(synthesize, respond)
    g.add_branch(synthesize, audit_redact, wait=False)
    g.add_edge(audit_redact, audit_store)
    return g.compile()


def run_inputs(seed: int, runs: int) -> list[dict[str, Any]]:
    """One input per run: the first is always the refund question (the full tool path)."""
    rng = random.Random(seed)
    out = []
    for i in range(runs):
        q = QUERIES[0] if i == 0 else rng.choice(QUERIES)
        order = str(rng.randint(1000, 9999))
        out.append(
            {
                "query": q.format(order=order),
                "order": order,
                "user": f"u-{rng.randint(100, 999)}",
                "seed": seed * 1000 + i,
            }
        )
    return out


# =================================================================================================
# terminal output
# =================================================================================================
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


def _fmt_s(seconds: float | None) -> str:
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
    def _prefix(self) -> str:
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
            self.out.line(self._prefix() + text)

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
                        f"{self.out.dim(f'stream closed after {_fmt_s(total)}')}  "
                        f"{self.out.dim(raw)}\n"
                    )
            # item.kind == "node" (the node-id marker <graphai:NAME:>) needs no output

    def _end_line(self, name: str, seen: _NodeSeen | None, now: float, raw: str) -> str:
        g = self.out.g
        parts = [f"{self.out.paint(g['end'], '32')} {name}"]
        if seen is not None:
            stats = [_fmt_s(now - seen.t0)]
            if seen.tokens:
                stats.append(f"{seen.tokens} tok")
                if seen.t_first is not None:
                    stats.append(f"ttft {_fmt_s(seen.t_first - seen.t0)}")
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


# =================================================================================================
# telemetry
# =================================================================================================
@dataclass
class Telemetry:
    handle: TelemetryHandle | None = None
    exporter: InMemorySpanExporter | None = None
    metrics_url: str | None = None
    otlp: str | None = None  # where spans go, when OTLP export is on
    export_stuck: bool = False  # an OTLP flush timed out: do not wait long at shutdown
    notes: list[str] = field(default_factory=list)


def port_in_use(host: str, port: int) -> bool:
    """True if ``host:port`` cannot be bound now (as the Prometheus server would bind it)."""
    if port == 0:
        return False
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False  # let the server report the bad host
    family, socktype, proto, _canon, addr = infos[0]
    with socket.socket(family, socktype, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError:
            return True
    return False


def _otlp_traces_on(cli_endpoint: str | None) -> bool:
    selection = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if selection and "otlp" not in [s.strip() for s in selection.split(",")]:
        return False
    return bool(
        cli_endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def _drop_event(logger: Any, method_name: str, event_dict: Any) -> Any:
    import structlog

    raise structlog.DropEvent


def setup_telemetry(args: argparse.Namespace, out: Out) -> Telemetry:
    """``configure()`` with the demo's defaults, plus an in-memory span exporter."""
    tel = Telemetry()
    if args.no_telemetry:
        graphai.telemetry.uninstrument()
        tel.notes.append("telemetry off (--no-telemetry): no spans, no metrics")
        return tel
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
    except ImportError:
        tel.notes.append(
            "telemetry: the OpenTelemetry SDK is not installed "
            "(pip install 'graphai-otel[otel]'); running without spans and metrics"
        )
        return tel

    host, port = env.parse_addr(args.prometheus_addr, "--prometheus-addr")
    if port_in_use(host, port):
        out.line(
            out.paint(
                f"note: {host}:{port} is busy (another graphai demo or exporter running?); "
                "serving /metrics on a free port instead",
                "33",
            )
        )
        port = 0
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    otlp_on = _otlp_traces_on(args.otlp)
    try:
        handle = graphai.telemetry.configure(
            service_name=None if os.environ.get("OTEL_SERVICE_NAME") else SERVICE_NAME,
            otlp_endpoint=args.otlp,
            prometheus_addr=addr,
            logs=otlp_on,
            set_global=False,
        )
    except ImportError as exc:  # an [otel] exporter package is missing
        tel.notes.append(
            f"telemetry: {exc} (pip install 'graphai-otel[otel]'); running without it"
        )
        return tel
    if handle.tracer_provider is None and handle.meter_provider is None:
        tel.notes.append("telemetry off (OTEL_SDK_DISABLED=true)")
        return tel
    tel.handle = handle
    tp = handle.tracer_provider
    if isinstance(tp, TracerProvider):
        tel.exporter = InMemorySpanExporter()
        tp.add_span_processor(SimpleSpanProcessor(tel.exporter))
    if handle.prometheus_addr:
        shown = handle.prometheus_addr.replace("0.0.0.0", "127.0.0.1")
        tel.metrics_url = f"http://{shown}/metrics"
    else:
        tel.notes.append(f"the /metrics endpoint could not be started on {addr}")
    if otlp_on:
        tel.otlp = (
            args.otlp
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        )
        if handle.logger_provider is not None:
            # graphai's own log lines (run/node end) go over OTLP too, not to the terminal
            import structlog

            from graphai.telemetry.logging import add_graph_context, add_otel_context

            structlog.configure(
                processors=[
                    structlog.processors.add_log_level,
                    add_otel_context,
                    add_graph_context,
                    handle.log_processor,
                    _drop_event,
                ],
                wrapper_class=structlog.make_filtering_bound_logger(20),
                cache_logger_on_first_use=False,
            )
    return tel


# -- Prometheus text ------------------------------------------------------------------------------
Labels = tuple[tuple[str, str], ...]


def scrape(url: str, timeout: float = 5.0) -> dict[str, dict[Labels, float]]:
    """``{sample name: {labels: value}}`` from a Prometheus text endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode("utf-8")
    samples: dict[str, dict[Labels, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = float(s.value)
    return samples


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile`` over ``(le, cumulative count)`` pairs."""
    bs = sorted(buckets)
    if not bs or bs[-1][1] <= 0:
        return None
    rank = q * bs[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in bs:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


class Histo:
    """The series of one Prometheus histogram, grouped by a subset of labels."""

    def __init__(self, samples: dict[str, dict[Labels, float]], base: str) -> None:
        self.base = base
        self.buckets = samples.get(base + "_bucket", {})
        self.counts = samples.get(base + "_count", {})
        self.sums = samples.get(base + "_sum", {})

    def group(self, keys: Sequence[str]) -> dict[tuple[str, ...], dict[str, Any]]:
        out: dict[tuple[str, ...], dict[str, Any]] = {}

        def key_of(labels: Labels) -> tuple[str, ...]:
            d = dict(labels)
            return tuple(d.get(k, "") for k in keys)

        for labels, v in self.counts.items():
            g = out.setdefault(key_of(labels), {"count": 0.0, "sum": 0.0, "le": {}})
            g["count"] += v
        for labels, v in self.sums.items():
            out.setdefault(key_of(labels), {"count": 0.0, "sum": 0.0, "le": {}})["sum"] += v
        for labels, v in self.buckets.items():
            le = float(dict(labels).get("le", "+Inf"))
            g = out.setdefault(key_of(labels), {"count": 0.0, "sum": 0.0, "le": {}})
            g["le"][le] = g["le"].get(le, 0.0) + v
        return out

    @staticmethod
    def mean(g: dict[str, Any]) -> float | None:
        return g["sum"] / g["count"] if g["count"] else None

    @staticmethod
    def p(g: dict[str, Any], q: float) -> float | None:
        """Quantile estimated from the buckets; ``None`` below 5 observations."""
        if g["count"] < 5:
            return None
        return histogram_quantile(q, g["le"].items())


# prometheus label names of the attribute keys
_L_GRAPH = N.GRAPH_NAME.replace(".", "_")
_L_NODE = N.NODE_NAME.replace(".", "_")
_L_KIND = N.NODE_KIND.replace(".", "_")
_L_NODE_OUTCOME = N.NODE_OUTCOME.replace(".", "_")
_L_RUN_OUTCOME = N.RUN_OUTCOME.replace(".", "_")


def _prom(metric: str) -> str:
    return N.METRICS[metric][4]


def render_metrics(out: Out, samples: dict[str, dict[Labels, float]], url: str) -> None:
    g = out.g
    out.line(out.bold("Metrics") + out.dim(f"  (scraped from {url}; p95 estimated from the buckets, from 5 runs on)"))
    runs = Histo(samples, _prom(N.GRAPH_DURATION)).group([_L_GRAPH, _L_RUN_OUTCOME])
    ttft = Histo(samples, _prom(N.GRAPH_TTFT)).group([_L_GRAPH])
    for (graph_name, outcome), grp in sorted(runs.items()):
        t = ttft.get((graph_name,))
        line = (
            f"  graph {out.bold(graph_name)}  runs {grp['count']:.0f} {outcome}"
            f"  {g['dot']} duration mean {_fmt_s(Histo.mean(grp))}, p95 {_fmt_s(Histo.p(grp, 0.95))}"
        )
        if t is not None:
            line += f"  {g['dot']} time to first token mean {_fmt_s(Histo.mean(t))}"
        out.line(line)
    nodes = Histo(samples, _prom(N.NODE_DURATION)).group([_L_NODE, _L_KIND])
    n_ttft = Histo(samples, _prom(N.NODE_TTFT)).group([_L_NODE])
    n_rate = Histo(samples, _prom(N.NODE_TOKEN_RATE)).group([_L_NODE])
    toks = {
        dict(k).get(_L_NODE, ""): v for k, v in samples.get(_prom(N.NODE_TOKENS), {}).items()
    }
    if nodes:
        out.line(
            out.dim(
                f"  {'node':<16} {'kind':<7} {'runs':>5} {'mean':>8} {'p95':>8}"
                f" {'ttft':>8} {'tokens':>7} {'tok/s':>7}"
            )
        )
    order = [n for n in build_order() if any(k[0] == n for k in nodes)]
    order += sorted(k[0] for k in nodes if k[0] not in order)
    for name in order:
        for (node_name, kind), grp in nodes.items():
            if node_name != name:
                continue
            t = n_ttft.get((name,))
            r = n_rate.get((name,))
            tok = toks.get(name)
            out.line(
                f"  {name:<16} {kind:<7} {grp['count']:>5.0f} {_fmt_s(Histo.mean(grp)):>8}"
                f" {_fmt_s(Histo.p(grp, 0.95)):>8}"
                f" {_fmt_s(Histo.mean(t) if t else None):>8}"
                f" {(f'{tok:.0f}' if tok else '-'):>7}"
                f" {(f'{Histo.mean(r):.1f}' if r and Histo.mean(r) else '-'):>7}"
            )
    genai = Histo(samples, _prom(N.GENAI_TTFC)).group([])
    delay = Histo(samples, _prom(N.DELIVERY_DELAY)).group([])
    extra = []
    gg = genai.get(())
    if gg and gg["count"]:
        extra.append(f"gen_ai time to first chunk mean {_fmt_s(Histo.mean(gg))}")
    dd = delay.get(())
    if dd and dd["count"]:
        extra.append(
            f"callback delivery delay mean {_fmt_s(Histo.mean(dd))} ({dd['count']:.0f} samples)"
        )
    if extra:
        out.line("  " + f" {g['dot']} ".join(extra))
    series = sum(len(v) for k, v in samples.items() if k.startswith(("graphai_", "gen_ai_")))
    out.line(out.dim(f"  {series} graphai_*/gen_ai_* samples; try: curl -s {url} | grep ^graphai_"))


def build_order() -> list[str]:
    return [
        "receive",
        "plan",
        "call_tools",
        "search_docs",
        "lookup_account",
        "synthesize",
        "respond",
        "audit_redact",
        "audit_store",
    ]


# -- waterfall ------------------------------------------------------------------------------------
def _attr(span: ReadableSpan, key: str) -> Any:
    attrs = span.attributes
    return None if attrs is None else attrs.get(key)


def runs_from_spans(spans: Sequence[ReadableSpan]) -> list[tuple[ReadableSpan, list[ReadableSpan]]]:
    """``[(run span, node spans)]`` in start order."""
    by_trace: dict[int, list[ReadableSpan]] = {}
    for s in spans:
        if s.context is not None:
            by_trace.setdefault(s.context.trace_id, []).append(s)
    out = []
    for group in by_trace.values():
        roots = [s for s in group if s.name.startswith(N.RUN_SPAN_PREFIX + " ")]
        if len(roots) != 1:
            continue
        root = roots[0]
        nodes = [s for s in group if s is not root]
        nodes.sort(key=lambda s: (s.start_time or 0, s.name))
        out.append((root, nodes))
    out.sort(key=lambda r: r[0].start_time or 0)
    return out


def render_waterfall(out: Out, root: ReadableSpan, nodes: Sequence[ReadableSpan], title: str) -> None:
    g = out.g
    t0 = root.start_time or 0
    total = max((root.end_time or t0) - t0, 1)
    bar_w = max(20, min(48, out.width - 76))
    trace_id = format(root.context.trace_id, "032x") if root.context else "?"
    run_ttft = _attr(root, N.RUN_TTFT)
    head = [
        title,
        str(_attr(root, N.RUN_OUTCOME) or "?"),
        _fmt_s(total / 1e9),
        f"ttft {_fmt_s(run_ttft)}" if run_ttft is not None else "",
        f"{_attr(root, N.RUN_OUTPUT_TOKENS) or 0} tokens",
        f"{_attr(root, N.RUN_STEPS) or 0} steps",
    ]
    out.line(
        out.bold("Trace ")
        + out.dim(trace_id)
        + "  "
        + f" {g['dot']} ".join(h for h in head if h)
    )
    out.line(
        out.dim(
            f"  {'span':<30} {'start':>7} {'':<{bar_w}} {'dur':>7} {'ttft':>7} {'tok':>4} {'tok/s':>6}"
        )
    )
    for s in [root, *nodes]:
        start = (s.start_time or t0) - t0
        end = (s.end_time or s.start_time or t0) - t0
        ttft = _attr(s, N.GEN_AI_RESPONSE_TTFC)
        a = min(bar_w - 1, int(start / total * bar_w))
        b = max(a + 1, min(bar_w, round(end / total * bar_w)))
        f = a
        if isinstance(ttft, (int, float)):
            f = max(a, min(b, round((start + ttft * 1e9) / total * bar_w)))
        cells = (
            out.dim(g["bg"] * a)
            + out.paint(g["wait"] * (f - a), "33")
            + out.paint(g["bar"] * (b - f), "36" if s is not root else "35")
            + out.dim(g["bg"] * (bar_w - b))
        )
        name = s.name if s is root else "  " + s.name
        if len(name) > 30:
            name = name[:29] + g["ellipsis"][0]
        tokens = _attr(s, N.NODE_OUTPUT_TOKENS)
        tpot = _attr(s, N.NODE_TPOT)
        rate = f"{1 / tpot:.1f}" if isinstance(tpot, (int, float)) and tpot > 0 else ""
        outcome = _attr(s, N.NODE_OUTCOME if s is not root else N.RUN_OUTCOME)
        flag = "" if outcome in (None, N.OUTCOME_OK) else "  " + out.paint(str(outcome), "31")
        out.line(
            f"  {name:<30} {start / 1e9:>6.3f}s {cells} {_fmt_s((end - start) / 1e9):>7}"
            f" {(_fmt_s(ttft) if ttft is not None else ''):>7}"
            f" {(str(tokens) if tokens else ''):>4} {rate:>6}{flag}"
        )
    out.line(
        out.dim(
            f"  {g['wait']} waiting for the first token   {g['bar']} running / streaming"
            "   tok/s = 1 / mean gap between tokens"
        )
    )


# =================================================================================================
# the runs
# =================================================================================================
@dataclass
class RunResult:
    no: int
    ok: bool
    seconds: float
    tokens: int
    ttft: float | None
    route: str
    error: str | None = None


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
            f"{_fmt_s(res.seconds)} {g['dot']} {res.tokens} tok {g['dot']} "
            f"ttft {_fmt_s(res.ttft)} {g['dot']} route {res.route}"
        )
        if res.error:
            detail += f" {g['dot']} {self.out.paint(res.error, '31')}"
        view = self.views.get(res.no)
        prefix = view._prefix() if view is not None else f"run {res.no:<3} "
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


async def run_one(
    graph: Graph,
    inp: dict[str, Any],
    no: int,
    out: Out,
    detail: str,
    board: Board | None,
) -> RunResult:
    cb = Callback()
    view = StreamView(out, graph, cb, no, detail)
    if board is not None:
        board.views[no] = view
    t0 = time.perf_counter()
    task = asyncio.ensure_future(graph.execute(inp, callback=cb))
    error = None
    try:
        await view.consume()
        result = await task
    except asyncio.CancelledError:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    except Exception as exc:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        result = {}
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t0
    route = "call_tools" if "citations" in result and result.get("citations") else "direct"
    res = RunResult(
        no=no,
        ok=error is None,
        seconds=seconds,
        tokens=view.tokens,
        ttft=None if view.t_first is None else view.t_first - t0,
        route=route,
        error=error,
    )
    if board is not None:
        board.finished(res)
    elif detail == "full":
        g = out.g
        if error is None:
            answer = str(result.get("answer", ""))
            cites = ", ".join(result.get("citations", [])) or "none"
            out.line(
                f"{out.paint(g['ok'], '32')} execute() returned after {_fmt_s(seconds)}: "
                f"answer ({len(answer)} chars, {view.tokens} tokens streamed), "
                f"citations: {cites}"
            )
        else:
            out.line(f"{out.paint(g['fail'], '31')} run failed: {error}")
    return res


async def run_all(args: argparse.Namespace, out: Out, graph: Graph) -> list[RunResult]:
    inputs = run_inputs(args.seed, args.runs)
    if args.runs == 1:
        out.line(f"{out.bold('query')}  {inputs[0]['query']}")
        out.line()
        return [await run_one(graph, inputs[0], 1, out, "full", None)]
    board = Board(out, args.runs)
    sem = asyncio.Semaphore(args.concurrency)

    async def guarded(i: int, inp: dict[str, Any]) -> RunResult:
        async with sem:
            detail = "boundaries" if i < DETAIL_RUNS else "none"
            return await run_one(graph, inp, i + 1, out, detail, board)

    if args.runs > DETAIL_RUNS:
        out.line(
            out.dim(
                f"(node boundaries are shown for the first {DETAIL_RUNS} runs; "
                "the others print one line when they finish)"
            )
        )
    ticker = asyncio.ensure_future(board.ticker())
    try:
        return list(await asyncio.gather(*(guarded(i, x) for i, x in enumerate(inputs))))
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        out.show_progress(None)


# =================================================================================================
# command line
# =================================================================================================
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not v > 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def _addr(text: str) -> str:
    try:
        env.parse_addr(text, "--prometheus-addr")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    default_addr = os.environ.get(env.GRAPHAI_PROMETHEUS_ADDR, "").strip() or env.DEFAULT_PROMETHEUS_ADDR
    p = argparse.ArgumentParser(
        prog="graphai",
        description=(
            "graphai demo: a simulated support agent (a router choosing tools, two tools in "
            "parallel joined back, a streaming LLM-like node, a detached audit branch) streamed "
            "live to the terminal, followed by the OpenTelemetry telemetry it produced: a trace "
            "waterfall and a metrics summary. Everything is simulated locally with seeded "
            "randomness: no network, no API key."
        ),
        epilog=(
            "Telemetry: Prometheus /metrics is served while the demo runs. Spans go over OTLP "
            "when OTEL_EXPORTER_OTLP_ENDPOINT is set or --otlp is given (protocol from "
            "OTEL_EXPORTER_OTLP_PROTOCOL: grpc, the default, or http/protobuf); otherwise they "
            "are shown as a waterfall at the end. Other OTEL_* and GRAPHAI_* variables apply "
            "as documented in docs/telemetry.md. Colours only on a terminal; NO_COLOR=1 turns "
            "them off."
        ),
    )
    p.add_argument(
        "--runs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="number of graph runs (default 1: one run streamed token by token; more: a "
        "progress display with node boundaries per run)",
    )
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        metavar="N",
        help="how many runs execute at the same time when --runs > 1 (default 4)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=7,
        help="random seed for queries, latencies and generated text (default 7): the same "
        "seed gives the same runs",
    )
    p.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        metavar="X",
        help="time scale: 10 runs everything 10x faster (default 1: realistic timing, first "
        "token after 200-400 ms, 30-60 tokens/s)",
    )
    p.add_argument(
        "--prometheus-addr",
        type=_addr,
        default=default_addr,
        metavar="HOST:PORT",
        help=f"where /metrics is served (default {default_addr}, from "
        f"{env.GRAPHAI_PROMETHEUS_ADDR} if set); port 0 picks a free port, and a busy port "
        "falls back to a free one",
    )
    p.add_argument(
        "--otlp",
        metavar="URL",
        default=None,
        help="send spans (and metrics, logs) over OTLP to this base URL, e.g. "
        "http://localhost:4317 (overrides OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="after the runs, keep /metrics up until Ctrl-C (for a Prometheus to scrape)",
    )
    p.add_argument(
        "--no-telemetry",
        action="store_true",
        help="run without any telemetry: no spans, no metrics endpoint, no summary",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colours: auto (default: on a terminal, unless NO_COLOR is set), always or never",
    )
    p.add_argument("--version", action="version", version=f"graphai {graphai.__version__}")
    return p


def _banner(out: Out, args: argparse.Namespace, tel: Telemetry) -> None:
    g = out.g
    a = g["arrow"]
    out.line(
        out.bold("graphai demo")
        + out.dim(
            f" {g['dot']} graph {GRAPH_NAME} {g['dot']} simulated LLM (no network) "
            f"{g['dot']} seed {args.seed} {g['dot']} speed {args.speed:g}x "
            f"{g['dot']} {args.runs} run{'s' if args.runs > 1 else ''}"
            + (f", {args.concurrency} at a time" if args.runs > 1 else "")
        )
    )
    out.line(
        out.dim(
            f"  receive {a} plan (router) {a} call_tools {a} [search_docs | lookup_account] "
            f"{a} join {a} synthesize (llm) {a} respond"
        )
    )
    out.line(
        out.dim(
            f"  small talk: plan {a} synthesize directly; after synthesize a detached branch "
            f"runs audit_redact {a} audit_store"
        )
    )
    if tel.handle is not None:
        where = f"OTLP {tel.otlp}" if tel.otlp else "in memory (waterfall at the end)"
        metrics = tel.metrics_url or "no /metrics endpoint"
        live = f" (live runs: {tel.metrics_url[: -len('/metrics')]}/streams)" if tel.metrics_url else ""
        out.line(out.dim(f"  telemetry: metrics {metrics}{live} {g['dot']} spans {where}"))
    for note in tel.notes:
        out.line(out.paint(f"  {note}", "33"))
    out.line()


def _report(out: Out, tel: Telemetry, results: Sequence[RunResult]) -> None:
    g = out.g
    if len(results) > 1:
        ok = sum(r.ok for r in results)
        secs = sorted(r.seconds for r in results)
        out.line()
        out.line(
            out.bold("Runs")
            + f"  {ok}/{len(results)} ok {g['dot']} median {_fmt_s(secs[len(secs) // 2])} "
            f"{g['dot']} slowest {_fmt_s(secs[-1])} {g['dot']} "
            f"{sum(r.tokens for r in results)} tokens streamed"
        )
    if tel.handle is None:
        return
    if tel.otlp and not tel.handle.force_flush(5.0):
        tel.export_stuck = True
        out.line(
            out.paint(
                f"OTLP export to {tel.otlp} did not finish within 5 s: is the collector "
                "running, and does the protocol match (OTEL_EXPORTER_OTLP_PROTOCOL)?",
                "33",
            )
        )
    spans = list(tel.exporter.get_finished_spans()) if tel.exporter is not None else []
    traced = runs_from_spans(spans)
    out.line()
    if tel.otlp:
        ids = [format(r.context.trace_id, "032x") for r, _ in traced if r.context is not None]
        out.line(
            out.bold("Traces")
            + f"  {len(ids)} sent over OTLP to {tel.otlp} (service {SERVICE_NAME}); "
            "look them up by trace id:"
        )
        for tid in ids[:5]:
            out.line(f"  {tid}")
        if len(ids) > 5:
            out.line(out.dim(f"  {g['ellipsis']} and {len(ids) - 5} more"))
    elif traced:
        picks: list[tuple[str, tuple[ReadableSpan, list[ReadableSpan]]]] = [
            ("first run", traced[0])
        ]
        if len(traced) > 1:
            slowest = max(traced, key=lambda r: (r[0].end_time or 0) - (r[0].start_time or 0))
            if slowest is not traced[0]:
                picks.append(("slowest run", slowest))
            out.line(out.dim(f"{len(traced)} traces recorded; showing {len(picks)}"))
        for title, (root, nodes) in picks:
            render_waterfall(out, root, nodes, title)
            out.line()
    else:
        out.line(out.dim("no spans recorded"))
    if tel.metrics_url:
        try:
            samples = scrape(tel.metrics_url)
        except (OSError, urllib.error.URLError) as exc:
            out.line(out.paint(f"could not scrape {tel.metrics_url}: {exc}", "33"))
        else:
            if tel.otlp:
                out.line()
            render_metrics(out, samples, tel.metrics_url)


async def _serve(out: Out, tel: Telemetry) -> None:
    out.line()
    out.line(
        out.bold("Serving")
        + f" {tel.metrics_url or '(no /metrics endpoint)'} until Ctrl-C"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _amain(args: argparse.Namespace, out: Out, tel: Telemetry) -> int:
    graph = build_graph(Sim(args.speed))
    results = await run_all(args, out, graph)
    _report(out, tel, results)
    if args.serve:
        await _serve(out, tel)
    return 0 if all(r.ok for r in results) else 1


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """The ``graphai`` command. Returns 0 on success, 1 if a run failed, 130 on Ctrl-C."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    stream = stdout or sys.stdout
    isatty: Callable[[], bool] | None = getattr(stream, "isatty", None)
    out = Out(stream, color_wanted(stream, args.color), bool(isatty and isatty()))
    was_instrumented = graphai.telemetry.is_instrumented()
    try:
        tel = setup_telemetry(args, out)
    except ValueError as exc:  # an invalid OTEL_*/GRAPHAI_* variable
        print(f"graphai: {exc}", file=sys.stderr)
        return 2
    _banner(out, args, tel)
    t0 = time.perf_counter()
    code = 0
    try:
        code = asyncio.run(_amain(args, out, tel))
    except KeyboardInterrupt:
        out.show_progress(None)
        out.line()
        out.line(out.paint("interrupted", "33"))
        code = 130
    finally:
        if tel.handle is not None:
            tel.handle.shutdown(1.0 if tel.export_stuck else 5.0)
        if tel.otlp:
            import structlog

            structlog.reset_defaults()
        if args.no_telemetry and was_instrumented:
            graphai.telemetry.instrument()
    out.line(out.dim(f"done in {time.perf_counter() - t0:.1f}s"))
    if out.closed and stream is sys.stdout:
        # the reader is gone: point stdout at /dev/null so the interpreter's final flush
        # does not fail too
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    return code
