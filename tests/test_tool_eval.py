"""The tool-use evaluation (`bench/tool_eval.py`) keeps working: its prompt set and checks,
its scripted text-call part against the test server, its figures, targets and report."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import bench.tool_prompts
from bench.tool_eval import (
    Limits,
    Record,
    Share,
    check_targets,
    figures,
    main,
    misses,
    run_embedded,
    run_scripted,
    weather_stand_in,
)
from bench.tool_prompts import PROMPTS, Outcome, Prompt, sample
from ollamastack.engines.embedded.engine import EMBEDDED_MODEL, embedded_available
from tests.support.text_calls import SHAPES, text_call
from tests.support.weather_server import WeatherServer

LIMITS = Limits(timeout=30)


@pytest.fixture
def weather() -> Iterator[WeatherServer]:
    with weather_stand_in() as server:
        yield server


def find(text: str) -> Prompt:
    return next(p for p in PROMPTS if p.text == text)


def test_the_prompt_set_covers_every_tool_and_prompts_that_need_none():
    kinds = [p.kind for p in PROMPTS]
    assert len(PROMPTS) >= 40 and kinds.count("none") >= 10
    assert {p.tool for p in PROMPTS} == {
        "calculator", "current_time", "text_analyzer", "weather", None
    }
    assert len({p.text for p in PROMPTS}) == len(PROMPTS)
    assert (find("What is 12*7?").tool, find("What time is it in Tokyo?").args) == (
        "calculator", {"timezone": "Asia/Tokyo"}
    )
    assert find("What's the weather in Paris?").args == {"location": "Paris"}
    assert find("What is the capital of France?").tool is None


@pytest.mark.parametrize("prompt", PROMPTS, ids=lambda p: p.text[:40])
def test_each_check_passes_a_right_answer_and_fails_a_wrong_one(prompt: Prompt):
    assert prompt.check(Outcome(answer=prompt.ideal()))
    if prompt.tool is not None:  # open requests ("Hi!") take any answer in words
        assert not prompt.check(Outcome(answer="I'm sorry, I cannot check that."))


def test_times_and_dates_are_judged_when_the_turn_ended_not_when_the_report_is_written():
    at = datetime(2026, 11, 25, 7, 4, tzinfo=UTC)  # 16:04 in Tokyo, a Wednesday
    assert find("What time is it in Tokyo?").check(Outcome(answer="It is 16:04.", at=at))
    assert find("Which day of the week is it today?").check(Outcome(answer="Wednesday", at=at))
    assert not find("Which day of the week is it today?").check(
        Outcome(answer="Thursday", at=at)
    )


def test_the_checks_doctests():
    assert doctest.testmod(bench.tool_prompts).failed == 0


async def test_repair_turns_every_text_call_shape_into_the_right_call(weather: WeatherServer):
    prompts = sample(1)  # one of each kind: calculator, time, text, weather, none
    runs = await run_scripted(prompts, SHAPES, LIMITS, weather)
    assert [run.target for run in runs] == SHAPES
    for run in runs:
        assert figures(run.records) == {
            "Tool chosen correctly": Share(5, 5),
            "Arguments valid": Share(4, 4),
            "Final answer correct": Share(5, 5),
            "No-tool prompts left alone": Share(1, 1),
        }, run.target
        assert [r.outcome.calls for r in run.records] == [
            (("calculator", {"expression": "12*7"}),),
            (("current_time", {"timezone": "Asia/Tokyo"}),),
            (("text_analyzer", {"text": "the quick brown fox"}),),
            (("weather", {"location": "Paris"}),),
            (),
        ]
        calculator, clock, analyzer, forecast, _ = (r.outcome for r in run.records)
        assert (calculator.results, calculator.answer) == (("84",), "The answer is 84.")
        assert clock.results[0].startswith("Asia/Tokyo: ")
        assert analyzer.results[0].splitlines()[1] == "Words: 4"
        assert forecast.results == (
            "Current weather in Paris, France at 2026-11-25 16:00 local time: Partly cloudy, "
            "8.4°C (feels like 6.4°C), humidity 70%, wind 12 km/h.",
        )
    assert len(weather.requests) == 2 * len(SHAPES)  # geocoding and forecast, each shape


async def test_a_call_quoted_in_prose_counts_as_no_tool(weather: WeatherServer):
    def in_prose(shape: str, name: str, args: dict) -> str:
        return f"You could send {text_call('llama-json', name, args)} to get that."

    [run] = await run_scripted(sample(1), ["prose"], LIMITS, weather, write=in_prose)
    assert figures(run.records) == {
        "Tool chosen correctly": Share(1, 5),  # only the prompt that needs no tool
        "Arguments valid": Share(0, 0),
        "Final answer correct": Share(1, 5),
        "No-tool prompts left alone": Share(1, 1),
    }
    assert misses(run)[:2] == [
        "- 'What is 12*7?': no tool; answered \"You could send {\"name\": \"calculator\", "
        "\"parameters\": {\"expression\": \"12*7\"}} to get that.\"",
        "- 'What time is it in Tokyo?': no tool; answered \"You could send {\"name\": "
        "\"current_time\", \"parameters\": {\"timezone\": \"Asia/Tokyo\"}} to get that.\"",
    ]


def record(text: str, outcome: Outcome) -> Record:
    return Record(find(text), outcome, 1.0)


def test_the_targets_read_the_turns():
    right_sum = Outcome((("calculator", {"expression": "12*7"}),), ("84",), "It is 84.")
    guessed = Outcome(answer="It is 84.")  # right, but not from the calculator
    tool_for_hello = Outcome((("current_time", {}),), ("UTC: ...",), "Hello!")
    clock = Outcome((("current_time", {"timezone": "Asia/Tokyo"}),), ("Asia/Tokyo: ...",), "")
    records = [
        record("What is 12*7?", right_sum), record("What is 12*7?", guessed),
        record("Hi!", tool_for_hello), *[record("Tell me a joke.", Outcome(answer="Ha."))] * 9,
        record("What time is it in Tokyo?", clock),
    ]
    assert check_targets(records) == [
        ("Arithmetic prompts answered with the calculator's correct result", "≥ 90%",
         Share(1, 2), False),
        ("No-tool prompts that trigger a tool", "≤ 10%", Share(1, 10), True),
        ("Time and text-analysis prompts routed to the right tool", "≥ 80%", Share(1, 1), True),
    ]


def test_the_command_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "tools.md"
    assert main(["--targets", "scripted", "--per-kind", "1", "--output", str(out)]) == 0
    report = out.read_text()
    assert report == capsys.readouterr().out
    header = ("| Shape | Prompts | Tool chosen correctly | Arguments valid | Final answer correct "
              "| No-tool prompts left alone | s / prompt |")
    rows = [line for line in report.splitlines() if line.startswith("| `")]
    assert header in report.splitlines()
    assert [row.rsplit("|", 2)[0] for row in rows] == [
        f"| `{shape}` | 5 | 100% (5/5) | 100% (4/4) | 100% (5/5) | 100% (1/1) " for shape in SHAPES
    ]
    assert "Wrong with" not in report
    assert "Targets" not in report  # the embedded model was not measured


@pytest.mark.parametrize(("argv", "message"), [
    (["--modes", "auto,turbo"], "choose among auto, native, prompted, off (got 'auto,turbo')"),
    (["--per-kind", "0"], "a whole number above 0 (got '0')"),
    (["--timeout", "soon"], "a number above 0 (got 'soon')"),
])
def test_bad_arguments_are_refused_clearly(argv: list[str], message: str,
                                           capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(not embedded_available(), reason="the embedded model is not installed")
async def test_the_embedded_model_answers_as_the_default(weather: WeatherServer):
    [run] = await run_embedded([find("Hi!")], ["off"], Limits(max_chars=40), weather)
    assert (run.target, run.mode, run.model) == ("embedded", "off", EMBEDDED_MODEL)
    [answer] = run.records
    assert answer.outcome.error == "" and answer.outcome.answer.strip()
    assert weather.requests == []
