"""The plot of BENCHMARKS.md: tokens/s and first-token latency against concurrency."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench.report import Results


def plot(results: Results, path: Path) -> None:
    """Direct, Agent and App (and the relay, for reference; Open WebUI when measured), one
    line each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [("Direct", "ollama", "-"), ("Agent", "in-process", "-"), ("App", "httpx", "-"),
              ("Relay", "httpx", ":"), ("App", "gradio_client", "--"),
              ("Open WebUI", "httpx", "-.")]
    panels = [("total_tps", "Tokens/s delivered, all sessions"),
              ("stream_tps_p50", "Tokens/s per stream (p50)"),
              ("ttft_p50_ms", "Time to first token p50 (ms)")]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for axis, (key, title) in zip(axes, panels, strict=True):
        for side, client, style in series:
            points = sorted((r["concurrency"], r[key]) for r in results.levels
                            if (r["side"], r["client"]) == (side, client))
            if points:
                axis.plot(*zip(*points, strict=True), style, marker="o", label=f"{side} ({client})")
        levels = sorted({r["concurrency"] for r in results.levels})
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(level) for level in levels])
        axis.set_xlabel("concurrent sessions")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"OllamaStack vs Ollama direct — test server at 100 tokens/s per stream "
                    f"({results.mode} run, {datetime.now(UTC):%Y-%m-%d})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
