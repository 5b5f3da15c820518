"""The Usage tab, for administrators: who used which model, how much and how fast.

Charts (Gradio's native plots over pandas frames, both shipped with Gradio) of turns and
tokens per day by model, first-token p50/p95 per day, tool calls by tool and the error rate;
a table per user; a range of days. The figures are those of the `/usage` endpoint
(`UsageLog.summary`), so the page and the API never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from ollamastack.settings import Settings
from ollamastack.storage.usage import UsageLog
from ollamastack.web.edge import Edge, caller_of, user_errors
from ollamastack.web.metrics import USAGE_REFUSAL, is_admin

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
RANGES = [("Today", 1), ("7 days", 7), ("30 days", 30), ("90 days", 90), ("A year", 366)]
FROM_ZERO: list[float | None] = [0, None]
USER_COLUMNS = ["User", "Turns", "Tokens in", "Tokens out", "Errors", "Last turn (UTC)"]


def usage_tab_visible(settings: Settings) -> bool:
    """Whether anyone of this app may be an administrator (see `metrics.is_admin`): the tab
    is hidden for a share link without login. With login each visitor is checked again.

    >>> usage_tab_visible(Settings(_env_file=None)), usage_tab_visible(
    ...     Settings(_env_file=None, share=True))
    (True, False)
    """
    return bool(settings.logins) or not settings.share


def frames(summary: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The summary's lists as the frames the charts read (days as dates, for a time axis).

    >>> f = frames({"per_day": [{"day": "2025-01-02", "model": "m", "turns": 2,
    ...     "prompt_tokens": 5, "completion_tokens": 7, "errors": 0, "cached": 0}],
    ...     "first_token": [], "error_rate": [], "tools": [], "users": []})
    >>> f["tokens"].to_dict("records"), f["turns"]["day"].tolist()
    ([{'day': '2025-01-02', 'model': 'm', 'tokens': 12}], [Timestamp('2025-01-02 00:00:00')])
    """
    per_day = pd.DataFrame(summary["per_day"], columns=[
        "day", "model", "turns", "prompt_tokens", "completion_tokens", "errors", "cached"])
    per_day["day"] = pd.to_datetime(per_day["day"])
    tokens = per_day.assign(tokens=per_day["prompt_tokens"] + per_day["completion_tokens"],
                            day=per_day["day"].dt.strftime("%Y-%m-%d"))  # bars: one a day
    first = pd.DataFrame(summary["first_token"], columns=["day", "p50", "p95", "turns"])
    first = first.melt(id_vars=["day"], value_vars=["p50", "p95"], var_name="percentile",
                       value_name="seconds")
    first["day"] = pd.to_datetime(first["day"])
    errors = pd.DataFrame(summary["error_rate"], columns=["day", "rate"])
    errors["day"] = pd.to_datetime(errors["day"])
    users = pd.DataFrame(
        [[u["user"] or "(no login)", u["turns"], u["prompt_tokens"], u["completion_tokens"],
          u["errors"], u["last_turn"]] for u in summary["users"]],
        columns=USER_COLUMNS,
    )
    return {
        "turns": per_day[["day", "model", "turns"]],
        "tokens": tokens[["day", "model", "tokens"]],
        "first_token": first,
        "tools": pd.DataFrame(summary["tools"], columns=["tool", "calls", "errors"]),
        "errors": errors,
        "users": users,
    }


@dataclass
class UsageTab:
    days: gr.Dropdown
    refresh: gr.Button
    notice: gr.Markdown
    turns: gr.LinePlot
    tokens: gr.BarPlot
    first_token: gr.LinePlot
    tools: gr.BarPlot
    errors: gr.LinePlot
    users: gr.Dataframe

    @property
    def outputs(self) -> list[Any]:
        return [self.notice, self.turns, self.tokens, self.first_token, self.tools,
                self.errors, self.users]


class UsageHandlers:
    def __init__(self, settings: Settings, usage: UsageLog, edge: Edge) -> None:
        self.settings, self.usage, self.edge = settings, usage, edge

    async def show(self, days: int, request: gr.Request) -> tuple:
        """The charts for the last `days` days; for anyone but an administrator, only why not."""
        caller = caller_of(request)
        if not is_admin(self.settings, caller.user):
            return (USAGE_REFUSAL, *[gr.skip()] * 6)
        with user_errors(html=True), self.edge.audit("ui_usage", caller):
            summary = await self.usage.summary(days)
        f = frames(summary)
        turns = int(f["turns"]["turns"].sum())
        failed = sum(int(row["errors"]) for row in summary["per_day"])
        notice = (f"**{turns}** turns from {summary['from']} to {summary['to']} (UTC), "
                  f"**{failed}** failed." if turns else "No turns in this range yet.")
        return (notice, f["turns"], f["tokens"], f["first_token"], f["tools"], f["errors"],
                f["users"])


def build_usage_tab(blocks: gr.Blocks, settings: Settings, usage: UsageLog, edge: Edge
                    ) -> UsageTab:
    """Lay the tab's contents out inside an open `gr.Tab`, and fill them when the page
    loads, on Refresh and when the range changes."""
    handlers = UsageHandlers(settings, usage, edge)
    with gr.Row():
        days = gr.Dropdown(RANGES, value=7, label="Range", elem_id="usage-days", scale=0,
                           min_width=160)
        refresh = gr.Button("↻ Refresh", size="sm", scale=0, min_width=120,
                            elem_id="usage-refresh")
    notice = gr.Markdown("", elem_id="usage-notice")
    with gr.Row():
        turns = gr.LinePlot(x="day", y="turns", color="model", title="Turns per day",
                            x_title="Day", y_title="Turns", y_lim=FROM_ZERO,
                            elem_id="usage-turns")
        tokens = gr.BarPlot(x="day", y="tokens", color="model", title="Tokens per day",
                            x_title="Day", y_title="Tokens (in + out)", y_lim=FROM_ZERO,
                            sort="x", elem_id="usage-tokens")
    with gr.Row():
        first_token = gr.LinePlot(x="day", y="seconds", color="percentile",
                                  title="Time to first token", x_title="Day",
                                  y_title="Seconds", y_lim=FROM_ZERO,
                                  elem_id="usage-first-token")
        errors = gr.LinePlot(x="day", y="rate", title="Error rate", x_title="Day",
                             y_title="Failed turns (share)", y_lim=[0, 1],
                             elem_id="usage-errors")
    tools = gr.BarPlot(x="tool", y="calls", title="Tool calls", x_title="Tool",
                       y_title="Calls", y_lim=FROM_ZERO, elem_id="usage-tools")
    users = gr.Dataframe(headers=USER_COLUMNS, label="Per user", interactive=False,
                         elem_id="usage-users")
    tab = UsageTab(days, refresh, notice, turns, tokens, first_token, tools, errors, users)
    for trigger in (blocks.load, refresh.click, days.input):
        trigger(handlers.show, days, tab.outputs, api_name="ui_usage",
                show_progress="hidden", **PRIVATE)
    return tab
