"""Full-text search over each user's conversations: FTS5 in the SQLite file, tsvector with a
GIN index on PostgreSQL.

One row per stored user or model message with text (tool calls and results are not
searched), keyed by session and the message's index in the stored conversation, so a hit
opens the conversation at that message. The chat service keeps the rows in step: a turn's
messages are (re)indexed once it is stored (on PostgreSQL written behind the turn), and
undo and delete remove theirs; conversations stored before the index existed are added in
the background from start-up (`agent/search_backfill.py`). Queries are plain words, never
the engines' query syntax: each word is quoted, the last one also matches as a prefix
(search as you type), so `"foo AND (` searches for foo and and.

`base.py` holds what both engines share, `sqlite.py` and `postgres.py` one engine each.
"""

from ollamastack.storage.search.base import (
    QUERY_CHARS,
    RESULTS,
    Found,
    Hit,
    SearchIndex,
    query_words,
    searchable,
)
from ollamastack.storage.search.postgres import PostgresSearchIndex
from ollamastack.storage.search.sqlite import SqliteSearchIndex

__all__ = ["QUERY_CHARS", "RESULTS", "Found", "Hit", "PostgresSearchIndex", "SearchIndex",
           "SqliteSearchIndex", "query_words", "searchable"]
