"""The benchmark's phases, each over one `Bench`: the test server, a work directory, and where
the app and the agent store conversations (a SQLite file each, or a new PostgreSQL database)."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import diagnose, load, servers, storage
from bench.fake_ollama import RemoteOllama
from bench.peers import OpenWebUISide, start_open_webui
from bench.profile import summarise
from bench.sides import AgentSide, DirectSide, GradioClientSide, SseSide, app_call, relay_call

LEVEL_LIMIT = 150.0  # seconds; a level that takes longer is cut short and reported
IDLE_SECONDS = 3.0  # how long the idle processes' CPU time is watched


@dataclass(frozen=True)
class Plan:
    turns: dict[int, int]  # concurrency -> turns per session
    ceiling_seconds: float
    ceiling_sessions: int
    memory_sessions: int
    storage_turns: int
    cold_starts: int  # launches of each, at least
    diagnose: bool  # profiles, Gradio's session state, TTFT stages, PostgreSQL, import gradio


FULL = Plan({1: 8, 8: 5, 32: 3, 64: 2}, 6.0, 32, 1000, 30, 3, True)
QUICK = Plan({1: 2, 8: 2}, 2.0, 16, 100, 20, 1, False)


def progress(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass
class Bench:
    fake: RemoteOllama
    work: Path
    postgres: Any = None  # the test suite's PostgresServer, or None for SQLite files
    cold_starts: dict[str, list[float]] = field(default_factory=dict)
    served: list[servers.Served] = field(default_factory=list)

    def database_url(self) -> str:
        """A new, empty database; "" for a SQLite file in the data directory."""
        return self.postgres.new_database() if self.postgres is not None else ""

    def settings(self, name: str, *, database_url: str | None = None, **more: Any) -> Any:
        """The app's settings as the benchmark runs it: no .env, no rate limit."""
        from ollamastack.settings import Settings

        if database_url is None:
            database_url = self.database_url()
        return Settings(  # type: ignore[call-arg]
            _env_file=None, ollama_host=self.fake.url, data_dir=self.work / name,
            model=load.model_of(0), database_url=database_url, rate_limit=0,
            concurrency=servers.APP_CONCURRENCY, **more,
        )

    def app(self, name: str, *, profile: Path | None = None) -> servers.Served:
        app = servers.start_app(self.fake.url, self.work / name, profile=profile,
                                database_url=self.database_url())
        return self._started(app, cold=profile is None)

    def relay(self) -> servers.Served:
        return self._started(servers.start_relay(self.fake.url, self.work / "relay"))

    def open_webui(self) -> servers.Served:
        return self._started(start_open_webui(self.fake.url, self.work / "open-webui"))

    def _started(self, served: servers.Served, cold: bool = True) -> servers.Served:
        self.served.append(served)
        if cold:
            self.cold_starts.setdefault(served.name, []).append(served.cold_start)
        return served

    def stop(self) -> None:
        for served in self.served:
            served.stop()


async def sweep(bench: Bench, plan: Plan, relay: servers.Served, app: servers.Served,
                peer: servers.Served | None = None) -> list[dict[str, Any]]:
    """Every side at each concurrency, all sides at one level one after the other; Open WebUI
    beside them when `peer` runs it."""
    most, fake = max(plan.turns), bench.fake
    sides: list[tuple[Any, Any]] = [
        (DirectSide(fake.url), None),
        (await AgentSide(bench.settings("agent")).open(), time.process_time),
        (SseSide("Relay", relay.url, "relay", relay_call), relay.cpu_seconds),
        (SseSide("App", app.url, "chat", app_call), app.cpu_seconds),
        (GradioClientSide("Relay", relay.url, "relay", most), relay.cpu_seconds),
        (GradioClientSide("App", app.url, "chat", most), app.cpu_seconds),
    ]
    if peer is not None:
        sides.append((OpenWebUISide(peer.url), peer.cpu_seconds))
    levels = []
    try:
        for side, _ in sides:
            await load.warm_up(side, fake, most)
        for concurrency, turns in plan.turns.items():
            for side, cpu in sides:
                level = await load.run_level(side, fake, concurrency, turns, cpu=cpu,
                                             limit_seconds=LEVEL_LIMIT)
                levels.append(level.as_dict())
                progress(f"{side.name} ({side.client}) at {concurrency}: "
                         f"{len(level.records)} turns, {len(level.errors)} errors "
                         + (level.errors[0] if level.errors else ""))
    finally:
        for side, _ in sides:
            await side.close()
    return levels


async def ceilings(bench: Bench, plan: Plan, relay: servers.Served,
                   app: servers.Served) -> list[dict[str, Any]]:
    found = []
    sides = [
        DirectSide(bench.fake.url),
        await AgentSide(bench.settings("ceiling")).open(),
        SseSide("Relay", relay.url, "relay", relay_call),
        SseSide("Relay, 20 updates/s", relay.url, "relay_frames", relay_call),
        SseSide("App", app.url, "chat", app_call),
    ]
    try:
        for side in sides:
            await load.warm_up(side, bench.fake, plan.ceiling_sessions)
            result = await load.ceiling(side, bench.fake, plan.ceiling_sessions,
                                        plan.ceiling_seconds)
            found.append(result.as_dict())
            progress(f"ceiling {side.name}: {result.total_tps:,.0f} tokens/s, "
                     f"{len(result.errors)} errors " + (result.errors[0] if result.errors else ""))
    finally:
        for side in sides:
            await side.close()
    return found


