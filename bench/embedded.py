"""`python -m bench.embedded [--threads 1,2] [--no-warm]`: the embedded model's first
impression (issue 15): first-token time of the first turn after start and of later turns,
prompt tokens per turn, tokens per second, answer length.

Each run starts a fresh chat service with Ollama unreachable (so the embedded model answers,
as on a machine without Ollama), warms it as the app does at start-up unless --no-warm, then
asks the same short conversations in new sessions. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from ollamastack.agent.service_handle import open_chat_service
from ollamastack.events import Done, TextDelta, ToolCall
from ollamastack.settings import Settings
from tests.support.chat_helpers import closed_port_url

TURNS = ["hi", "hi again", "What is the capital of France?", "What is 12*7?",
         "Write one sentence about autumn."]


async def measure(threads: int, warm: bool) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            _env_file=None, ollama_host=closed_port_url(), data_dir=Path(data), embedded=True,
            embedded_threads=threads,
        )  # type: ignore[call-arg]
        async with open_chat_service(settings) as service:
            started = time.perf_counter()
            if warm:
                await service.warm()
            warmed = time.perf_counter() - started
            for index, message in enumerate(TURNS):
                began, first, tools, stats = time.perf_counter(), None, [], None
                async for event in service.stream_turn(message):
                    if isinstance(event, TextDelta) and first is None:
                        first = time.perf_counter() - began
                    elif isinstance(event, ToolCall):
                        tools.append(event.name)
                    elif isinstance(event, Done):
                        stats = event.stats
                rows.append({
                    "turn": index + 1, "message": message, "warm_s": warmed if index == 0 else 0,
                    "first_token_s": first, "total_s": time.perf_counter() - began,
                    "prompt_tokens": stats.prompt_tokens if stats else 0,
                    "completion_tokens": stats.completion_tokens if stats else 0,
                    "tokens_per_s": stats.tokens_per_second if stats else 0, "tools": tools,
                })
    return rows


def table(results: dict[str, list[dict]]) -> str:
    lines = ["| run | first turn: first token | later turns: first token (median) | "
             "prompt tokens per turn | tokens/s | answer tokens (median) | warm-up at start |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, rows in results.items():
        later = [r["first_token_s"] for r in rows[1:] if r["first_token_s"] is not None]
        lines.append(
            f"| {name} | {rows[0]['first_token_s']:.2f} s | {statistics.median(later):.2f} s | "
            f"{statistics.median(r['prompt_tokens'] for r in rows):.0f} | "
            f"{statistics.median(r['tokens_per_s'] for r in rows):.0f} | "
            f"{statistics.median(r['completion_tokens'] for r in rows):.0f} | "
            f"{rows[0]['warm_s']:.2f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="thread counts to compare")
    parser.add_argument("--no-warm", action="store_true", help="skip the start-up warm-up")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    results = {}
    for threads in (int(t) for t in args.threads.split(",")):
        name = f"{threads} thread{'s' if threads > 1 else ''}"
        results[name] = asyncio.run(measure(threads, warm=not args.no_warm))
        for row in results[name]:
            print(f"  {name}: {row}", flush=True)
    print(table(results))
    if args.output:
        args.output.write_text(report(results, args))


def report(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        "## The embedded model's first impression (issue 15)\n\n"
        f"`python -m bench.embedded --threads {args.threads}"
        f"{' --no-warm' if args.no_warm else ''}`, {when}, on this machine's CPU "
        f"({os.cpu_count()} cores). Ollama unreachable, so `embedded/smollm2-135m` answers; "
        f"the turns, each in a new session: {', '.join(repr(t) for t in TURNS)}.\n\n"
        f"{table(results)}\n"
    )


if __name__ == "__main__":
    main()
