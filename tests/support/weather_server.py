"""A scripted stand-in for Open-Meteo's geocoding and forecast endpoints on a loopback port.

    with WeatherServer() as server:
        server.add_place(PARIS, current={...})   # a geocoding result and its `current` block
        make_weather_tool(server.geocoding_url, server.forecast_url, timeout=5)
        server.requests                          # [RecordedRequest(path, params), ...]

`delay` holds every answer back (until `close()`), `status` answers every request with that
HTTP status, and `body` replaces every answer's body (for malformed JSON).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

GEOCODING_PATH = "/v1/search"
FORECAST_PATH = "/v1/forecast"

CURRENT_UNITS = {
    "time": "iso8601",
    "interval": "seconds",
    "temperature_2m": "°C",
    "apparent_temperature": "°C",
    "relative_humidity_2m": "%",
    "wind_speed_10m": "km/h",
    "weather_code": "wmo code",
}


@dataclass
class RecordedRequest:
    path: str
    params: dict[str, str]


@dataclass
class WeatherServer:
    places: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    delay: float = 0.0
    status: int = 200
    body: bytes | None = None

    def __post_init__(self) -> None:
        self._released = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.stand_in = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def geocoding_url(self) -> str:
        return self.url + GEOCODING_PATH

    @property
    def forecast_url(self) -> str:
        return self.url + FORECAST_PATH

    def add_place(self, result: dict[str, Any], current: dict[str, Any]) -> None:
        """Make `result["name"]` findable, with `current` as its forecast's `current` block."""
        self.places[result["name"].lower()] = (result, current)

    def start(self) -> WeatherServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._released.set()  # let delayed answers go, so their threads finish
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the request threads
        self._thread.join()

    def __enter__(self) -> WeatherServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        self.requests.append(RecordedRequest(path, params))
        if self.delay:
            self._released.wait(self.delay)
        if self.status != 200 or self.body is not None:
            return self.status, self.body or b'{"error": true, "reason": "scripted failure"}'
        if path == GEOCODING_PATH:
            found = self.places.get(params.get("name", "").lower())
            payload: dict[str, Any] = {"generationtime_ms": 0.5}
            if found:
                payload["results"] = [found[0]]
            return 200, json.dumps(payload).encode()
        if path == FORECAST_PATH:
            coordinates = (float(params["latitude"]), float(params["longitude"]))
            for result, current in self.places.values():
                if (result["latitude"], result["longitude"]) == coordinates:
                    payload = {
                        "latitude": result["latitude"],
                        "longitude": result["longitude"],
                        "timezone": result.get("timezone", "GMT"),
                        "current_units": CURRENT_UNITS,
                        "current": current,
                    }
                    return 200, json.dumps(payload).encode()
            return 400, b'{"error": true, "reason": "no forecast scripted for these coordinates"}'
        return 404, b'{"error": true, "reason": "not found"}'


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close() waits for the request threads
    stand_in: WeatherServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        status, body = self.server.stand_in.answer(url.path, dict(parse_qsl(url.query)))
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up waiting (a timeout test)
            pass

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass
