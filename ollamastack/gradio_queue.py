"""Work Gradio's queue does per event that this app never uses, switched off.

After every event, Gradio's queue recomputes the summary its monitoring dashboard shows: a
pandas group-by over up to 10,000 recorded events, 1.5 to 5 ms of CPU each time, on a
worker thread that holds the GIL the event loop needs. The dashboard is only served with
`launch(enable_monitoring=True)`, which this app never passes, so nothing reads the summary.
"""

from __future__ import annotations

import sys
from typing import Any


def skip_monitoring_summary(blocks: Any) -> None:
    """Keep one analytics record and never recompute the summary (call after `queue()`)."""
    queue = blocks._queue
    queue.ANALYTICS_MAX_EVENTS = 1
    queue.ANAYLTICS_CACHE_FREQUENCY = sys.maxsize  # Gradio's own spelling
