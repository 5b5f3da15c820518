"""What the event bus costs a turn with every subscriber on, and how fast a cached answer
starts.

    python -m bench.events [--turns 2000] [--tokens 200]

Bus cost: a typical turn's stream (Started, a tool call and its result, `--tokens` text
deltas, Done) is read by the `TurnObserver`, and its lifecycle events reach every subscriber
of a real app's observers: Prometheus metrics, usage records (SQLite, in a temporary
directory) and, in the second line, webhooks POSTed to a receiver in another process. CPU
time is this process's (`time.process_time`, every thread), less that of reading the same
stream without observers, divided by the turns.

Cached answer: through the chat service with `OLLAMASTACK_CACHE=true` at temperature 0
against the test suite's Ollama server (in its own process), the time to first token of a
question asked for the first time (a model call) and of the same question again (the cache).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.bus import EventBus
from ollamastack.events import Done, Started, TextDelta, ToolCall, ToolResult, TurnStats
from ollamastack.settings import Settings

RECEIVER = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as receivers behind any web server
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(204); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def turn_stream(tokens: int) -> list:
    stats = TurnStats(prompt_tokens=300, completion_tokens=tokens, time_to_first_token=0.2)
    return [
        Started("s", "llama3.2"), ToolCall("c1", "calculator", {"expression": "6*7"}),
        ToolResult("c1", "calculator", "42"), *[TextDelta(" word")] * tokens,
        Done("s", stats),
    ]


async def bus_cost(turns: int, tokens: int, webhook_url: str = "", events: str = "") -> float:
    """CPU milliseconds per turn that observing costs."""
    from ollamastack.agent.observer import TurnObserver
    from ollamastack.web.observers import Observers

    stream = turn_stream(tokens)
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(_env_file=None, data_dir=Path(data), webhook_url=webhook_url,
                            webhook_events=events)
        bus = EventBus(queue_size=4 * turns)
        observers = Observers.build(settings, ServiceHandle(settings), bus)
        for subscription in bus.subscriptions:  # a burst of turns, none dropped
            subscription.limit = 4 * turns
        await observers.usage.summary(1)  # open the database first: not a turn's cost
        started = time.process_time()
        for _ in range(turns):
            for _event in stream:
                pass
        baseline = time.process_time() - started
        started = time.process_time()
        for number in range(turns):
            observer = TurnObserver(bus, "ann", "llama3.2")
            for event in stream:
                observer.see(event)
            observer.close()
            if number % 50 == 0:
                await asyncio.sleep(0)  # let the subscribers run meanwhile, as in a server
        await bus.drain(within=600)
        spent = time.process_time() - started - baseline
        assert all(s.dropped == 0 and s.failed == 0 for s in bus.subscriptions), [
            (s.name, s.dropped, s.failed) for s in bus.subscriptions]
        await observers.aclose()
    return spent / turns * 1000


async def cached_first_token(questions: int) -> tuple[float, float] | None:
    """Median seconds to the first token: asked first (Ollama answers), asked again (cache)."""
    from ollamastack.agent.graph import TurnContext
    from ollamastack.agent.service_handle import open_chat_service
    from tests.support.ollama_server import FakeOllama

    if "user" not in TurnContext.__dataclass_fields__:
        return None  # the cache is not wired into the graph in this tree
    server = FakeOllama()
    server.add_model("llama3.2")
    times: dict[bool, list[float]] = {False: [], True: []}
    with server, tempfile.TemporaryDirectory() as data:
        settings = Settings(_env_file=None, ollama_host=server.url, data_dir=Path(data),
                            model="llama3.2", embedded=False, cache=True, temperature=0)
        async with open_chat_service(settings) as service:
            for number in range(questions + 1):
                for _ in range(2):
                    began = time.perf_counter()
                    first = None
                    async for event in service.stream_turn(f"Question {number}?"):
                        if isinstance(event, TextDelta) and first is None:
                            first = time.perf_counter() - began
                        if isinstance(event, Done) and number:  # the first one warms up
                            times[event.stats.cached].append(first or 0.0)
    return statistics.median(times[False]), statistics.median(times[True])


def report(lines: list[str], args: argparse.Namespace) -> str:
    """BENCHMARKS-events.md: the figures, the command and the machine."""
    import os
    import platform

    command = (f"python -m bench.events --turns {args.turns} --tokens {args.tokens} "
               f"--questions {args.questions} --output {args.output}")
    return "\n".join([
        "# Benchmarks: the event bus and the answer cache (issue 20)", "",
        f"- Command: `{command}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {os.cpu_count()} cores, {platform.platform()}; load average before: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}", "",
        "Targets: the bus with its subscribers under 0.5 ms of CPU per turn; a cached answer's "
        "first token. CPU is this process's, less reading the same stream without observers.",
        "", *(f"- {line.strip()}" for line in lines), "",
        "Webhook deliveries are off the turn's path (a queue per URL) but cost about 1 ms of "
        "CPU per POST (httpx), on the server's event loop: narrow them with "
        "`OLLAMASTACK_WEBHOOK_EVENTS` on a busy server.", "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--output", type=Path, help="also write the figures as Markdown here")
    args = parser.parse_args()
    lines: list[str] = []
    cost = asyncio.run(bus_cost(args.turns, args.tokens))
    lines.append(f"bus, metrics + usage (SQLite): {cost:.3f} ms CPU per turn ({args.turns} "
                 f"turns of {args.tokens} tokens and a tool call)")
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE,
                                text=True)
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/hook"
        cost = asyncio.run(bus_cost(args.turns, args.tokens, url))
        lines.append(f"  + webhooks (one URL, 3 POSTs a turn): {cost:.3f} ms CPU per turn")
        cost = asyncio.run(bus_cost(args.turns, args.tokens, url, "turn.completed"))
        lines.append(f"  + webhooks of turn.completed only (1 POST a turn): {cost:.3f} ms CPU "
                     "per turn")
    finally:
        receiver.terminate()
        receiver.wait()
    cached = asyncio.run(cached_first_token(args.questions))
    if cached is None:
        lines.append("cached answer: the cache is not wired into the graph here")
    else:
        lines.append(f"first token, median of {args.questions}: asked first "
                     f"{cached[0] * 1000:.1f} ms (test server, unpaced), asked again "
                     f"{cached[1] * 1000:.1f} ms (cache)")
    print("\n".join(lines))
    if args.output:
        args.output.write_text(report(lines, args))


if __name__ == "__main__":
    main()
