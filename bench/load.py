"""Load: concurrent sessions of back-to-back turns against one side, and what they measured.

Every session has a model of its own on the test server (`bench-00`, `bench-01`, ...), so the
replies scripted for it (a tool round first in a quarter of its turns, then the answer) reach
its turns and no other session's, whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.fake_ollama import RemoteOllama
from bench.sides import Session

ANSWER_TOKENS = 100
WORDS = "the model answers here with plain words of ordinary length for a chat".split()
ANSWER = " ".join(WORDS[i % len(WORDS)] for i in range(ANSWER_TOKENS))
TOOL_EVERY = 4  # a tool round in one turn out of four
MAX_SESSIONS = 64


def model_of(index: int) -> str:
    return f"bench-{index:02d}"


def is_tool_turn(session: int, turn: int) -> bool:
    """One turn in four, staggered across sessions; a session's 4th, 8th... turn first."""
    return (session + turn) % TOOL_EVERY == TOOL_EVERY - 1


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([5.0], 95)
    (2.5, 5.0)
    """
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class TurnRecord:
    ttft: float
    seconds: float
    stream_rate: float  # tokens/s between the first and the last token
    tool: bool


@dataclass
class Level:
    """One side at one concurrency: every turn, and what its server process spent."""

    side: str
    client: str
    concurrency: int
    records: list[TurnRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    cpu_seconds: float | None = None  # of the process serving this side

    @property
    def tokens(self) -> int:
        return ANSWER_TOKENS * len(self.records)

    def stat(self, name: str, q: float) -> float:
        return percentile([getattr(r, name) for r in self.records], q) if self.records else 0.0

    @property
    def tool_share(self) -> float:
        return sum(r.tool for r in self.records) / len(self.records) if self.records else 0.0

    @property
    def cpu_ms_per_1k(self) -> float | None:
        if self.cpu_seconds is None or not self.tokens:
            return None
        return self.cpu_seconds * 1000 / (self.tokens / 1000)

    def as_dict(self) -> dict[str, Any]:
        return {
            "side": self.side, "client": self.client, "concurrency": self.concurrency,
            "turns": len(self.records), "errors": len(self.errors),
            "tool_share": round(self.tool_share, 3),
            "ttft_p50_ms": self.stat("ttft", 50) * 1000,
            "ttft_p95_ms": self.stat("ttft", 95) * 1000,
            "turn_p50_s": self.stat("seconds", 50), "turn_p95_s": self.stat("seconds", 95),
            "stream_tps_p50": self.stat("stream_rate", 50),
            "total_tps": self.tokens / self.wall if self.wall else 0.0,
            "cpu_ms_per_1k_tokens": self.cpu_ms_per_1k,
        }


async def run_level(
    side: Any,
    fake: RemoteOllama,
    concurrency: int,
    turns: int,
    *,
    token_rate: float = 100.0,
    cpu: Callable[[], float] | None = None,
    limit_seconds: float = 150.0,
) -> Level:
    """`concurrency` new sessions, each `turns` turns back to back; starts spread over one turn."""
    sessions = [Session(i, model_of(i)) for i in range(concurrency)]
    tools = getattr(side, "tools", True)  # a peer without our tool gets answers only

    def tool_turn(session: int, turn: int) -> bool:
        return tools and is_tool_turn(session, turn)

    fake.script([
        (s.model, ANSWER, tool_turn(s.index, t)) for s in sessions for t in range(turns)
    ])
    fake.set_token_rate(token_rate)
    level = Level(side.name, side.client, concurrency)
    spread = ANSWER_TOKENS / token_rate / concurrency

    async def one_session(session: Session) -> None:
        await asyncio.sleep(session.index * spread)
        for t in range(turns):
            message = f"Question {t + 1} of session {session.index}: what is six times seven?"
            try:
                timed = await side.turn(session, message)
            except Exception as error:
                level.errors.append(f"{session.model} turn {t + 1}: {error!r}")
                continue
            if timed.error or timed.text != ANSWER or timed.ttft is None:
                got = timed.error or f"{len(timed.text.split())} words, not the scripted answer"
                level.errors.append(f"{session.model} turn {t + 1}: {got}")
                continue
            rate = (ANSWER_TOKENS - 1) / max(timed.last - timed.ttft, 1e-9)
            level.records.append(
                TurnRecord(timed.ttft, timed.seconds, rate, tool_turn(session.index, t))
            )

    before = cpu() if cpu else None
    started = time.perf_counter()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(one_session(s) for s in sessions)), limit_seconds
        )
    except TimeoutError:
        level.errors.append(f"cut short after {limit_seconds:.0f} s")
    level.wall = time.perf_counter() - started
    if cpu and before is not None:
        level.cpu_seconds = cpu() - before
    if fake.pending():
        level.errors.append(f"{fake.pending()} scripted replies were not used")
        fake.clear()
    return level


async def warm_up(side: Any, fake: RemoteOllama, sessions: int) -> None:
    """One short turn in each session's model: connections open, capabilities cached."""
    fake.set_token_rate(None)
    await asyncio.gather(
        *(side.turn(Session(i, model_of(i)), "hi") for i in range(sessions)),
        return_exceptions=True,  # errors show in the measured turns
    )


@dataclass
class Ceiling:
    side: str
    client: str
    sessions: int
    seconds: float
    tokens_per_session: list[int]
    errors: list[str]

    @property
    def total_tps(self) -> float:
        return sum(self.tokens_per_session) / self.seconds if self.seconds else 0.0

    @property
    def fairness(self) -> float:
        """The least served session's share over the mean (1.0: all equal, 0: one starved)."""
        mean = statistics.mean(self.tokens_per_session)
        return min(self.tokens_per_session) / mean if mean else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "side": self.side, "client": self.client, "sessions": self.sessions,
            "seconds": self.seconds, "total_tps": self.total_tps, "fairness": self.fairness,
            "errors": len(self.errors),
        }


CEILING_WORDS = 298  # the test server's default reply, "You said: <message>": 300 tokens


async def ceiling(side: Any, fake: RemoteOllama, sessions: int, seconds: float) -> Ceiling:
    """The test server unpaced; each session asks again until `seconds` have passed."""
    fake.set_token_rate(None)
    message = " ".join(WORDS[i % len(WORDS)] for i in range(CEILING_WORDS))
    expected = "You said: " + message
    tokens = [0] * sessions
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def one_session(index: int) -> None:
        session = Session(index, model_of(index))
        while time.perf_counter() < deadline:
            try:
                timed = await side.turn(session, message)
            except Exception as error:
                errors.append(f"{session.model}: {error!r}")
                return
            if timed.error or timed.text != expected:
                errors.append(f"{session.model}: {timed.error or 'answer differs'}")
                return
            tokens[index] += CEILING_WORDS + 2

    started = time.perf_counter()
    await asyncio.gather(*(one_session(i) for i in range(sessions)))
    return Ceiling(side.name, side.client, sessions, time.perf_counter() - started, tokens, errors)


async def fill_sessions(side: Any, count: int, concurrency: int) -> list[str]:
    """`count` new sessions of one short turn each (unpaced server); returns errors."""
    errors: list[str] = []
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            try:
                timed = await side.turn(Session(i, model_of(i % MAX_SESSIONS)), f"Remember {i}")
            except Exception as error:
                errors.append(repr(error))
                continue
            if timed.error or not timed.text:
                errors.append(timed.error or "no answer")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors
