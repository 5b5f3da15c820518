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
from dataclasses import dataclass, field
from typing import Any

from tests.support.json_stand_in import JsonStandIn

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
class WeatherServer(JsonStandIn):
    places: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    delay: float = 0.0
    status: int = 200
    body: bytes | None = None

    def __post_init__(self) -> None:
        self._serve()

    @property
    def geocoding_url(self) -> str:
        return self.url + GEOCODING_PATH

    @property
    def forecast_url(self) -> str:
        return self.url + FORECAST_PATH

    def add_place(self, result: dict[str, Any], current: dict[str, Any]) -> None:
        """Make `result["name"]` findable, with `current` as its forecast's `current` block."""
        self.places[result["name"].lower()] = (result, current)

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

