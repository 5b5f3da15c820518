"""Test doubles and helpers: the Ollama-protocol server, the weather stand-in, PostgreSQL,
app processes."""
