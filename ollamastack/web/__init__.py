"""Everything that imports Gradio: the app, the named API, the edge policy, HTTP middleware,
the page."""
