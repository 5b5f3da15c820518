"""The LangGraph agent and the chat service over it: one turn as a stream of typed events."""
