"""The embedded model: llama.cpp in this process, its LangChain chat model, its tool-call format."""
