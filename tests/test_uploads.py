"""Gradio's upload route on the launched app, over HTTP: files larger than
OLLAMASTACK_MAX_UPLOAD_MB are refused and leave nothing behind; what is accepted leaves
Gradio's cache after OLLAMASTACK_UPLOAD_RETENTION, and all of it when the app stops."""

from __future__ import annotations

from pathlib import Path

import httpx
from gradio.utils import get_upload_folder

from tests.support.api_helpers import serve
from tests.support.ollama_server import FakeOllama

MB = 2**20


def files_in(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def upload(url: str, size: int) -> httpx.Response:
    return httpx.post(f"{url}/gradio_api/upload", timeout=60,
                      files={"files": ("notes.txt", b"x" * size, "text/plain")})


def test_an_upload_over_the_limit_is_refused_and_nothing_is_kept(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    cache = Path(get_upload_folder())
    with serve(ollama_server, tmp_path, max_upload_mb=1, upload_retention=600) as app:
        before = files_in(cache)
        refused = upload(app.url, int(1.5 * MB))
        assert (refused.status_code, refused.text) == (
            413, f"File size exceeded maximum allowed size of {MB} bytes.")
        assert files_in(cache) == before

        accepted = upload(app.url, MB // 2)
        assert accepted.status_code == 200, accepted.text
        [kept] = map(Path, accepted.json())
        assert (kept.name, kept.stat().st_size) == ("notes.txt", MB // 2)
        assert app.app.blocks.delete_cache == (600, 600)  # swept every 600 s, kept 600 s
    assert not kept.exists()  # the app stopped: its cache is emptied
