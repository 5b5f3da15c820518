"""Checks on what a client sends, shared by the core, the UI and the API."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import unicodedata
import urllib.parse
import uuid
from collections.abc import Collection

from ollamastack.errors import InvalidInput

# Ollama's model-name grammar (types/model/name.go): `[host/][namespace/]model[:tag]`.
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
_MODEL_OR_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
DEFAULT_REGISTRIES = frozenset({"registry.ollama.ai", "hf.co", "huggingface.co"})
# Shown as nothing, though not format characters (Cf): Hangul fillers, the combining
# grapheme joiner, variation selectors.
_FILLERS = frozenset("\u034f\u115f\u1160\u3164\uffa0").union(map(chr, range(0xFE00, 0xFE10)))
_BLANK_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp"})  # format characters and spaces


def clean_text(value: object, *, what: str, limit: int, allow_empty: bool = False) -> str:
    """Refuse non-strings, NUL bytes, lone surrogates, empty or over-long text.

    Text of only invisible characters (zero-width spaces and joiners, the BOM, other format
    and space characters) is empty too: a model would get a message no person can see.

    >>> clean_text("  hi ", what="message", limit=10)
    'hi'
    >>> clean_text("x" * 11, what="message", limit=10)
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The message is 11 characters long; the limit is 10.
    >>> clean_text("a\\x00b", what="message", limit=10)
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The message contains a NUL character, which is not allowed.
    >>> clean_text("\\u200b\\u200c\\u200d\\u2060\\ufeff\\u3000", what="message", limit=10)
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The message is empty.
    >>> clean_text("\\u200b", what="system prompt", limit=10, allow_empty=True)
    ''
    >>> clean_text("\\u200bhi", what="message", limit=10)  # visible text is kept as sent
    '\\u200bhi'
    """
    if not isinstance(value, str):
        raise InvalidInput(f"The {what} must be text.")
    text = value.strip()
    if len(text) <= limit and is_blank(text):  # bounded: a huge text is refused as too long
        if allow_empty:
            return ""
        raise InvalidInput(f"The {what} is empty.")
    if len(text) > limit:
        raise InvalidInput(f"The {what} is {len(text)} characters long; the limit is {limit}.")
    if "\x00" in text:
        raise InvalidInput(f"The {what} contains a NUL character, which is not allowed.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"The {what} is not valid Unicode (lone surrogate).") from None
    return text


TITLE_LIMIT = 200  # characters of a conversation's title


def title(value: object) -> str:
    """A conversation's title: one line of visible text, no control characters.

    >>> title("  Trip plans ")
    'Trip plans'
    >>> title("a\\nb")
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The title may not contain line breaks or control characters.
    """
    text = clean_text(value, what="title", limit=TITLE_LIMIT)
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise InvalidInput("The title may not contain line breaks or control characters.")
    return text


def is_blank(text: str) -> bool:
    """Whether `text` shows nothing: only whitespace, format and space characters.

    >>> is_blank(""), is_blank(" \\t\\u200b\\u2028\\u00a0\\u180e\\u3164"), is_blank("\\u200ba")
    (True, True, False)
    """
    return all(
        char.isspace() or char in _FILLERS or unicodedata.category(char) in _BLANK_CATEGORIES
        for char in text
    )


def session_id(value: object) -> str:
    """Accept only a canonical UUID4, the form the server hands out.

    >>> session_id("1b4e28ba-2fa1-41d2-883f-0016d3cca427")
    '1b4e28ba-2fa1-41d2-883f-0016d3cca427'
    >>> session_id("../../etc/passwd")
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The session id must be a UUID4 as returned by the server.
    """
    text = value if isinstance(value, str) else ""
    try:
        parsed = uuid.UUID(text) if len(text) == 36 else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 4 or str(parsed) != text.lower():
        raise InvalidInput("The session id must be a UUID4 as returned by the server.")
    return str(parsed)


def model_name(value: object, *, registries: Collection[str] = DEFAULT_REGISTRIES) -> str:
    """A name by Ollama's own grammar, `[host/][namespace/]model[:tag]`, whose registry host,
    if it names one, is in `registries` (the callers pass `settings.registries`).

    Parts are letters, digits, `_`, `-` and `.` (none in a namespace), starting with a letter,
    digit or `_`, at most 80 long. The host is the first of three parts, or the first of two
    when it looks like a host (a dot or a colon: a domain, an IP address, a port): it must be
    allowed, or a pull would make Ollama fetch from any address a client names
    (`169.254.169.254/latest/meta-data`). No host means Ollama's own registry.

    Case is kept as sent: Ollama allows upper case and matches names ignoring it (`Llama3.2`
    is `llama3.2`; pulling or deleting finds the installed one), and hf.co repositories and
    quantisation tags are mixed-case. Hosts are compared ignoring case.

    >>> model_name("llama3.2:3b-instruct-q4_K_M")
    'llama3.2:3b-instruct-q4_K_M'
    >>> model_name("hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M")
    'hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M'
    >>> model_name("HF.co/unsloth/gemma-3-1b-it-GGUF"), model_name("library/Llama3.2")
    ('HF.co/unsloth/gemma-3-1b-it-GGUF', 'library/Llama3.2')
    >>> model_name("box.lan:5000/team/m:v1", registries={"box.lan:5000"})
    'box.lan:5000/team/m:v1'
    >>> model_name("169.254.169.254/latest/meta-data")
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The model registry '169.254.169.254' is not allowed here; \
a model name may start with hf.co/, huggingface.co/ or registry.ollama.ai/, or name no registry.
    >>> model_name("evil.example/m", registries=())
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The model registry 'evil.example' is not allowed here; \
a model name may not name a registry.
    >>> model_name("../../etc/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: '../../etc/passwd' is not a valid model name ...
    >>> for bad in ["hf.co/m", "a/b/c/d", "m:", "-m", "m:t:t", "m" * 81, "m:" + "t" * 81]:
    ...     try:
    ...         model_name(bad)
    ...     except InvalidInput:
    ...         pass
    ...     else:
    ...         print("accepted", bad)
    """
    text = value.strip() if isinstance(value, str) else ""
    tagged = text.rfind(":") > text.rfind("/")
    path, _, tag = text.rpartition(":") if tagged else (text, "", "")
    parts = path.split("/")
    if len(parts) == 3 or (len(parts) == 2 and any(c in parts[0] for c in ".:")):
        _check_registry(parts[0], registries)
    grammar = (_HOST, _NAMESPACE, _MODEL_OR_TAG)[-len(parts):] if len(parts) <= 3 else ()
    if (
        not grammar
        or not all(rule.fullmatch(part) for rule, part in zip(grammar, parts, strict=True))
        or (tagged and not _MODEL_OR_TAG.fullmatch(tag))
        or ".." in text
    ):
        shown = text[:60] if text else value
        raise InvalidInput(
            f"{shown!r} is not a valid model name "
            "(letters, digits, '.', '-', '_', '/' and one ':tag')."
        )
    return text


def _check_registry(host: str, registries: Collection[str]) -> None:
    """Refuse a registry host (one Ollama's grammar allows) that is not in `registries`."""
    allowed = sorted({name.lower() for name in registries})
    if not _HOST.fullmatch(host) or host.lower() in allowed:
        return  # a malformed host is refused by the grammar, with its own message
    names = [f"{name}/" for name in allowed]
    listed = ", ".join(names[:-1]) + " or " * (len(names) > 1) + "".join(names[-1:])
    where = f"may start with {listed}, or name no registry" if names else "may not name a registry"
    raise InvalidInput(
        f"The model registry {host[:60]!r} is not allowed here; a model name {where}."
    )


def temperature(value: object) -> float:
    """A finite number from 0 to 2.

    >>> temperature("0.5")
    0.5
    >>> temperature(float("nan"))
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The temperature must be a number from 0 to 2.
    >>> temperature(10**400)  # JSON's `1` and 400 zeros: an int no float can hold
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The temperature must be a number from 0 to 2.
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float's range
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or not 0 <= number <= 2:
        raise InvalidInput("The temperature must be a number from 0 to 2.")
    return number


def normalize_ollama_host(value: str) -> str:
    """Turn an `OLLAMA_HOST` value into a base URL, as the Ollama CLI does.

    >>> normalize_ollama_host("localhost:11434")
    'http://localhost:11434'
    >>> normalize_ollama_host("0.0.0.0")
    'http://127.0.0.1:11434'
    >>> normalize_ollama_host("https://ollama.example.com")
    'https://ollama.example.com:443'
    >>> normalize_ollama_host("http://ollama:11434/")
    'http://ollama:11434'
    >>> normalize_ollama_host(":8080")
    'http://127.0.0.1:8080'
    >>> normalize_ollama_host("[::1]:11434")
    'http://[::1]:11434'
    >>> normalize_ollama_host("http://box:11434/proxy/")
    'http://box:11434/proxy'
    """
    url = parse_host(value.strip()).rstrip("/")
    return url.replace("://0.0.0.0:", "://127.0.0.1:")


def parse_host(host: str) -> str:
    """`scheme://host:port[/path]` from what `OLLAMA_HOST` may hold, by the rules of the
    `ollama` client's own parser: no scheme means http on 11434; http and https without a
    port mean 80 and 443; no host means 127.0.0.1; IPv6 keeps its brackets.

    >>> parse_host(""), parse_host("box"), parse_host("http://box"), parse_host("https://box")
    ('http://127.0.0.1:11434', 'http://box:11434', 'http://box:80', 'https://box:443')
    >>> parse_host("http://[::1]:8080/api/"), parse_host("example.com:56789/path")
    ('http://[::1]:8080/api', 'http://example.com:56789/path')
    """
    scheme, _, hostport = host.partition("://")
    port = 11434
    if not hostport:
        scheme, hostport = "http", host
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    split = urllib.parse.urlsplit(f"{scheme}://{hostport}")
    name = split.hostname or "127.0.0.1"
    port = split.port or port  # ValueError for a port that is not a number
    with contextlib.suppress(ValueError):
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    if path := split.path.strip("/"):
        return f"{scheme}://{name}:{port}/{path}"
    return f"{scheme}://{name}:{port}"


def split_ollama_hosts(value: str) -> list[str]:
    """`OLLAMA_HOST` as a comma-separated list of instances: each normalised, no repeats.

    >>> split_ollama_hosts("gpu0:11434, http://gpu1:11434/")
    ['http://gpu0:11434', 'http://gpu1:11434']
    >>> split_ollama_hosts("localhost,http://localhost:11434,")
    ['http://localhost:11434']
    >>> split_ollama_hosts(" ")
    ['http://127.0.0.1:11434']
    """
    hosts = [normalize_ollama_host(part) for part in value.split(",") if part.strip()]
    return list(dict.fromkeys(hosts)) or [normalize_ollama_host("")]