async def _fill(served: servers.Served, api: str, fake: RemoteOllama, count: int) -> list[str]:
    side = SseSide(served.name, served.url, api, app_call if api == "chat" else relay_call)
    try:
        fake.set_token_rate(None)
        return await load.fill_sessions(side, count, concurrency=16)
    finally:
        await side.close()


def _settle(served: servers.Served) -> float:
    time.sleep(1)
    return served.rss_mb()


def memory(bench: Bench, plan: Plan, app: servers.Served, relay: servers.Served,
           data_dir: Path) -> dict[str, Any]:
    """RSS of the app just started (idle), warm (20 sessions), after `memory_sessions` more;
    and the relay's growth over as many calls, the floor of any Gradio app."""
    n, fake = plan.memory_sessions, bench.fake
    idle, relay_idle = app.rss_mb(), relay.rss_mb()
    cpu = [served.cpu_seconds() for served in (app, relay)]
    time.sleep(IDLE_SECONDS)
    app_cpu, relay_cpu = ((served.cpu_seconds() - before) / IDLE_SECONDS * 100
                          for served, before in zip((app, relay), cpu, strict=True))
    errors = asyncio.run(_fill(app, "chat", fake, 20))
    warm, size = _settle(app), _sqlite_mb(data_dir)
    errors += asyncio.run(_fill(app, "chat", fake, n // 2))
    half = _settle(app)
    errors += asyncio.run(_fill(app, "chat", fake, n - n // 2))
    after = _settle(app)
    errors += asyncio.run(_fill(relay, "relay", fake, 20))
    relay_warm = _settle(relay)
    errors += asyncio.run(_fill(relay, "relay", fake, n))
    relay_after = _settle(relay)
    scale = 1000 / n
    if errors:
        progress(f"memory: {len(errors)} failed turns, first: {errors[0]}")
    return {
        "idle_mb": idle, "warm_mb": warm, "half_mb": half, "after_mb": after, "sessions": n,
        "growth_mb_per_1000": (after - warm) * scale,
        "sqlite_mb_per_1000": (_sqlite_mb(data_dir) - size) * scale if bench.postgres is None
        else None,
        "relay_idle_mb": relay_idle, "relay_warm_mb": relay_warm, "relay_after_mb": relay_after,
        "relay_growth_mb_per_1000": (relay_after - relay_warm) * scale, "errors": len(errors),
        "idle_cpu_pct": app_cpu, "relay_idle_cpu_pct": relay_cpu,
    }


def _sqlite_mb(data_dir: Path) -> float:
    return sum(p.stat().st_size for p in data_dir.glob("ollamastack.sqlite*")) / 1024**2


def storage_costs(bench: Bench, plan: Plan, postgres: Any) -> list[dict[str, Any]]:
    """The checkpointer per turn on a SQLite file, and on PostgreSQL when one runs."""
    sqlite = bench.settings("storage", database_url="")
    costs = [asyncio.run(storage.measure(sqlite, "SQLite (file)", bench.fake,
                                         plan.storage_turns))]
    if postgres is not None:
        on_postgres = bench.settings("storage-pg", database_url=postgres.new_database())
        costs.append(asyncio.run(storage.measure(on_postgres, "PostgreSQL", bench.fake,
                                                 plan.storage_turns)))
    return [c.as_dict() for c in costs]


def profiles(bench: Bench, plan: Plan, results: Any) -> None:
    """py-spy over the app at the ceiling; cProfile over the agent; Gradio's session state;
    the stages of the app's time to first token."""
    if servers.py_spy():
        progress("profiling the app at the ceiling (py-spy)")
        recorded = bench.work / "app.pyspy"
        app = bench.app("app-profiled", profile=recorded)

        async def load_it() -> None:
            side = SseSide("App", app.url, "chat", app_call)
            try:
                await load.warm_up(side, bench.fake, plan.ceiling_sessions)
                await load.ceiling(side, bench.fake, plan.ceiling_sessions,
                                   plan.ceiling_seconds / 2)
            finally:
                await side.close()

        asyncio.run(load_it())
        app.stop()
        app.process.wait(timeout=30)
        results.profile = summarise(recorded).line()
    else:
        results.notes.append("py-spy is not installed: no profile of the app.")
    progress("profiling the agent (cProfile) and Gradio's per-session state")
    results.agent_profile, _ = asyncio.run(diagnose.agent_profile(
        bench.settings("agent-profiled"), bench.fake, plan.ceiling_sessions,
        plan.ceiling_seconds / 2, bench.work / "agent.prof"))
    settings = bench.settings("in-process", server_port=servers.free_port())
    results.session_state = diagnose.session_state_cost(settings)
    progress("breaking down the app's time to first token")
    results.ttft_stages = diagnose.ttft_breakdown(settings, bench.fake)
