"""A tool's answer within a time bound: a regex match or a big-number computation holds the
GIL for its whole length, so only a separate process can be stopped when it runs over."""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

import pytest


def _invoke_into(tool: Any, arguments: dict[str, Any], pipe: Connection) -> None:
    pipe.send(tool.invoke(arguments))


def answer_within(tool: Any, arguments: dict[str, Any], seconds: float) -> str:
    """`tool`'s answer to `arguments`, from a forked child killed after `seconds` (the test
    fails then, naming the tool and the start of its input)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_invoke_into, args=(tool, arguments, sender), daemon=True)
    child.start()
    try:
        if not receiver.poll(seconds):
            shown = str(next(iter(arguments.values()), ""))[:60]
            pytest.fail(f"{tool.name} was still busy after {seconds} s on {shown!r}…")
        return receiver.recv()
    finally:
        child.kill()
        child.join()
