"""`python -m bench.run [--quick] [--levels 1,32] [--database postgres] [--peers]`: what
OllamaStack costs on top of Ollama (issue 8).

Runs every side against one Ollama-protocol test server, checks the issue's targets, writes
BENCHMARKS.md and its plot, and exits 1 naming each missed target, 2 when turns of the app
or the agent failed.
--quick (concurrency 1 and 8, few turns, about a minute and a half) and --levels print the
report and write no file unless --output is given; --levels replaces the concurrency levels
streamed (with the full run's turns per session at each). --database postgres stores the
app's and the agent's conversations in the test suite's throwaway PostgreSQL instead of a
SQLite file. --peers streams Open WebUI too, at the same levels in the same run (`make
bench-peers` installs it in `.venv-peers`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bench import phases, plot, report, servers, storage, targets
from bench.fake_ollama import RemoteOllama
from bench.load import MAX_SESSIONS, model_of
from bench.phases import FULL, QUICK, Bench, Plan, progress

ROOT = Path(__file__).resolve().parent.parent
OURS = {"App", "Agent"}  # a failed turn here exits 2; on Direct or the relay it only warns


def run(plan: Plan, results: report.Results, work: Path, on_postgres: bool,
        with_peers: bool = False) -> None:
    postgres = storage.postgres_server() if plan.diagnose or on_postgres else None
    if on_postgres and postgres is None:
        raise SystemExit("--database postgres: PostgreSQL could not start here")
    bench = Bench(RemoteOllama(), work, postgres if on_postgres else None)
    try:
        for i in range(MAX_SESSIONS):
            bench.fake.call("add_model", model_of(i))
        progress(f"test server at {bench.fake.url}; starting the relay and the app")
        relay, app = bench.relay(), bench.app("app")
        peer = None
        if with_peers:
            progress("starting Open WebUI")
            peer = bench.open_webui()
        progress(f"memory: {plan.memory_sessions} sessions")
        results.memory = phases.memory(bench, plan, app, relay, work / "app")
        results.levels = asyncio.run(phases.sweep(bench, plan, relay, app, peer))
        if peer is not None:
            peer.stop()
        results.ceilings = asyncio.run(phases.ceilings(bench, plan, relay, app))
        app.stop()
        relay.stop()
        if plan.diagnose:
            phases.profiles(bench, plan, results)
        progress("storage cost per turn")
        results.storage = phases.storage_costs(bench, plan, postgres)
        starts = bench.cold_starts
        while min(len(starts.get(name, [])) for name in ("App", "Relay")) < plan.cold_starts:
            if len(starts["Relay"]) < plan.cold_starts:
                bench.relay().stop()
            if len(starts["App"]) < plan.cold_starts:
                bench.app("app-cold").stop()
        results.cold_starts = starts
        if plan.diagnose:
            results.import_gradio = servers.import_seconds("gradio")
    finally:
        bench.stop()
        bench.fake.close()
        if postgres is not None:
            postgres.stop()


def notes(on_postgres: bool, with_peers: bool = False) -> list[str]:
    peer = [
        "Open WebUI (`open-webui==0.12.4`, its own venv; `bench/peers.py`): login off "
        "(WEBUI_AUTH=False, signed in as the admin that mode makes), offline, Ollama only. Each "
        "turn POSTs its `/api/chat/completions` route with `stream: true` and the conversation "
        "so far (it keeps none without a chat id; its page posts there too) and reads the "
        "OpenAI-style event stream with httpx. It gets no tool round (its tools are set up per "
        "user in its UI), so its turns are answers only; its CPU is its server process's."
    ] if with_peers else []
    return [*peer,
        f"The app runs with OLLAMASTACK_CONCURRENCY={servers.APP_CONCURRENCY} and the relay "
        "with no concurrency limit, so no turn waits in Gradio's queue; the app's default (16) "
        "queues the 17th concurrent turn. The app's per-user limits are off "
        "(OLLAMASTACK_RATE_LIMIT=0, OLLAMASTACK_MAX_TURNS_PER_USER=128): every benchmark "
        "client is one anonymous user.",
        "The app and the agent store conversations in "
        + ("a new PostgreSQL database each (the test suite's throwaway server)."
           if on_postgres else "a SQLite file each (the default)."),
        "Direct keeps the conversation client-side and sends it each turn; the relay is "
        "stateless (system prompt + message); the app and the agent load and store it.",
        "What held the app back at 32 sessions, found with per-stage marks and py-spy and "
        "fixed (32-session TTFT was +160 ms, turn time +25.5% over the relay before): Python's "
        "full garbage collections rescanning the 300,000 objects of start-up, about 170 ms of "
        "stalled event loop twice in four seconds (now frozen after start-up, `gc.freeze()`: "
        "10 to 30 ms); aiosqlite hopping between its thread and the busy event loop for every "
        "statement under a lock, so a turn's first checkpoint read queued about 50 ms (now one "
        "hop per operation, `ollamastack/storage/sqlite.py`); and Gradio rendering all 67 "
        "blocks' configs for each REST call's session and recomputing its unused monitoring "
        "summary with pandas after every event (`ollamastack/web/gradio_patches.py`).",
        "One app process runs the agent, Gradio and HTTP on one event loop, so it uses at most "
        "one core (Python's GIL): the CPU line under each table says how close a level comes. "
        "More cores serve more sessions with several app processes behind a proxy (`deploy/`).",
        "No GPU machine was lent to the session that ran this, so there are no figures "
        "against a real Ollama and model; every figure here is against the test server.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="concurrency 1 and 8, few turns")
    parser.add_argument("--levels", type=lambda text: [int(c) for c in text.split(",")],
                        help="concurrency levels to stream, e.g. 1,32 (default: the mode's)")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite",
                        help="where the app and the agent store conversations")
    parser.add_argument("--peers", action="store_true",
                        help="stream Open WebUI too (installed by `make bench-peers`)")
    parser.add_argument("--output", type=Path, help="the Markdown report (full: BENCHMARKS.md)")
    args = parser.parse_args(argv)
    output = args.output or (None if args.quick or args.levels else ROOT / "BENCHMARKS.md")
    on_postgres = args.database == "postgres"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # gradio_client in this process too

    plan = QUICK if args.quick else FULL
    if args.levels:
        plan = replace(plan, turns={c: FULL.turns.get(c, 2) for c in args.levels})
    command = ("python -m bench.run" + " --quick" * args.quick
               + (f" --levels {','.join(map(str, args.levels))}" if args.levels else "")
               + " --database postgres" * on_postgres + " --peers" * args.peers)
    results = report.Results(mode="quick" if args.quick else "full", command=command,
                             load_before=os.getloadavg(), notes=notes(on_postgres, args.peers))
    work = Path(tempfile.mkdtemp(prefix="ollamastack-bench-"))
    try:
        run(plan, results, work, on_postgres, args.peers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results.load_after = os.getloadavg()

    checked = targets.check_targets(results)
    if output is not None:
        picture = (output.parent / "bench" / "concurrency.png" if output.name == "BENCHMARKS.md"
                   else output.with_suffix(".png"))
        plot.plot(results, picture)
        report.write_markdown(results, checked, output, picture.relative_to(output.parent))
        progress(f"wrote {output} and {picture}")
    else:
        print(report.markdown(results, checked, None))
    report.print_summary(results, checked)
    failed = [r for r in [*results.levels, *results.ceilings] if r["errors"]]
    for r in failed:  # the baselines' failures (the test server overloaded) only warn
        print(f"{'FAILED' if r['side'] in OURS else 'WARNING'}: {r['side']} ({r['client']}): "
              f"{r['errors']} failed turns at {r.get('concurrency') or r.get('sessions')} "
              "sessions", file=sys.stderr)
    failed = [r for r in failed if r["side"] in OURS]
    missed = [t for t in checked if t.held is False]
    for t in missed:
        print(f"MISSED: {t.name}: {t.measured} (limit {t.limit})", file=sys.stderr)
    return 2 if failed else 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
