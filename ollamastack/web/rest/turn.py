"""A turn of the REST and OpenAI routes: admitted, given one of the REST turns' slots
(`slots.TurnSlots`) and started before any byte is answered, so that every refusal (rate
limit, bad input, unknown conversation or model, Ollama down) is an HTTP status, not an error
in the middle of a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack

import anyio

from ollamastack.events import Event, Started, TurnError
from ollamastack.web.coalesce import FRAME_SECONDS, same_run
from ollamastack.web.edge import Caller
from ollamastack.web.http import Receive
from ollamastack.web.rest.context import RestContext
from ollamastack.web.rest.errors import ApiError
from ollamastack.web.turns import TurnRequest


class StartedTurn:
    """A turn past `Started`: iterate `events()` once; it ends the audit entry when done."""

    def __init__(self, started: Started, stack: ExitStack, batches: AsyncIterator,
                 early: list[Event]) -> None:
        self.started = started
        self._stack = stack
        self._batches = batches
        self._early = early

    @classmethod
    async def start(
        cls, ctx: RestContext, endpoint: str, caller: Caller, turn: TurnRequest,
        receive: Receive, *, approve: bool | None = None,
    ) -> StartedTurn:
        """Admit the turn, wait for a slot, start it; its refusals and early failures raise
        here. `receive`: the request's, to notice a client that hangs up while waiting.
        With `approve`, the turn is the rest of the one waiting in `turn.session_id` for the
        user's answer to a tool call (`ChatService.resume_turn`), not a new message."""
        stack = ExitStack()
        try:
            entry = stack.enter_context(ctx.turns.admitted(endpoint, caller, turn))
            held = await ctx.slots.take(receive)
        except BaseException as error:
            stack.__exit__(type(error), error, error.__traceback__)
            raise
        if not held:
            entry.outcome = "stopped"  # as for a client gone while its answer streams
            stack.close()
            raise ApiError(499, "client_closed", "The client closed the connection while its "
                           "turn waited for a free slot.")
        stack.callback(ctx.slots.release)
        batches = (
            ctx.turns.frames(entry, caller.user, turn, interval=FRAME_SECONDS, may_wait=same_run)
            if approve is None else ctx.turns.approval_frames(
                entry, caller.user, turn.session_id, approve, interval=FRAME_SECONDS,
                may_wait=same_run)
        )
        try:
            async for batch in batches:
                events = [event for _, event in batch]
                for index, event in enumerate(events):
                    if isinstance(event, TurnError):
                        raise event.error
                    if isinstance(event, Started):
                        return cls(event, stack, batches, events[index + 1:])
            raise RuntimeError("the turn ended before it started")
        except BaseException as error:
            await batches.aclose()
            if not stack.__exit__(type(error), error, error.__traceback__):
                raise
            raise AssertionError("unreachable") from error  # the audit entry never suppresses

    async def events(self) -> AsyncIterator[Event]:
        """The turn's events after `Started`; a `TurnError` is raised, after what came first."""
        try:
            for event in self._early:
                if isinstance(event, TurnError):
                    raise event.error
                yield event
            async for batch in self._batches:
                for _, event in batch:
                    if isinstance(event, TurnError):
                        raise event.error
                    yield event
        except BaseException as error:
            with anyio.CancelScope(shield=True):  # a client gone: Starlette cancels the stream
                await self._batches.aclose()
            self._stack.__exit__(type(error), error, error.__traceback__)
            raise
        else:
            self._stack.close()

    async def abandon(self) -> None:
        """End a turn whose `events()` were never read (the reply could not be sent)."""
        await self._batches.aclose()
        self._stack.close()
