"""Ollama over HTTP: the official client, the LangChain chat model, the pool of instances."""
