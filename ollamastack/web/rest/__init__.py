"""The REST API (`/api/v1/...`) and the OpenAI-compatible routes (`/v1/...`, in
`openai.py`), served beside Gradio in the same process and port (see `door`)."""
