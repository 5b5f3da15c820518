"""Where the app's CPU goes: a py-spy raw profile (collapsed stacks) summarised by layer.

Samples of the main thread (imports and building the page) are left out: the server runs in
other threads, so what remains is serving; so are imports on first use, counted apart. Each
sample is charged to its deepest frame outside the standard library (so `json.dumps` called by
Gradio is Gradio's), and the layer is read from that frame's file path.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

LAYERS = [  # (layer, path fragments), first match wins
    ("SQLite", ("/aiosqlite/", "/sqlite3/", "/langgraph/checkpoint/sqlite/",
                "/langgraph/store/sqlite/", "/ollamastack/storage/sqlite.py")),
    ("ollamastack", ("/ollamastack/",)),
    ("LangGraph", ("/langgraph/",)),
    ("LangChain", ("/langchain_core/", "/langchain/", "/langchain_ollama/", "/langsmith/")),
    ("Gradio", ("/gradio/", "/gradio_client/", "/safehttpx/")),
    ("ollama+httpx", ("/ollama/", "/httpx/", "/httpcore/", "/anyio/")),
    ("uvicorn+Starlette", ("/uvicorn/", "/starlette/", "/fastapi/", "/sse_starlette/")),
    ("h11 (HTTP parsing)", ("/h11/",)),
    ("asyncio", ("/asyncio/",)),
    ("pydantic", ("/pydantic/", "/pydantic_core/")),
]
FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*?):(?P<line>\d+)\)$")


@dataclass(frozen=True)
class Frame:
    function: str
    path: str

    @property
    def stdlib(self) -> bool:
        return "site-packages" not in self.path and "/ollamastack/" not in self.path

    @property
    def layer(self) -> str:
        if self.function == "asyncio_run" and "/uvicorn/" in self.path:
            return "asyncio event loop"  # the thread's root: the loop's own work beneath it
        for layer, fragments in LAYERS:
            if any(f in self.path for f in fragments):
                return layer
        if "site-packages/" in self.path:
            return self.path.split("site-packages/")[1].split("/")[0].removesuffix(".py")
        return "stdlib/other"

    @property
    def name(self) -> str:
        """
        >>> Frame("_worker", "/usr/lib/python3.11/concurrent/futures/thread.py").name
        'concurrent.futures.thread._worker'
        >>> Frame("run", "/x/site-packages/gradio/blocks.py").name
        'gradio.blocks.run'
        """
        path = re.split(r"site-packages/|/lib/python3\.\d+/", self.path)[-1]
        module = path.removesuffix(".py").replace("/", ".")
        return f"{module.split('ollamastack.')[-1] if 'ollamastack' in module else module}" \
               f".{self.function}"


def parse_frame(text: str) -> Frame:
    """
    >>> parse_frame("diff (gradio/utils.py:1234)").function
    'diff'
    >>> parse_frame("<module> (app.py:1)").path
    'app.py'
    """
    match = FRAME.match(text.strip())
    return Frame(match["function"], match["path"]) if match else Frame(text.strip(), "")


@dataclass
class Summary:
    samples: int
    imports: int  # samples left out: modules imported on first use while serving
    layers: list[tuple[str, float]]  # share of samples, by owning layer
    hot: list[tuple[str, float]]  # functions owning the most samples

    def line(self) -> str:
        layers = ", ".join(f"{layer} {share:.0%}" for layer, share in self.layers[:6])
        hot = ", ".join(f"`{name}` {share:.0%}" for name, share in self.hot[:6])
        return (f"{self.samples} samples (and {self.imports} of first-use imports, left out). "
                f"By layer: {layers}. Hottest: {hot}.")


def summarise(path: Path) -> Summary:
    layers: Counter[str] = Counter()
    owners: Counter[str] = Counter()
    total = imports = 0
    for raw in path.read_text().splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [parse_frame(f) for f in stack.split(";")]
        if frames[0].function == "<module>":  # the main thread: start-up, not serving
            continue
        if any(f.function == "_find_and_load" for f in frames):  # a first use's import
            imports += count
            continue
        owner = next((f for f in reversed(frames) if not f.stdlib), frames[-1])
        layers[owner.layer] += count
        owners[owner.name] += count
        total += count
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    return Summary(
        total, imports,
        [(layer, share(n)) for layer, n in layers.most_common()],
        [(name, share(n)) for name, n in owners.most_common(10)],
    )
