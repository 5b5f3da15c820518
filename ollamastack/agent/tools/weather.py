"""The `weather` tool: Open-Meteo's geocoding and forecast APIs (or a stand-in at the
configured URLs), answered in one sentence; network trouble becomes an "Error:" line."""

from __future__ import annotations

import httpx
from langchain_core.tools import BaseTool, tool
from pydantic import BaseModel

from ollamastack.agent.tools.service_errors import FAILURES, service_error

CURRENT_FIELDS = (
    "temperature_2m,apparent_temperature,relative_humidity_2m,wind_speed_10m,weather_code"
)

WMO_CODES = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snowfall",
    73: "moderate snowfall",
    75: "heavy snowfall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}


class _Place(BaseModel):
    name: str
    latitude: float
    longitude: float
    country: str = ""
    admin1: str = ""


class _Geocoding(BaseModel):
    results: list[_Place] = []


class _Current(BaseModel):
    time: str = ""
    temperature_2m: float | None = None
    apparent_temperature: float | None = None
    relative_humidity_2m: float | None = None
    wind_speed_10m: float | None = None
    weather_code: int | None = None


class _Forecast(BaseModel):
    current: _Current
    current_units: dict[str, str] = {}


def make_weather_tool(geocoding_url: str, forecast_url: str, timeout: float) -> BaseTool:
    """The `weather` tool, asking Open-Meteo (or a stand-in at these URLs) with this timeout."""

    @tool("weather", parse_docstring=True)
    async def weather(location: str) -> str:
        """Get the current weather for a place: conditions, temperature, humidity and wind.

        Args:
            location: The city or place name only, for example "Paris" or "San Francisco"
                (without country or region).
        """
        name = location.strip()
        if not name or len(name) > 200:
            return "Error: give a place name of 1 to 200 characters, such as 'Paris'."
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                params = {"name": name, "count": 1, "language": "en", "format": "json"}
                response = await client.get(geocoding_url, params=params)
                places = _Geocoding.model_validate_json(response.raise_for_status().content)
                if not places.results:
                    return (
                        f"Error: no place called {name!r} was found. Check the spelling, "
                        "or give just the city name without the country."
                    )
                place = places.results[0]
                params = {
                    "latitude": place.latitude,
                    "longitude": place.longitude,
                    "current": CURRENT_FIELDS,
                    "timezone": "auto",
                }
                response = await client.get(forecast_url, params=params)
                forecast = _Forecast.model_validate_json(response.raise_for_status().content)
        except FAILURES as error:
            return service_error("the weather service", error, timeout)
        return _describe_weather(place, forecast)

    return weather


def _describe_weather(place: _Place, forecast: _Forecast) -> str:
    current, units = forecast.current, forecast.current_units
    names = (place.name, place.admin1, place.country)
    where = ", ".join(dict.fromkeys(name for name in names if name))  # "Berlin, Berlin" once
    when = f" at {current.time.replace('T', ' ')} local time" if current.time else ""
    parts = []
    if current.weather_code is not None:
        code = current.weather_code
        parts.append(WMO_CODES.get(code, f"weather code {code}").capitalize())
    if current.temperature_2m is not None:
        temperature = _measure(current.temperature_2m, units.get("temperature_2m", "°C"))
        if current.apparent_temperature is not None:
            feels = _measure(current.apparent_temperature, units.get("apparent_temperature", "°C"))
            temperature += f" (feels like {feels})"
        parts.append(temperature)
    if current.relative_humidity_2m is not None:
        humidity = _measure(current.relative_humidity_2m, units.get("relative_humidity_2m", "%"))
        parts.append(f"humidity {humidity}")
    if current.wind_speed_10m is not None:
        wind = _measure(current.wind_speed_10m, units.get("wind_speed_10m", "km/h"))
        parts.append(f"wind {wind}")
    return f"Current weather in {where}{when}: {', '.join(parts) or 'no data'}."


def _measure(value: float, unit: str) -> str:
    """
    >>> _measure(8.4, "°C"), _measure(81.0, "%"), _measure(14.2, "km/h")
    ('8.4°C', '81%', '14.2 km/h')
    """
    space = "" if unit == "%" or unit.startswith("°") else " "
    return f"{value:g}{space}{unit}"
