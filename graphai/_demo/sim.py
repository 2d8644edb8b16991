"""
The simulated support agent: LLM-like token timing, the support desk's text, the
``support-agent`` graph, the seeded inputs of the runs and what one run produced.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphai import Graph, node, router

GRAPH_NAME = "support-agent"
SERVICE_NAME = "graphai-demo"
LLM_MODEL = "sim-llm-large"
BRANCH_NODES = frozenset({"audit_redact", "audit_store"})


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


# -- the graph -----------------------------------------------------------------------------------
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


def build_order() -> list[str]:
    """The graph's nodes in the order they run (the metrics table lists them so)."""
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


@dataclass
class RunResult:
    """One finished run, as the stream consumer saw it."""

    no: int
    ok: bool
    seconds: float
    tokens: int
    ttft: float | None
    route: str
    error: str | None = None
