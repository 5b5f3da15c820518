"""The targets of issue 8, checked against what one run measured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.report import Results


@dataclass
class Target:
    name: str
    limit: str
    measured: str = "not measured"
    held: bool | None = None  # None: not measured in this run (e.g. --quick)

    @property
    def verdict(self) -> str:
        return {True: "held", False: "**MISSED**", None: "not measured"}[self.held]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def _failed(row: dict[str, Any]) -> str:
    return f"; **{row['errors']} failed turns**" if row.get("errors") else ""


def check_targets(results: Results) -> list[Target]:
    targets = []
    for c, allowed in ((1, 20.0), (32, 50.0)):
        target = Target(f"Added TTFT p50, app over bare relay, {c} session(s)",
                        f"≤ {allowed:.0f} ms")
        app, relay = results.level("App", "httpx", c), results.level("Relay", "httpx", c)
        if app and relay:
            added = app["ttft_p50_ms"] - relay["ttft_p50_ms"]
            target.measured = (f"{added:+.1f} ms ({app['ttft_p50_ms']:.1f} vs "
                               f"{relay['ttft_p50_ms']:.1f} ms)")
            target.held = added <= allowed and not app["errors"]
            target.measured += _failed(app)
        targets.append(target)
    for c in (1, 32):
        target = Target(f"Turn time p50, app over bare relay, {c} session(s), 100 tokens/s",
                        "≤ +5%")
        app, relay = results.level("App", "httpx", c), results.level("Relay", "httpx", c)
        direct = results.level("Direct", "ollama", c)
        if app and relay:
            ratio = app["turn_p50_s"] / relay["turn_p50_s"] - 1
            gap = (f"; {app['turn_p50_s'] / direct['turn_p50_s'] - 1:+.1%} over Direct"
                   if direct else "")
            target.measured = (f"{ratio:+.1%} ({app['turn_p50_s']:.3f} vs "
                               f"{relay['turn_p50_s']:.3f} s{gap})")
            target.held = ratio <= 0.05 and not app["errors"]
            target.measured += _failed(app)
        targets.append(target)
    target = Target("Relay ceiling of one app process, no session starved",
                    "≥ 5,000 tokens/s; least-served session ≥ 50% of the mean")
    app = next((c for c in results.ceilings if c["side"] == "App"), None)
    if app:
        target.measured = (f"{app['total_tps']:,.0f} tokens/s over {app['sessions']} sessions; "
                           f"least served {app['fairness']:.0%} of the mean")
        target.held = app["total_tps"] >= 5000 and app["fairness"] >= 0.5 and not app["errors"]
        target.measured += _failed(app)
    targets.append(target)
    target = Target("RSS growth per 1,000 stored sessions (new sessions by REST calls)",
                    "< 50 MB")
    if results.memory:
        growth = results.memory["growth_mb_per_1000"]
        target.measured = (f"{growth:.1f} MB (measured over {results.memory['sessions']} "
                           f"sessions; the bare relay: "
                           f"{results.memory['relay_growth_mb_per_1000']:.1f} MB)")
        target.held = growth < 50 and not results.memory["errors"]
        target.measured += _failed(results.memory)
    targets.append(target)
    target = Target("Start-up to a served page, app over bare relay", "≤ +1 s")
    app_starts, relay_starts = results.cold_starts.get("App"), results.cold_starts.get("Relay")
    if app_starts and relay_starts:  # the fastest of each: background load only adds time
        added = min(app_starts) - min(relay_starts)
        target.measured = (f"{added:+.2f} s ({min(app_starts):.2f} vs {min(relay_starts):.2f} s, "
                           f"fastest of {len(app_starts)}; medians {median(app_starts):.2f} vs "
                           f"{median(relay_starts):.2f} s)")
        target.held = added <= 1.0
    targets.append(target)
    return targets
