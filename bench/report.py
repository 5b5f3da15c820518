"""BENCHMARKS.md from what one run measured (the targets: `bench/targets.py`)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.targets import Target, median

ROOT = Path(__file__).resolve().parent.parent
ANSWER_NOTE = (
    "Each turn answers 100 tokens; the test server streams them at 100 tokens/s per stream; "
    "a tool round (calculator) comes first in one turn out of four."
)


@dataclass
class Results:
    """Everything one run measured, as plain dicts (see load.Level.as_dict and friends)."""

    mode: str
    command: str
    levels: list[dict[str, Any]] = field(default_factory=list)
    ceilings: list[dict[str, Any]] = field(default_factory=list)
    profile: str = ""
    agent_profile: str = ""
    session_state: dict[str, dict[str, float]] = field(default_factory=dict)
    ttft_stages: list[tuple[str, float]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    storage: list[dict[str, Any]] = field(default_factory=list)
    cold_starts: dict[str, list[float]] = field(default_factory=dict)
    import_gradio: float | None = None
    load_before: tuple[float, ...] = ()
    load_after: tuple[float, ...] = ()
    notes: list[str] = field(default_factory=list)

    def level(self, side: str, client: str, concurrency: int) -> dict[str, Any] | None:
        return next((r for r in self.levels if (r["side"], r["client"], r["concurrency"])
                     == (side, client, concurrency)), None)


def machine() -> list[str]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "ollamastack"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    packages = ", ".join(f"{p} {version(p)}" for p in
                         ("gradio", "gradio_client", "langgraph", "langchain-core", "ollama"))
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} cores ({model}), {memory / 1024**2:.0f} GiB, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {packages}",
        f"- Code: commit {commit or '?'}"
        + (" with uncommitted changes in ollamastack/" if dirty else ""),
    ]


def _loads(values: tuple[float, ...]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def _ms(value: float) -> str:
    return f"{value:.1f}"


def level_table(results: Results, concurrency: int) -> list[str]:
    direct = results.level("Direct", "ollama", concurrency)
    lines = [
        "| Side | Client | Turns (tool share) | TTFT p50 ms | TTFT p95 ms | Turn p50 s | "
        "Turn p95 s | Tokens/s per stream | Tokens/s total | Turn ×Direct | "
        "TTFT +ms over Direct | Server CPU ms / 1k tokens | Errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in results.levels if r["concurrency"] == concurrency):
        ratio = f"{r['turn_p50_s'] / direct['turn_p50_s']:.3f}" if direct else "–"
        added = f"{r['ttft_p50_ms'] - direct['ttft_p50_ms']:+.1f}" if direct else "–"
        cpu = r["cpu_ms_per_1k_tokens"]
        lines.append(
            f"| {r['side']} | {r['client']} | {r['turns']} ({r['tool_share']:.0%}) | "
            f"{_ms(r['ttft_p50_ms'])} | {_ms(r['ttft_p95_ms'])} | {r['turn_p50_s']:.3f} | "
            f"{r['turn_p95_s']:.3f} | {r['stream_tps_p50']:.1f} | {r['total_tps']:.0f} | "
            f"{ratio} | {added} | {'–' if cpu is None else f'{cpu:.0f}'} | {r['errors']} |"
        )
    return lines


def cpu_budget(results: Results, concurrency: int) -> list[str]:
    """What the served processes needed of a core while streaming at `concurrency`: one Python
    process runs its event loop on one core at most, and queues once it needs more."""
    rows = [(r["side"], r["client"], r["total_tps"] * r["cpu_ms_per_1k_tokens"] / 1e6)
            for r in results.levels if r["concurrency"] == concurrency
            and r["cpu_ms_per_1k_tokens"] is not None and r["side"] != "Direct"]
    if concurrency < 8 or not rows:
        return []
    needs = "; ".join(f"{side} ({client}) {cores:.2f}" for side, client, cores in rows)
    return [f"CPU the serving process needed, in cores (its CPU seconds per second of the "
            f"level): {needs}. A Python process serves on one core: its event loop queues "
            "everything once it needs about one (the Agent row includes its client).", ""]


def write_markdown(results: Results, targets: list[Target], path: Path, plot: Path | None) -> None:
    path.write_text(markdown(results, targets, plot))


def markdown(results: Results, targets: list[Target], plot: Path | None) -> str:
    lines = [
        "# Benchmarks: what OllamaStack costs on top of Ollama",
        "",
        "Written by `make bench` (`bench/run.py`; the bare relay is `bench/relay.py`). "
        "The model is "
        "a constant: every side talks to the same Ollama-protocol test server "
        "(`tests/ollama_server.py`, in a process of its own) in the same run, so what differs is "
        "what each side adds. Everything runs on loopback on one machine.",
        "",
        f"- Command: `{results.command}` ({results.mode} mode)",
        *machine(),
        f"- Load average (1, 5, 15 min) before: {_loads(results.load_before)}; "
        f"after: {_loads(results.load_after)}",
        "",
        "> Numbers on a shared 2-core machine are noisy: other test suites may run beside the "
        "benchmark (see the load average). Compare sides within one run, not across runs.",
        "",
        "## Targets (issue 8)",
        "",
        "| Target | Limit | Measured | Verdict |",
        "|---|---|---|---|",
        *(f"| {t.name} | {t.limit} | {t.measured} | {t.verdict} |" for t in targets),
        "",
        "## Streaming through each side",
        "",
        ANSWER_NOTE + " Sessions start spread over one turn, then ask back to back. Sides: "
        "**Direct** = the official `ollama` async client; **Agent** = `ChatService.stream_turn` "
        "in-process, storing as the app does; **Relay** = `bench/relay.py`; "
        "**App** = `python app.py`, `/chat`. The relay sends one update per token; the app's "
        "`/chat` sends frames (`ollamastack/web/coalesce.py`): the first token and each tool step "
        "at once, then at most one update per 50 ms with all the text that came meanwhile, a "
        "held frame going out on time even when the stream pauses. "
        "`httpx` reads Gradio's REST route `/gradio_api/call/<name>` (SSE); `gradio_client` "
        "iterates `Client.submit(...)` (its reader polls every 50 ms, so its TTFT carries up to "
        "50 ms of its own). Server CPU is the serving process's user+system time (for Agent: this "
        "process, client included).",
        "",
    ]
    if plot is not None:
        lines += [f"![Tokens/s and first-token latency against concurrency]({plot})", ""]
    if results.ttft_stages:
        total = sum(ms for _, ms in results.ttft_stages)
        lines += [
            f"Where the app's time to first token goes at 1 session ({total:.1f} ms in all; the "
            "app served in the benchmark's process, medians of 6 turns, each stage timed from "
            "the previous one):", "",
            "| Stage | ms |", "|---|---|",
            *(f"| {what} | {ms:.1f} |" for what, ms in results.ttft_stages), "",
        ]
    for concurrency in sorted({r["concurrency"] for r in results.levels}):
        lines += [f"### {concurrency} concurrent session{'s' if concurrency > 1 else ''}", "",
                  *level_table(results, concurrency), "", *cpu_budget(results, concurrency)]
    lines += [
        "## Relay ceiling",
        "",
        "The test server unpaced (as fast as it can); each session asks again and again for "
        "a 300-token answer for the stated time. Total tokens/s delivered to clients; "
        "least served = the session with the fewest tokens, over the mean.",
        "",
        "| Side | Client | Sessions | Seconds | Tokens/s total | Least served | Errors |",
        "|---|---|---|---|---|---|---|",
        *(f"| {c['side']} | {c['client']} | {c['sessions']} | {c['seconds']:.1f} | "
          f"{c['total_tps']:,.0f} | {c['fairness']:.0%} | {c['errors']} |"
          for c in results.ceilings),
        "",
    ]
    if results.profile:
        lines += [f"Where the app's CPU goes at the ceiling (py-spy, serving threads only; it "
                  "samples without pausing the process, so the layers are a guide and a single "
                  f"function's share can be misplaced): {results.profile}", ""]
    if results.agent_profile:
        lines += [f"The agent alone, in-process under cProfile (no Gradio): "
                  f"{results.agent_profile}", ""]
    if results.session_state:
        states = results.session_state
        app, relay = states["App"], states["Relay"]
        eager = states.get("App, Gradio's own", app)
        lines += [
            "Gradio's per-session state: each new session hash (every REST call without one, "
            "every browser tab or `gradio_client.Client`) builds a `SessionState`. Gradio's own "
            f"renders the config of every block: {eager['ms']:.1f} ms and {eager['kib']:.0f} KiB "
            f"for the app's {app['blocks']:.0f} blocks (page and API in one Blocks). The app's "
            "renders a block's config when first used (`ollamastack/web/gradio_patches.py`): "
            f"{app['ms']:.3f} ms and {app['kib']:.0f} KiB; the relay's {relay['blocks']:.0f} "
            f"blocks: {relay['ms']:.3f} ms and {relay['kib']:.0f} KiB. Gradio keeps up to "
            "10,000 of them (`state_session_capacity`); the app forgets the one Gradio made up "
            "for a REST call without a session hash once its result has been read "
            "(`ollamastack/web/gradio_patches.py`).", ""]
    if results.memory:
        m = results.memory
        lines += [
            "## Memory",
            "",
            "| Process | CPU idle, % of a core | RSS idle MB | RSS warm MB | RSS halfway MB | "
            "RSS after MB | Sessions (calls) | Growth MB per 1,000 | SQLite file MB per 1,000 |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| App | {m['idle_cpu_pct']:.1f} | {m['idle_mb']:.0f} | {m['warm_mb']:.0f} | "
            f"{m['half_mb']:.0f} | "
            f"{m['after_mb']:.0f} | {m['sessions']} | {m['growth_mb_per_1000']:.1f} | "
            + ("–" if m["sqlite_mb_per_1000"] is None else f"{m['sqlite_mb_per_1000']:.2f}")
            + " |",
            f"| Relay | {m['relay_idle_cpu_pct']:.1f} | {m['relay_idle_mb']:.0f} | "
            f"{m['relay_warm_mb']:.0f} | – | "
            f"{m['relay_after_mb']:.0f} | {m['sessions']} | "
            f"{m['relay_growth_mb_per_1000']:.1f} | – |",
            "",
            "Idle: the page served, nothing asked yet (any Gradio app spends CPU idle: its queue "
            "polls every millisecond; at one session that is most of the server CPU per token "
            "in the tables above). Warm: after 20 calls. Then one short turn "
            "in each new session through `/gradio_api/call/chat` (16 at a time), and 1 s of quiet "
            "before reading RSS; the relay gets as many calls.",
            "",
        ]
    if results.storage:
        lines += [
            "## Storage per turn",
            "",
            "The agent in-process, 100-token answers from the unpaced server, five sessions in "
            "turn. Checkpoint writes = the saver's `aput` + `aput_writes` (LangGraph's background "
            "writes included); index = the session store's calls (ownership, title, times).",
            "",
            "| Database | Turns | Checkpoint writes / turn | Checkpoint ms / turn | "
            "ms / write | Index calls / turn | Index ms / turn | Turn p50 ms |",
            "|---|---|---|---|---|---|---|---|",
            *(f"| {s['database']} | {s['turns']} | {s['checkpoint_writes_per_turn']:.1f} | "
              f"{s['checkpoint_ms_per_turn']:.2f} | {s['ms_per_checkpoint_write']:.2f} | "
              f"{s['index_calls_per_turn']:.1f} | {s['index_ms_per_turn']:.2f} | "
              f"{s['turn_ms_p50']:.1f} |" for s in results.storage),
            "",
        ]
    lines += ["## Start-up", "",
              "Wall time from the command to the first `200` of `GET /`; the target compares the "
              "fastest launches, since load from other processes only adds time.", "",
              "| Command | Runs | Fastest s | Median s | Each s |", "|---|---|---|---|---|"]
    names = {"App": "python app.py", "Relay": "python bench/relay.py",
             "Open WebUI": "open-webui serve"}
    for name, samples in results.cold_starts.items():
        lines.append(f"| `{names[name]}` | {len(samples)} | {min(samples):.2f} | "
                     f"{median(samples):.2f} | {', '.join(f'{s:.2f}' for s in samples)} |")
    if results.import_gradio is not None:
        lines.append(f"| `python -c \"import gradio\"` | 1 | {results.import_gradio:.2f} | "
                     "– | – |")
    lines += ["", "## Notes", "", *(f"- {n}" for n in results.notes), ""]
    lines += ["## Other benchmarks", "", *OTHERS, ""]
    return "\n".join(lines)


OTHERS = [  # written by `make bench` too, each by its own script
    "- [BENCHMARKS-tools.md](BENCHMARKS-tools.md): tool use on small models "
    "(`bench/tool_eval.py`)",
    "- [BENCHMARKS-embedded.md](BENCHMARKS-embedded.md): the embedded model's first turns "
    "(`bench/embedded.py`)",
    "- [BENCHMARKS-events.md](BENCHMARKS-events.md): the event bus and the answer cache "
    "(`bench/events.py`)",
    "- [BENCHMARKS-search.md](BENCHMARKS-search.md): conversation search (`bench/search.py`)",
    "- [BENCHMARKS-documents.md](BENCHMARKS-documents.md): attached documents: ingestion, "
    "retrieval, first tokens (`bench/documents.py`)",
]


def print_summary(results: Results, targets: list[Target]) -> None:
    for r in results.levels:
        print(f"{r['side']:>6} {r['client']:>13} c={r['concurrency']:<3} turns={r['turns']:<4} "
              f"ttft p50 {r['ttft_p50_ms']:7.1f} p95 {r['ttft_p95_ms']:7.1f} ms  "
              f"turn p50 {r['turn_p50_s']:.3f} s  stream {r['stream_tps_p50']:6.1f} tok/s  "
              f"total {r['total_tps']:6.0f} tok/s  errors {r['errors']}", file=sys.stderr)
    for t in targets:
        print(f"[{t.verdict.strip('*')}] {t.name}: {t.measured} (limit {t.limit})")
