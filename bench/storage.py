"""What storing a conversation costs per turn: checkpointer writes and session-index calls.

The agent runs in this process over SQLite (a file) or PostgreSQL (the test suite's throwaway
server), with the test server unpaced; the saver's and the store's methods are wrapped to
count and time every call a turn makes (those LangGraph runs in the background included).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fake_ollama import RemoteOllama
from bench.load import ANSWER, model_of
from bench.sides import AgentSide, Session

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Timings:
    calls: int = 0
    seconds: float = 0.0

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - started

        return timed


@dataclass
class StorageCost:
    database: str
    turns: int
    turn_seconds: list[float] = field(default_factory=list)
    writes: Timings = field(default_factory=Timings)  # checkpointer aput + aput_writes
    index: Timings = field(default_factory=Timings)  # session index (LangGraph store)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        n = max(self.turns, 1)
        return {
            "database": self.database, "turns": self.turns,
            "checkpoint_writes_per_turn": self.writes.calls / n,
            "checkpoint_ms_per_turn": self.writes.seconds * 1000 / n,
            "ms_per_checkpoint_write": self.writes.seconds * 1000 / max(self.writes.calls, 1),
            "index_calls_per_turn": self.index.calls / n,
            "index_ms_per_turn": self.index.seconds * 1000 / n,
            "turn_ms_p50": sorted(self.turn_seconds)[len(self.turn_seconds) // 2] * 1000
            if self.turn_seconds else 0.0,
            "errors": len(self.errors),
        }


async def measure(settings: Any, database: str, fake: RemoteOllama, turns: int) -> StorageCost:
    """`turns` turns of ANSWER_TOKENS tokens, five sessions in turn; no tool rounds."""
    fake.set_token_rate(None)
    side = await AgentSide(settings).open()
    cost = StorageCost(database, turns)
    try:
        saver, store = side.service.memory.checkpointer, side.service.memory.store
        await side.turn(Session(0, model_of(0)), "warm up")  # tables, capabilities, caches
        saver.aput = cost.writes.wrap(saver.aput)
        saver.aput_writes = cost.writes.wrap(saver.aput_writes)
        store.abatch = cost.index.wrap(store.abatch)
        sessions = [Session(i, model_of(i)) for i in range(5)]
        for t in range(turns):
            session = sessions[t % len(sessions)]
            fake.script([(session.model, ANSWER, False)])
            timed = await side.turn(session, f"Question {t}")
            if timed.error or timed.text != ANSWER:
                cost.errors.append(timed.error or "answer differs")
            cost.turn_seconds.append(timed.seconds)
        await asyncio.sleep(0.2)  # the last turn's background checkpoint writes
    finally:
        await side.close()
    return cost


def postgres_server() -> Any | None:
    """The test suite's throwaway PostgreSQL, or None when it cannot start here."""
    try:
        from tests.support.postgres_server import PostgresServer

        return PostgresServer().start()
    except Exception as error:
        print(f"PostgreSQL skipped: {error}", file=sys.stderr)
        return None
