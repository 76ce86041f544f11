"""Databricks credentials: each gives the ``Authorization`` header value for the Jobs API client.

- ``PatCredential(token)``: a personal access token, or a zero-argument callable returning one
  (so a Key Vault reader can supply and rotate it).
- ``AzureIdentityCredential(token_credential=None)``: Microsoft Entra ID for Azure Databricks.
  Any azure-core ``TokenCredential`` (default: ``DefaultAzureCredential``, i.e. the managed
  identity in Azure) asked for ``2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default``; the token is
  cached and fetched again five minutes before it expires.

No token ever appears in an error, a log line or a repr.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Protocol

from shared.errors import DatabricksAuthError, SecretError

__all__ = ["DATABRICKS_SCOPE", "Credential", "PatCredential", "AzureIdentityCredential", "no_azure_credential"]

log = logging.getLogger(__name__)

# The Azure Databricks resource (first-party application id); the same in every tenant.
DATABRICKS_SCOPE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"


def _one_line(text: str, limit: int = 500) -> str:
    t = " ".join(str(text).split())
    return t if len(t) <= limit else t[: limit - 3] + "..."


# --- credentials --------------------------------------------------------------------------------

class Credential(Protocol):
    """What the client needs from a credential: the ``Authorization`` header value."""

    def authorization(self) -> str: ...


class PatCredential:
    """A Databricks personal access token, given as the string or as a zero-argument callable
    (called for every request, so the callable decides how long to cache a rotated secret)."""

    def __init__(self, token: str | Callable[[], str]) -> None:
        if callable(token):
            self._source: Callable[[], str] = token
        elif isinstance(token, str) and token.strip():
            value = token.strip()
            self._source = lambda: value
        else:
            raise ValueError("PatCredential needs a non-empty token string (DATABRICKS_TOKEN) "
                             "or a zero-argument callable returning one")
        self._last = ""

    def authorization(self) -> str:
        try:
            token = self._source()
        except Exception as exc:  # noqa: BLE001 - a secret reader may raise anything
            raise SecretError(f"DATABRICKS_TOKEN could not be read: {type(exc).__name__}") from exc
        if not isinstance(token, str) or not token.strip():
            raise SecretError("DATABRICKS_TOKEN is empty")
        self._last = token.strip()
        return f"Bearer {self._last}"

    def secrets(self) -> tuple[str, ...]:
        """Values to scrub from any text that leaves the client."""
        return (self._last,) if self._last else ()

    def __repr__(self) -> str:
        return "PatCredential(<hidden>)"


class AzureIdentityCredential:
    """Microsoft Entra ID tokens for Azure Databricks, from any azure-core ``TokenCredential``.

    ``token_credential`` defaults to ``azure.identity.DefaultAzureCredential()`` (managed identity
    in Azure, developer sign-in locally), created on first use. The token is cached and fetched
    again ``refresh_margin_s`` (default 5 minutes) before it expires. ``clock`` returns epoch
    seconds (the unit of ``AccessToken.expires_on``)."""

    def __init__(self, token_credential: Any = None, *, scope: str = DATABRICKS_SCOPE,
                 refresh_margin_s: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        if token_credential is not None and not callable(getattr(token_credential, "get_token", None)):
            raise ValueError("token_credential must be an azure-core TokenCredential (with get_token(scope))")
        if not scope:
            raise ValueError("scope must be the Azure Databricks resource scope, e.g. " + DATABRICKS_SCOPE)
        if refresh_margin_s < 0:
            raise ValueError("refresh_margin_s must be >= 0")
        self._credential = token_credential
        self._scope = scope
        self._margin = float(refresh_margin_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires_on = 0.0

    def _fetch(self) -> None:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        try:
            access = self._credential.get_token(self._scope)
        except Exception as exc:  # noqa: BLE001 - azure-identity raises several families
            text = _one_line(str(exc), 900)
            if no_azure_credential(exc):
                raise DatabricksAuthError(
                    "no Azure credential found: run `az login`, or set DATABRICKS_TOKEN (and DATABRICKS_AUTH_TYPE=pat) "
                    f"- {type(exc).__name__}: {text}") from exc
            raise DatabricksAuthError(
                f"could not get a Microsoft Entra token for Azure Databricks: {type(exc).__name__}: {text}"
            ) from exc
        token = getattr(access, "token", None)
        if not isinstance(token, str) or not token:
            raise DatabricksAuthError("the Entra credential returned an empty token")
        self._token = token
        self._expires_on = float(getattr(access, "expires_on", 0) or 0)
        log.debug("fetched an Entra token for Azure Databricks, valid for %.0f s",
                  self._expires_on - self._clock())

    def authorization(self) -> str:
        with self._lock:
            if not self._token or self._clock() >= self._expires_on - self._margin:
                self._fetch()
            return f"Bearer {self._token}"

    def invalidate(self) -> None:
        """Forget the cached token (the workspace refused it): the next call fetches a new one."""
        with self._lock:
            self._token = ""
            self._expires_on = 0.0

    def secrets(self) -> tuple[str, ...]:
        return (self._token,) if self._token else ()

    def __repr__(self) -> str:
        return f"AzureIdentityCredential(scope={self._scope!r})"


def no_azure_credential(exc: BaseException) -> bool:
    """True when azure-identity found no credential to try (not signed in, no managed identity)."""
    text = str(exc)
    return (type(exc).__name__ == "CredentialUnavailableError"
            or "failed to retrieve a token from the included credentials" in text
            or "authentication unavailable" in text)


