"""The engines that run models: Ollama (one or several instances) and the embedded llama.cpp
model, behind one factory (`factory.Engines`); `types` holds what both report."""
