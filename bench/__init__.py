"""The benchmark of issue 8: what OllamaStack costs on top of Ollama (`make bench`)."""
