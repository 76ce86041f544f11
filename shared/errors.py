"""The one exception tree of the triage package.

    TriageError                      base of everything raised on purpose here
    ├── ConfigError                  a setting is missing or malformed (names the setting)
    ├── SnapshotError                a failure snapshot cannot be read (names the file)
    ├── SecretError                  a secret cannot be had (names the secret, never its value)
    ├── RequestError                 an inbound webhook body or queue message is invalid (carries
    │                                the HTTP status to answer: 400/401/413/415)
    ├── StoreError                   the decision store failed
    │   ├── StoreUnavailable         the store cannot be reached (names the setting to check)
    │   │   └── StoreMissing         a read found no store there (names it; nothing was created)
    │   ├── DecisionNotFound         no decision is stored under that key (feedback, lookups)
    │   └── QueueError               the triage request queue cannot be written (names the setting)
    └── ServiceError                 a remote service answered with an error or not at all
        ├── DatabricksError          carries status, Databricks' error_code, method and URL
        │   ├── DatabricksAuthError      401/403: the token or identity was refused
        │   ├── DatabricksNotFound       404 / RESOURCE_DOES_NOT_EXIST
        │   ├── DatabricksConflict       a stale latest_repair_id or an invalid state for the call
        │   ├── ResizeRefused            a resized rerun cannot be sent as planned: the owner is told
        │   │   └── RunAsRefused         the workspace will not let the app run as the job's identity
        │   └── DatabricksUnavailable    429/5xx/connection errors outlived the retry deadline
        ├── LLMError                 the model could not give a usable answer
        └── NotifyError              an email could not be sent
            └── ChannelError         a PagerDuty / Teams / Slack / webhook POST failed (carries
                                     the channel, the status and whether a retry may help; never the URL)

Every ServiceError carries `status` (HTTP status or None), `error_code` (the service's own
code or None), `method` and `url` (never with credentials in it). Raise with `from`.
"""

from __future__ import annotations

__all__ = [
    "TriageError",
    "ConfigError",
    "SnapshotError",
    "SecretError",
    "StoreError",
    "StoreUnavailable",
    "StoreMissing",
    "DecisionNotFound",
    "QueueError",
    "RequestError",
    "ServiceError",
    "DatabricksError",
    "DatabricksAuthError",
    "DatabricksNotFound",
    "DatabricksConflict",
    "ResizeRefused",
    "RunAsRefused",
    "DatabricksUnavailable",
    "LLMError",
    "NotifyError",
    "ChannelError",
]


class TriageError(Exception):
    """Base class of the errors this package raises on purpose."""


class ConfigError(TriageError):
    """A setting is missing or malformed. The message names the setting."""


class SnapshotError(TriageError):
    """A failure snapshot cannot be read. The message names the file and what is wrong."""


class SecretError(TriageError):
    """A secret is missing or cannot be read. The message names the secret, never its value."""


class StoreError(TriageError):
    """The decision store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached. The message names the setting to check."""


class StoreMissing(StoreUnavailable):
    """A read found no decision store where the settings point (nothing was created)."""


class DecisionNotFound(StoreError):
    """No decision is stored under the given key. The message names the key."""


class QueueError(StoreError):
    """The triage request queue cannot be written. The message names the setting to check."""


class RequestError(TriageError):
    """An inbound request (a webhook body, a queue message) is invalid. ``status`` is the HTTP
    status to answer with (400 bad shape, 401 credentials, 413 too large, 415 content type);
    the message says what is wrong and never echoes a credential."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ServiceError(TriageError):
    """A remote service answered with an error, or did not answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.method = method
        self.url = url

    def __str__(self) -> str:
        parts = [self.message]
        if self.error_code:
            parts.append(f"[{self.error_code}]")
        if self.status is not None:
            parts.append(f"(HTTP {self.status})")
        if self.method and self.url:
            parts.append(f"on {self.method} {self.url}")
        return " ".join(parts)


class DatabricksError(ServiceError):
    """The Databricks REST API refused a call."""


class DatabricksAuthError(DatabricksError):
    """401/403: the workspace refused the token or identity."""


class DatabricksNotFound(DatabricksError):
    """404 or RESOURCE_DOES_NOT_EXIST."""


class DatabricksConflict(DatabricksError):
    """The call conflicts with the run's state (e.g. a stale latest_repair_id)."""


class ResizeRefused(DatabricksError):
    """A resized rerun cannot be carried out as planned (the job changed since the failure, a
    resize of it is still being put back, the workspace refused the job update): nothing more is
    sent; the owner gets the recommendation instead."""


class RunAsRefused(ResizeRefused):
    """The workspace refused a rerun as the job's identity (the app may not act as it): the
    rerun is not sent as anyone else; the owner gets the recommendation instead."""


class DatabricksUnavailable(DatabricksError):
    """429, 5xx or connection errors outlived the retry deadline."""


class LLMError(ServiceError):
    """The model could not give a usable answer."""


class NotifyError(ServiceError):
    """An email could not be sent."""


class ChannelError(NotifyError):
    """A chat, paging or webhook channel refused a message or did not answer. ``channel`` names
    it (``pagerduty``, ``teams``, ``slack``, ``webhook``); ``retryable`` says whether sending again
    later may help (429, 5xx, no answer) or not (400: the message itself is wrong; 401/403/404:
    the URL or key is wrong). ``url`` is never set: these URLs are credentials."""

    def __init__(self, message: str, *, channel: str, status: int | None = None, error_code: str | None = None,
                 retryable: bool = True) -> None:
        super().__init__(message, status=status, error_code=error_code, method="POST")
        self.channel = channel
        self.retryable = retryable
        self.attempts = 1
