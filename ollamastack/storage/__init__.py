"""Where conversations live: the LangGraph checkpointer and the session index
(SQLite or PostgreSQL)."""
