"""Settings come from the environment and `.env`; a bad value is one clear line."""

import pytest

from ollamastack.errors import SettingsError
from ollamastack.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("OLLAMA_HOST", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


def test_defaults():
    settings = Settings()
    assert settings.ollama_host == "http://localhost:11434"
    assert settings.model == "llama3.2"
    assert settings.temperature == 0.7
    assert settings.database_url == "sqlite:///data/ollamastack.sqlite"
    assert settings.max_message_chars == 4000
    assert settings.server_port == 7860


def test_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11500")
    monkeypatch.setenv("OLLAMASTACK_MODEL", "qwen3:8b")
    monkeypatch.setenv("OLLAMASTACK_TEMPERATURE", "0.2")
    monkeypatch.setenv("OLLAMASTACK_DATA_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("OLLAMASTACK_REQUEST_TIMEOUT", "45")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8080")
    settings = load_settings()
    assert settings.ollama_host == "http://gpu-box:11500"
    assert (settings.model, settings.temperature, settings.request_timeout) == ("qwen3:8b", 0.2, 45)
    assert settings.database_url == f"sqlite:///{tmp_path / 'store' / 'ollamastack.sqlite'}"
    assert (settings.server_name, settings.server_port) == ("0.0.0.0", 8080)


def test_dotenv_file(tmp_path):
    (tmp_path / ".env").write_text("OLLAMASTACK_MODEL=mistral\nOLLAMA_HOST=http://10.1.2.3:11434\n")
    settings = load_settings()
    assert (settings.model, settings.ollama_host) == ("mistral", "http://10.1.2.3:11434")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "OLLAMASTACK_TEMPERATURE",
            "3",
            "Invalid setting OLLAMASTACK_TEMPERATURE: Input should be "
            "less than or equal to 2 (got '3')",
        ),
        (
            "OLLAMASTACK_TEMPERATURE",
            "warm",
            "Invalid setting OLLAMASTACK_TEMPERATURE: Input should "
            "be a valid number, unable to parse string as a number (got 'warm')",
        ),
        (
            "OLLAMASTACK_MAX_TOOL_ROUNDS",
            "-1",
            "Invalid setting OLLAMASTACK_MAX_TOOL_ROUNDS: Input "
            "should be greater than or equal to 0 (got '-1')",
        ),
        (
            "GRADIO_SERVER_PORT",
            "http",
            "Invalid setting GRADIO_SERVER_PORT: Input should be a valid "
            "integer, unable to parse string as an integer (got 'http')",
        ),
        (
            "OLLAMASTACK_HISTORY_TOKENS",
            "9000",
            "OLLAMASTACK_HISTORY_TOKENS must be smaller than "
            "OLLAMASTACK_NUM_CTX (room is needed for the system prompt, the tools and the answer)",
        ),
        (
            "OLLAMASTACK_DATABASE_URL",
            "mysql://x",
            "OLLAMASTACK_DATABASE_URL must start with sqlite:/// or postgresql://",
        ),
    ],
)
def test_bad_value_is_one_clear_line(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == message
