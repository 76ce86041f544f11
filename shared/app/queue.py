"""The triage request queue (Azure Queue Storage): what the webhook and the sweep write to.

    queue = TriageQueue.from_settings(settings)     # AzureWebJobsStorage, queue TRIAGE_QUEUE_NAME
    queue.send(request)                             # -> the message id; QueueError on failure

The queue lives in the Functions host's own storage (``AzureWebJobsStorage``), because that is
the connection the queue trigger listens on: a connection string (``UseDevelopmentStorage=true``
for Azurite), or identity-based ``AzureWebJobsStorage__queueServiceUri`` /
``AzureWebJobsStorage__accountName`` with ``DefaultAzureCredential`` (the app's managed identity;
``AzureWebJobsStorage__clientId`` picks a user-assigned one).

Messages are JSON, base64-encoded as text: the encoding ``host.json`` declares
(``extensions.queues.messageEncoding = base64``), so the trigger decodes what we write. A queue
that does not exist yet is created on the first send that finds it missing (no extra round trip
on the normal path). ``azure-storage-queue`` is imported when the first queue is built.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Mapping

from shared.errors import ConfigError, QueueError

if TYPE_CHECKING:  # pragma: no cover
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient

    from shared.config import Settings
    from shared.app.messages import TriageRequest

__all__ = ["TriageQueue", "MESSAGE_ENCODING", "DEFAULT_CLIENT_OPTIONS", "queue_settings"]

log = logging.getLogger(__name__)

MESSAGE_ENCODING = "base64"   # must match host.json extensions.queues.messageEncoding
# The webhook should answer in milliseconds: a short, bounded retry (two more attempts, about
# half a second apart; the Storage SDK's own default waits 15 s and more); the sweep is the
# safety net for a delivery that still fails.
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_s": 0.5,
    "connection_timeout": 5,
    "read_timeout": 10,
}
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _QUEUE_NAME.fullmatch(name):
        raise ValueError(f"queue name {name!r} is not valid: 3-63 lower-case letters, digits and single "
                         "hyphens, starting and ending with a letter or digit (TRIAGE_QUEUE_NAME)")
    return name


def queue_settings(settings: "Settings") -> tuple[str, str]:
    """(``kind``, value) of the host storage: ``("connection-string", conn)`` or
    ``("account-url", https://<account>.queue.core.windows.net)``; ConfigError when unset."""
    extra: Mapping[str, str] = getattr(settings, "extra", None) or {}
    conn = (getattr(settings, "azure_webjobs_storage", "") or "").strip()
    if conn:
        return "connection-string", conn
    uri = (extra.get("AzureWebJobsStorage__queueServiceUri") or "").strip()
    if uri:
        return "account-url", uri.rstrip("/")
    account = (extra.get("AzureWebJobsStorage__accountName") or "").strip()
    if account:
        return "account-url", f"https://{account}.queue.core.windows.net"
    raise ConfigError("the queue's storage is not configured: set AzureWebJobsStorage (a connection string, "
                      "UseDevelopmentStorage=true locally) or AzureWebJobsStorage__queueServiceUri")


class TriageQueue:
    """Sends ``TriageRequest`` messages to one queue. Use as a context manager or ``close()``.

    :param account_url: ``https://<account>.queue.core.windows.net`` (or Azurite's URL).
    :param queue_name: the queue (TRIAGE_QUEUE_NAME).
    :param credential: a ``TokenCredential`` (or an account key / SAS) for the account.
    :param options: azure-core client options over ``DEFAULT_CLIENT_OPTIONS`` (e.g. ``transport``).
    """

    def __init__(self, account_url: str, queue_name: str, credential: TokenCredential, **options: Any) -> None:
        if not isinstance(account_url, str) or not account_url.startswith(("https://", "http://")):
            raise ValueError(f"account_url {str(account_url).split('?')[0]!r} is not a queue service URL "
                             "(https://<account>.queue.core.windows.net)")
        if credential is None:
            raise ValueError("credential is required: DefaultAzureCredential() for identity-based access, "
                             "or use TriageQueue.from_connection_string")
        _check_name(queue_name)
        from azure.storage.queue import QueueClient

        self._client: "QueueClient" = QueueClient(
            account_url.rstrip("/"), queue_name, credential=credential, **self._options(options))
        self._setup()

    @classmethod
    def from_connection_string(cls, conn_str: str, queue_name: str, **options: Any) -> "TriageQueue":
        """From an Azure Storage connection string (``UseDevelopmentStorage=true`` included)."""
        _check_name(queue_name)
        from azure.storage.queue import QueueClient

        from shared.store import normalize_connection_string

        try:
            client = QueueClient.from_connection_string(normalize_connection_string(conn_str), queue_name,
                                                        **cls._options(options))
        except (ValueError, KeyError) as exc:
            # never echo the connection string: it holds the account key
            raise ValueError(f"the storage connection string is malformed ({type(exc).__name__})") from exc
        queue = cls.__new__(cls)
        queue._client = client
        queue._setup()
        return queue

    @classmethod
    def from_settings(cls, settings: "Settings", *, credential: TokenCredential | None = None, **options: Any) -> "TriageQueue":
        """The queue TRIAGE_QUEUE_NAME in the host storage (AzureWebJobsStorage)."""
        kind, value = queue_settings(settings)
        name = settings.queue_name
        try:
            if kind == "connection-string":
                return cls.from_connection_string(value, name, **options)
            if credential is None:
                from azure.identity import DefaultAzureCredential

                extra = getattr(settings, "extra", None) or {}
                client_id = (extra.get("AzureWebJobsStorage__clientId") or "").strip() or None
                credential = DefaultAzureCredential(managed_identity_client_id=client_id)
            return cls(value, name, credential, **options)
        except ValueError as exc:
            raise ConfigError(f"AzureWebJobsStorage / TRIAGE_QUEUE_NAME: {exc}") from exc

    @staticmethod
    def _options(options: Mapping[str, Any]) -> dict[str, Any]:
        from azure.storage.queue import LinearRetry, TextBase64DecodePolicy, TextBase64EncodePolicy

        merged = dict(DEFAULT_CLIENT_OPTIONS)
        merged.update(options)
        backoff = float(merged.pop("retry_backoff_s"))
        if "retry_policy" not in merged:
            merged["retry_policy"] = LinearRetry(backoff=backoff, retry_total=int(merged["retry_total"]),
                                                 random_jitter_range=backoff / 2)
        merged.setdefault("message_encode_policy", TextBase64EncodePolicy())
        merged.setdefault("message_decode_policy", TextBase64DecodePolicy())
        return merged

    def _setup(self) -> None:
        self.queue_name = self._client.queue_name
        self.endpoint = self._client.url.split("?")[0].rsplit("/", 1)[0]

    def __repr__(self) -> str:
        return f"TriageQueue({self.endpoint!r}, {self.queue_name!r})"

    @property
    def client(self) -> "QueueClient":
        """The underlying ``QueueClient`` (tests read messages back through it)."""
        return self._client

    def send(self, request: "TriageRequest") -> str:
        """Put one request on the queue; returns the message id. QueueError when it cannot."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        text = request.to_message()
        try:
            try:
                sent = self._client.send_message(text)
            except ResourceNotFoundError:
                log.info("queue %s does not exist yet: creating it", self.queue_name)
                self._create()
                sent = self._client.send_message(text)
        except AzureError as exc:
            status = getattr(exc, "status_code", None)
            raise QueueError(
                f"could not queue run {request.run_id} on {self.endpoint}/{self.queue_name}"
                + (f" (HTTP {status})" if status else "") + f": {type(exc).__name__}; "
                "check AzureWebJobsStorage and the app's 'Storage Queue Data Contributor' role"
            ) from exc
        return str(sent.id)

    __call__ = send   # a TriageQueue is an ``enqueue`` function

    def _create(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self._client.create_queue()
        except ResourceExistsError:
            pass

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "TriageQueue":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
