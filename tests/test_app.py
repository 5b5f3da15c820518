"""`python app.py`: a bad setting, or settings the app cannot serve together, stop start-up
with one clear line; --share turns sharing on; once serving, the core loads in the background
and start-up's objects are frozen."""

import gc
import os
import subprocess
import sys
from pathlib import Path

from ollamastack.web.app import preload_core

ROOT = Path(__file__).resolve().parent.parent


def run_app(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=60,
    )


def test_a_bad_setting_stops_start_up_with_one_line(tmp_path: Path):
    done = run_app(env={"OLLAMASTACK_TEMPERATURE": "5"}, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "Invalid setting OLLAMASTACK_TEMPERATURE: Input should be less than or equal to 2 "
        "(got '5')\n"
    )


def test_mcp_with_login_stops_start_up_with_one_line(tmp_path: Path):
    """Gradio's MCP server runs each tool without the caller's login: every call would fail
    (tests/test_logins.py has `launch` refusing it too)."""
    done = run_app(env={"OLLAMASTACK_MCP": "true", "OLLAMASTACK_AUTH": "ann:pw"}, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "OLLAMASTACK_MCP cannot be used with OLLAMASTACK_AUTH: Gradio's MCP server runs tools "
        "without the caller's login, so every tool call would be refused. Turn one of them "
        "off.\n"
    )


def test_help_names_the_share_flag(tmp_path: Path):
    done = run_app("--help", env={}, cwd=tmp_path)

    assert done.returncode == 0
    assert "--share" in done.stdout and "share link" in done.stdout


def test_preloading_the_core_freezes_what_start_up_made():
    gc.unfreeze()
    preload_core()
    assert "ollamastack.agent.service" in sys.modules
    assert gc.get_freeze_count() > 100_000  # modules, classes, configs: never rescanned
