"""One turn pipeline for every door (page, named API and MCP): the audit entry, the rate limit,
the caller's turns in flight, the chat service's events in frames, and what the entry learns
on the way (the session, the model that answered, how it ended).

Each door keeps only how it folds the frames into what it shows.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.events import Event, Started, TurnError
from ollamastack.web.audit import Entry
from ollamastack.web.coalesce import MayWait, frames
from ollamastack.web.edge import Caller, Edge

Frame = list[tuple[float, Event]]  # the events of one frame, each with when it came


@dataclass(frozen=True)
class TurnRequest:
    """What a client asked: the message and its options, as they came (the service checks)."""

    message: str
    session_id: str = ""
    model: str = ""
    temperature: float | None = None
    system_prompt: str = ""
    max_tokens: int | None = None  # the answer's longest length (OpenAI's `max_tokens`)
    files: tuple[tuple[str, bytes], ...] = ()  # attached files: (name as sent, bytes)
    edit_index: int | None = None  # the user message this one replaces, as a new branch


class TurnPipeline:
    """The skeleton every door runs a turn through."""

    def __init__(self, handle: ServiceHandle, edge: Edge) -> None:
        self.handle = handle
        self.edge = edge

    @contextmanager
    def admitted(
        self, endpoint: str, caller: Caller, turn: TurnRequest, **fields: object
    ) -> Iterator[Entry]:
        """The turn's audit entry, once `caller` is within the rate limit (`RateLimited`) and
        holds one of their turn slots for the whole block (`TooManyTurns`)."""
        message = turn.message if isinstance(turn.message, str) else None
        audited = self.edge.audit(
            endpoint, caller, session_id=str(turn.session_id or ""),
            model=str(turn.model or self.edge.settings.model), message=message, **fields,
        )
        with audited as entry:
            self.edge.count_message(caller)
            with self.edge.turn_slot(caller):
                yield entry

    async def frames(
        self,
        entry: Entry,
        user: str,
        turn: TurnRequest,
        *,
        interval: float,
        may_wait: MayWait,
        clock: Callable[[], float] = time.monotonic,
    ) -> AsyncIterator[Frame]:
        """The turn's events, a frame at a time. Refusals (`InvalidInput`, `SessionBusy`, …)
        raise before anything is stored; failures while answering come as `TurnError`."""
        service = await self.handle.get()
        if turn.edit_index is not None:  # an edit (or Retry): a new branch, not a new message
            events = service.edit_message(
                turn.session_id, turn.edit_index, turn.message, user=user, model=turn.model,
                temperature=turn.temperature, system_prompt=turn.system_prompt)
        else:
            events = service.stream_turn(
                turn.message,
                session_id=turn.session_id,
                user=user,
                model=turn.model,
                temperature=turn.temperature,
                system_prompt=turn.system_prompt,
                max_tokens=turn.max_tokens,
                files=turn.files,
            )
        async with aclosing(self._framed(entry, events, interval, may_wait, clock)) as batches:
            async for batch in batches:
                yield batch

    async def approval_frames(
        self,
        entry: Entry,
        user: str,
        session_id: str,
        approve: bool,
        *,
        interval: float,
        may_wait: MayWait,
        clock: Callable[[], float] = time.monotonic,
    ) -> AsyncIterator[Frame]:
        """Like `frames`, for the rest of a turn that waited for the user's approval of a tool
        call (`ChatService.resume_turn`): nothing waiting, or another user's conversation,
        raise before anything changes."""
        service = await self.handle.get()
        events = service.resume_turn(session_id, approve, user=user)
        async with aclosing(self._framed(entry, events, interval, may_wait, clock)) as batches:
            async for batch in batches:
                yield batch

    async def _framed(
        self, entry: Entry, events: AsyncIterator[Event], interval: float, may_wait: MayWait,
        clock: Callable[[], float],
    ) -> AsyncIterator[Frame]:
        async with aclosing(frames(events, interval, may_wait=may_wait, clock=clock)) as batches:
            async for batch in batches:
                for _, event in batch:
                    if isinstance(event, Started):
                        entry.session_id, entry.model = event.session_id, event.model
                    elif isinstance(event, TurnError):
                        entry.fail(event.error)
                yield batch
