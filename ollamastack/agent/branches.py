"""Branches of a conversation, read from its LangGraph checkpoints.

Every reader of a conversation (turns, sealing, approvals, search, export) takes the thread's
latest checkpoint as the conversation, and so do branches: the active branch is always the
latest checkpoint. An edit copies the checkpoint just before the message (LangGraph's
`__copy__`: same values and parent, a new and newest id) and runs the turn on from it; a
switch continues the chosen branch's newest checkpoint with one of the same values (an update
as END). Both are in `branch_turns.py`. Nothing is rewritten or deleted: every branch stays in
the same thread, so deleting it deletes them all.

A branch is a version of the conversation that is a tip of the checkpoint tree (a checkpoint
no other continues from), so each branch has one tip. A turn taken back with
`undo_last_turn` is continued by the undo itself, so it is forgotten, not kept as a branch.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from ollamastack.agent.sealing import thread
from ollamastack.errors import InvalidInput

KEPT_SESSIONS = 128  # conversations whose checkpoints' outlines are kept between reads
FIRST_PAGE = 8  # checkpoints read at first when looking for those written since


@dataclass(frozen=True)
class BranchInfo:
    """One user message of the active branch: which of its versions is shown (from 1) and
    how many there are."""

    index: int  # the message's place in `history`
    branch: int
    branches: int


@dataclass(frozen=True)
class Outline:
    """What branches need of one checkpoint: never the messages' contents."""

    config: dict  # its address, to copy it
    parent: str | None
    ids: tuple[str, ...]  # its messages' ids
    kinds: str  # "h" for each user message, "." for the others
    waiting_input: bool  # an input checkpoint: the message it got is not applied yet
    options: dict  # the turn options in its metadata (`approval.turn_metadata`)
    files: frozenset[str]  # the ids of the files its user messages carry

    @property
    def id(self) -> str:
        return self.config["configurable"]["checkpoint_id"]

    @classmethod
    def of(cls, saved: CheckpointTuple) -> Outline:
        values = saved.checkpoint["channel_values"]
        messages = values.get("messages") or []
        parent = (saved.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        return cls(
            saved.config, parent, tuple(sys.intern(str(m.id)) for m in messages),
            "".join("h" if isinstance(m, HumanMessage) else "." for m in messages),
            "__start__" in values,
            {k: sys.intern(v) if isinstance(v, str) else v
             for k, v in (saved.metadata or {}).items() if k.startswith("turn_")},
            frozenset(str(ref.get("id")) for m in messages
                      for ref in m.additional_kwargs.get("attachments") or ()),
        )


def shared_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    """How many leading items `a` and `b` have in common.

    >>> shared_prefix("abcd", "abxd"), shared_prefix("ab", "abc"), shared_prefix("", "a")
    (2, 2, 0)
    """
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def whole_number(value: object, what: str) -> int:
    """`value` as an int; `InvalidInput` for anything else (a bool too).

    >>> whole_number(3, "branch")
    3
    >>> whole_number(True, "branch")
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The branch must be a whole number.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"The {what} must be a whole number.")
    return value


class Tree:
    """Every checkpoint of one conversation, newest first: the first is the active branch."""

    def __init__(self, checkpoints: Sequence[Outline]) -> None:
        self.checkpoints = checkpoints
        active = checkpoints[0] if checkpoints else None
        self.ids, self.kinds = (active.ids, active.kinds) if active else ((), "")
        continued = {c.parent for c in checkpoints}
        # each tip with how many of the active branch's messages it begins with, newest first
        self._tips = [(tip, shared_prefix(tip.ids, self.ids))
                      for tip in checkpoints if tip.id not in continued]
        self._first_seen: dict[str, int] = {}  # message id -> order of its first checkpoint
        for order, checkpoint in enumerate(reversed(checkpoints)):
            for message_id in checkpoint.ids:
                self._first_seen.setdefault(message_id, order)

    def user_message(self, index: object) -> int:
        """`index` when it points at a user message of the active branch; `InvalidInput` else."""
        index = whole_number(index, "message index")
        if not 0 <= index < len(self.ids):
            held = f"0 to {len(self.ids) - 1}" if self.ids else "none: it is empty"
            raise InvalidInput(f"Message index {index} is not in this conversation "
                               f"(its messages are {held}).")
        if self.kinds[index] != "h":
            raise InvalidInput(f"Message {index} is not one of your messages: only those can "
                               "be edited or have branches.")
        return index

    def versions(self, index: int) -> list[str]:
        """The ids of the versions of the user message at `index` (after the same messages as
        in the active branch), in the order they were first written."""
        found = {tip.ids[index] for tip, shared in self._tips
                 if shared >= index and tip.kinds[index:index + 1] == "h"}
        return sorted(found, key=lambda message_id: self._first_seen[message_id])

    def info(self) -> list[BranchInfo]:
        """Branch and branches of each user message of the active branch."""
        infos = []
        for index, kind in enumerate(self.kinds):
            if kind == "h":
                versions = self.versions(index)
                infos.append(BranchInfo(index, versions.index(self.ids[index]) + 1,
                                        len(versions)))
        return infos

    def branch(self, index: int, number: object) -> str:
        """The id of version `number` (from 1) of the user message at `index`."""
        versions = self.versions(index)
        number = whole_number(number, "branch")
        if not 1 <= number <= len(versions):
            branches = f"{len(versions)} branch{'es' if len(versions) > 1 else ''}"
            raise InvalidInput(f"Message {index} has {branches}: there is no branch {number}.")
        return versions[number - 1]

    def tip(self, index: int, message_id: str) -> Outline:
        """The newest checkpoint of the branch whose message at `index` is `message_id`."""
        return next(tip for tip, shared in self._tips
                    if shared >= index and tip.ids[index:index + 1] == (message_id,))

    def fork_point(self, index: int) -> Outline | None:
        """The newest checkpoint holding exactly the active branch's messages before `index`;
        one not waiting to apply an input, where there is one."""
        before = self.ids[:index]
        same = [c for c in self.checkpoints if c.ids == before]
        return next((c for c in same if not c.waiting_input), same[0] if same else None)

    def files_elsewhere(self) -> frozenset[str]:
        """The ids of the files that branches other than the active one carry."""
        return frozenset().union(*(tip.files for tip, _ in self._tips[1:]))

    def turn_options(self, index: int) -> dict:
        """The options of the turn that answered the message at `index`."""
        message_id = self.ids[index]
        return next((c.options for c in reversed(self.checkpoints)
                     if c.options and message_id in c.ids), {})


class Outlines:
    """The outlines of each conversation's checkpoints read so far, the least recently read
    forgotten first. Checkpoints are never changed, only added (by this process or another
    replica) or deleted with their whole thread: a read fetches only those written since."""

    def __init__(self, size: int = KEPT_SESSIONS) -> None:
        self.size = size
        self._kept: OrderedDict[str, list[Outline]] = OrderedDict()

    async def tree(self, checkpointer: BaseCheckpointSaver, session_id: str) -> Tree:
        known = self._kept.pop(session_id, [])
        newest = known[0].id if known else None
        outlines = [*await self._since(checkpointer, session_id, newest), *known]
        self._kept[session_id] = outlines
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return Tree(outlines)

    @staticmethod
    async def _since(
        checkpointer: BaseCheckpointSaver, session_id: str, newest: str | None
    ) -> list[Outline]:
        """The outlines of the checkpoints newer than `newest` (all for None), newest first,
        read in growing pages so that a few new ones cost a few."""
        found: list[Outline] = []
        before, page = None, FIRST_PAGE
        while True:
            listed = checkpointer.alist(thread(session_id), before=before, limit=page)
            count = 0
            async with aclosing(listed):
                async for saved in listed:
                    count += 1
                    if saved.config["configurable"]["checkpoint_id"] == newest:
                        return found
                    found.append(Outline.of(saved))
            if count < page:
                return found
            before, page = found[-1].config, page * 4
