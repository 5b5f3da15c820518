"""Errors shown to a person: each message says what went wrong and what to do."""


class OllamaStackError(Exception):
    """Base of every error whose message is meant for the user."""


class SettingsError(OllamaStackError):
    """A setting has a value that is not allowed."""


class InvalidInput(OllamaStackError):
    """A request carried a value we refuse (message, session id, model, temperature...)."""


class OllamaUnavailable(OllamaStackError):
    """Ollama could not be reached."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"Ollama is not reachable at {url}. Start it with `ollama serve` "
            "(or `docker compose up ollama`), or point OLLAMA_HOST at a running server."
        )


class DatabaseUnavailable(OllamaStackError):
    """The conversation database (PostgreSQL) could not be reached."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(
            f"The conversation database at {where} is not reachable ({reason}). Start it "
            "(`docker compose --profile scale up -d postgres`) or fix OLLAMASTACK_DATABASE_URL."
        )


class ModelNotFound(OllamaStackError):
    """The requested model is not installed in Ollama."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"Model '{model}' is not installed in Ollama. Pull it with `ollama pull {model}` "
            "or from the Models tab."
        )


class OllamaError(OllamaStackError):
    """Ollama answered with an error (runner crash, out of memory, bad request...).

    >>> str(OllamaError("x" * 1_500_000))[-40:]
    'xxxxxxxxx… (1,500,000 characters in all)'
    """

    SHOWN_CHARS = 1000  # an error of megabytes is cut, not sent whole to the client

    def __init__(self, message: str, status_code: int = -1) -> None:
        self.status_code = status_code
        if len(message) > self.SHOWN_CHARS:
            message = f"{message[:self.SHOWN_CHARS]}… ({len(message):,} characters in all)"
        super().__init__(f"Ollama reported an error: {message}")


class OllamaTimeout(OllamaStackError):
    """Ollama sent nothing for longer than the request timeout."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(
            f"Ollama at {url} sent nothing for {seconds:g} s (the model may still be loading). "
            "Try again, or raise OLLAMASTACK_REQUEST_TIMEOUT."
        )


class OllamaConnectionLost(OllamaStackError):
    """The connection to Ollama broke while it was answering."""

    def __init__(self, url: str) -> None:
        super().__init__(
            f"The connection to Ollama at {url} was lost in the middle of the answer "
            "(did the server stop or crash?). Try again."
        )


class RateLimited(OllamaStackError):
    """A user sent more messages than the rate limit allows."""

    def __init__(self, limit: int, window: float, retry_after: int) -> None:
        self.retry_after = retry_after
        per = "a minute" if window == 60 else f"per {window:g} s"
        super().__init__(
            f"Too many messages: the limit is {limit} {per}. Try again in {retry_after} s."
        )


class NotAllowed(OllamaStackError):
    """This user may not do that here (e.g. pull a model without being an administrator)."""


class SessionNotFound(OllamaStackError):
    """No conversation with that id exists for this user."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"No conversation with id {session_id} was found.")


class EmbeddedError(OllamaStackError):
    """The embedded model is missing, failed to load, or refused a request."""


class EngineMismatch(OllamaStackError):
    """An installed library is not the version whose private parts the app relies on."""


class SessionBusy(OllamaStackError):
    """The conversation is still answering an earlier message."""

    def __init__(self) -> None:
        super().__init__("This conversation is still answering: wait for it, or press Stop.")


class TooManyTurns(OllamaStackError):
    """A user already has as many answers streaming as one user may."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You already have {limit} answers in progress, the most one user may have at once. "
            "Wait for one to finish, or stop one."
        )


class AwaitingApproval(SessionBusy):
    """The conversation waits for the user to approve or deny a tool call."""

    def __init__(self, name: str) -> None:
        Exception.__init__(  # SessionBusy's own message is fixed
            self, f"This conversation is waiting for your approval to run the {name} tool: "
            "approve or deny it first.",
        )


class NothingToApprove(InvalidInput):
    """An approval was sent for a conversation with no tool call waiting."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"Nothing in conversation {session_id} is waiting for approval.")


class AttachmentRefused(InvalidInput):
    """An attached file was refused (type, size, damage, limits): the message says which file
    and why, and nothing of the message was stored."""

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(f"{name or 'The file'} was not attached: {reason}")


class NeedsVision(InvalidInput):
    """Images were attached for a model that cannot see them."""

    def __init__(self, model: str, vision_model: str = "") -> None:
        self.model, self.vision_model = model, vision_model
        hint = (
            f" Choose a model that can, such as {vision_model}." if vision_model
            else " No installed model can read images: pull one (llava, gemma3, qwen2.5vl)."
        )
        super().__init__(f"{model} cannot read images, so nothing was sent.{hint}")
