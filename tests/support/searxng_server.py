"""A scripted stand-in for SearXNG's search endpoint (`/search?q=...&format=json`) on a loopback
port, answering in its JSON format.

    with SearxngServer() as server:
        server.results["paris museums"] = [result("Louvre", "https://www.louvre.fr", "...")]
        make_web_search_tool(server.url, timeout=5, limit=8000)
        server.requests                  # [{"q": ..., "format": "json", ...}, ...]

As a real instance whose settings leave `json` out of `search.formats`, a request for another
format gets HTTP 403. `delay` holds every answer back (until `close()`), `status` answers
every request with that HTTP status, and `body` replaces every answer's body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.support.json_stand_in import JsonStandIn


def result(title: str, url: str, content: str, engine: str = "duckduckgo") -> dict[str, Any]:
    """One result as SearXNG's JSON lists it."""
    return {"url": url, "title": title, "content": content, "engine": engine,
            "engines": [engine], "positions": [1], "score": 1.0, "category": "general",
            "parsed_url": ["https", url.split("/")[2] if "//" in url else "", "/", "", "", ""]}


@dataclass
class SearxngServer(JsonStandIn):
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0
    status: int = 200
    body: bytes | None = None

    def __post_init__(self) -> None:
        self._serve()

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        self.requests.append(params)
        if self.delay:
            self._released.wait(self.delay)
        if self.status != 200 or self.body is not None:
            return self.status, self.body or b"Internal Server Error"
        if path != "/search":
            return 404, b"Not Found"
        if params.get("format") != "json":
            return 403, b"Forbidden"
        query = params.get("q", "")
        payload = {"query": query, "number_of_results": 0,
                   "results": self.results.get(query, []), "answers": [], "corrections": [],
                   "infoboxes": [], "suggestions": [], "unresponsive_engines": []}
        return 200, json.dumps(payload).encode()

