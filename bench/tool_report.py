"""The tool-use evaluation's figures and report (`bench/tool_eval.py` runs the prompts): what
share of them went right, the issue's targets, and the Markdown tables."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.tool_prompts import KINDS, Outcome, Prompt

SCRIPTED_MODE = "native"  # Ollama's tool calling, with text calls repaired


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
