"""One small exception tree with stable codes, so scripts and docs can rely on them.

Every error a user can cause carries where it comes from (spec file, pipeline, object)
and a hint for the fix; ``str()`` renders all of it on one or two lines, masked.
"""

from __future__ import annotations

from v10r.redact import mask_text


class V10rError(Exception):
    """Base of every error v10r raises on purpose; never shown with a traceback."""

    code = "V10R"
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        pipeline: str | None = None,
        file: str | None = None,
        obj: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.pipeline = pipeline
        self.file = file
        self.obj = obj

    def __str__(self) -> str:
        """The whole error, with any credential in it masked (it may quote a DSN or URL)."""
        where = [part for part in (self.file, self._pipeline_label(), self.obj) if part]
        text = f"{': '.join(where)}: {self.message}" if where else self.message
        return mask_text(f"{text}\n  hint: {self.hint}" if self.hint else text)

    def _pipeline_label(self) -> str | None:
        return f"pipeline {self.pipeline!r}" if self.pipeline else None


class SpecError(V10rError):
    """A spec that does not load or validate."""

    code = "SPEC"


class EnvError(SpecError):
    """A `${VAR}` reference to an unset environment variable."""

    code = "ENV"


class PlanError(V10rError):
    """The live database cannot be made to match the specs (missing table, pgvector...)."""

    code = "PLAN"


class ConnectionFailed(V10rError):
    """A service (database, broker, provider) cannot be reached."""

    code = "CONNECT"


class ProviderError(V10rError):
    """An embedding provider refused or failed a request."""

    code = "PROVIDER"

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None,
                 **context: str | None) -> None:
        super().__init__(message, **context)
        self.retryable = retryable
        self.retry_after = retry_after


class ProviderAuthError(ProviderError):
    """The provider refused the credentials (401/403): no input can succeed until they
    are fixed, so the batch stops at once (the runtime pauses, nothing is dead-lettered)."""

    code = "PROVIDER_AUTH"


class ProviderUnavailable(ProviderError):
    """The provider is down, overloaded or rate limiting (connection error, timeout, 429,
    5xx): a failure of the service, not of the input, so it is retried, never bisected."""

    code = "PROVIDER_UNAVAILABLE"

    def __init__(self, message: str, *, retry_after: float | None = None,
                 **context: str | None) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after, **context)


class QueueError(V10rError):
    """A queue adapter failed (broker down, bad URL...)."""

    code = "QUEUE"
