"""Work Gradio does per event and per session that this app does not need, cut down.

- After every event, Gradio's queue recomputes the summary its monitoring dashboard shows: a
  pandas group-by over up to 10,000 recorded events, 1.5 to 5 ms of CPU each time, on a
  worker thread that holds the GIL the event loop needs. The dashboard is only served with
  `launch(enable_monitoring=True)`, which this app never passes, so nothing reads it.
- Every new session hash (each REST call without one, each browser tab, each
  `gradio_client.Client`) gets a `SessionState` that renders the config of every block of the
  page: about 2 ms of the event loop for our 67 blocks, though a call touches two or three of
  them. Here a block's config is rendered when first asked for; only a deep link asks for all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

from gradio.state_holder import SessionState


def skip_monitoring_summary(blocks: Any) -> None:
    """Keep one analytics record and never recompute the summary (call after `queue()`)."""
    queue = blocks._queue
    queue.ANALYTICS_MAX_EVENTS = 1
    queue.ANAYLTICS_CACHE_FREQUENCY = sys.maxsize  # Gradio's own spelling


_PENDING: Any = object()


class LazyConfigValues(dict):
    """`SessionState.config_values`: each block's config rendered when first read, the keys
    (and their order) those of Gradio's own from the start."""

    def __init__(self, blocks_config: Any, ids: Iterable[int]) -> None:
        super().__init__(dict.fromkeys(ids, _PENDING))
        self._blocks_config = blocks_config

    def __getitem__(self, key: int) -> dict:
        value = super().__getitem__(key)
        if value is _PENDING:
            block = self._blocks_config.blocks[key]
            value = self._blocks_config.config_for_block(key, [], block)
            super().__setitem__(key, value)
        return value

    def get(self, key: int, default: Any = None) -> Any:
        return self[key] if key in self else default

    def _render_all(self) -> None:
        for key in super().keys():
            self[key]

    def __iter__(self) -> Iterator[int]:
        self._render_all()
        return super().__iter__()

    def values(self) -> Any:
        self._render_all()
        return super().values()

    def items(self) -> Any:
        self._render_all()
        return super().items()


_gradio_init = SessionState.__init__


def _lazy_init(self: SessionState, blocks: Any) -> None:
    # Gradio's own __init__ with no block to render, then the same blocks, rendered lazily.
    _gradio_init(self, SimpleNamespace(default_config=blocks.default_config, blocks={}))
    ids = [k for k in self.blocks_config.blocks if k in blocks.blocks]
    self.config_values = LazyConfigValues(self.blocks_config, ids)


def render_session_config_lazily() -> None:
    """Make every `SessionState` of this process render block configs on first use."""
    SessionState.__init__ = _lazy_init  # type: ignore[method-assign]
