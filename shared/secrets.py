"""Secrets: read from Azure Key Vault (with a TTL cache) or, for local runs, from the environment.

Which settings are secrets is listed once, in ``shared.config.SECRET_SETTINGS``. A secret is
asked for by its setting name (``DATABRICKS_TOKEN``); in Key Vault it is stored under the same
name in lower case with ``_`` replaced by ``-`` (``databricks-token``). A Databricks secret of
one workspace among several adds ``__<workspace id>`` (``DATABRICKS_TOKEN__1234``, in Key Vault
``databricks-token--1234``).

Where secrets come from (see docs/secrets.md):

- ``KEY_VAULT_URL`` set: **only** Key Vault. App settings with a secret's name are ignored (one
  warning per name, naming the setting, never its value), so nothing secret is read from plain
  app settings. Values are cached for ``TRIAGE_SECRET_CACHE_TTL``, so a rotated secret is picked
  up within that time without a restart. If Key Vault is briefly unreachable when a cached value
  expires, the last good value is served for a little longer (and a warning logged); a secret
  that is gone (404) or an identity that is refused (401/403) fails at once.
- ``KEY_VAULT_URL`` unset: the environment (app settings, ``local.settings.json``, the shell).
  App Service / Functions *Key Vault references* (``@Microsoft.KeyVault(SecretUri=...)``)
  work in this mode, because the platform resolves them into plain environment values. A
  reference the platform could *not* resolve arrives as its literal text; that is reported
  as an error instead of being used as a token.

A missing secret raises ``SecretError`` naming the setting (and the Key Vault secret name),
never the value. Nothing here is a singleton: build one provider per process (or per test)
with ``SecretProvider.from_settings(settings)`` and pass it to whatever needs secrets.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlsplit

from shared.config import SECRET_SETTINGS
from shared.errors import SecretError

if TYPE_CHECKING:  # pragma: no cover
    from azure.core.credentials import TokenCredential
    from shared.config import Settings

__all__ = [
    "SecretProvider",
    "key_vault_name",
    "is_key_vault_reference",
    "KEY_VAULT_REFERENCE_PREFIX",
]

_log = logging.getLogger(__name__)

KEY_VAULT_REFERENCE_PREFIX = "@Microsoft.KeyVault("
# A per-workspace secret is <SECRET_SETTING>__<workspace id> (Key Vault: databricks-token--<id>).
_WORKSPACE_SUFFIX = re.compile(r"[A-Za-z0-9_-]{1,64}")
# When Key Vault cannot be reached and a value is cached, serve it this much longer before
# asking again (never more than the configured TTL).
_STALE_GRACE_S = 60.0
# Values shorter than this are not scrubbed from text by value (too likely to be a word).
_MIN_SCRUB_LEN = 8


def key_vault_name(setting: str) -> str:
    """The Key Vault secret name of a setting: ``DATABRICKS_TOKEN`` -> ``databricks-token``."""
    return setting.strip().lower().replace("_", "-")


def is_key_vault_reference(value: str) -> bool:
    """True when an app setting's value is an *unresolved* App Service Key Vault reference."""
    return value.strip().startswith(KEY_VAULT_REFERENCE_PREFIX)


@dataclass
class _Cached:
    value: str | None       # None: the secret is absent (cached too, so optional secrets are cheap)
    expires: float          # clock() time after which the value is fetched again


class SecretProvider:
    """Reads the secrets named in ``SECRET_SETTINGS``.

    :param vault_url: ``https://<vault>.vault.azure.net``; empty means "use the environment".
    :param env: the environment mapping (``Settings.extra``) for environment mode.
    :param credential: a ``TokenCredential`` for Key Vault; ``DefaultAzureCredential`` when None.
    :param transport: an azure-core ``HttpTransport`` (tests use this hook).
    :param ttl_s: how long a Key Vault value is cached.
    :param clock: a monotonic clock in seconds (tests move it instead of sleeping).
    """

    def __init__(
        self,
        vault_url: str = "",
        *,
        env: Mapping[str, str] | None = None,
        credential: TokenCredential | None = None,
        transport: Any = None,
        ttl_s: float = 300,
        clock: Callable[[], float] = time.monotonic,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        vault_url = (vault_url or "").strip().rstrip("/")
        if vault_url:
            parts = urlsplit(vault_url)
            if parts.scheme != "https" or not parts.hostname or parts.query or parts.username:
                raise ValueError(
                    f"KEY_VAULT_URL must look like https://<vault-name>.vault.azure.net, got {vault_url!r}"
                )
        if ttl_s < 0:
            raise ValueError("the secret cache TTL (TRIAGE_SECRET_CACHE_TTL) must not be negative")
        self._vault_url = vault_url
        self._env: Mapping[str, str] = dict(env or {})
        self._credential = credential
        self._owns_credential = False
        self._transport = transport
        self._ttl = float(ttl_s)
        self._clock = clock
        self._client_kwargs = dict(client_kwargs or {})
        self._client: Any = None
        self._cache: dict[str, _Cached] = {}
        self._handed_out: dict[str, str] = {}   # setting -> last value returned (for scrub())
        self._lock = threading.RLock()
        self._name_locks: dict[str, threading.Lock] = {n: threading.Lock() for n in SECRET_SETTINGS}
        self._warned_env: set[str] = set()

    @classmethod
    def from_settings(
        cls,
        settings: "Settings",
        *,
        credential: TokenCredential | None = None,
        transport: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> "SecretProvider":
        try:
            return cls(
                settings.key_vault_url,
                env=settings.extra,
                credential=credential,
                transport=transport,
                ttl_s=settings.secret_cache_ttl_s,
                clock=clock,
            )
        except ValueError as exc:
            from shared.errors import ConfigError

            raise ConfigError(str(exc)) from exc

    # --- public -------------------------------------------------------------------------
    @property
    def source(self) -> str:
        """``"key-vault"`` or ``"environment"``."""
        return "key-vault" if self._vault_url else "environment"

    @property
    def vault_url(self) -> str:
        return self._vault_url

    def get(self, name: str) -> str:
        """The secret's value; ``SecretError`` naming it when it is not set anywhere."""
        value = self.get_optional(name)
        if value is None:
            if self._vault_url:
                raise SecretError(
                    f"secret {name} is missing: Key Vault {self._vault_url} has no enabled secret "
                    f"named '{key_vault_name(name)}' (with KEY_VAULT_URL set, app settings are not read)"
                )
            raise SecretError(
                f"secret {name} is missing: set the app setting {name} "
                f"(or KEY_VAULT_URL and a Key Vault secret '{key_vault_name(name)}')"
            )
        return value

    def get_optional(self, name: str) -> str | None:
        """The secret's value, or None when it is not set. Other failures (Key Vault refusing
        the identity, Key Vault unreachable with nothing cached) still raise ``SecretError``."""
        self._check_name(name)
        value = self._from_key_vault(name) if self._vault_url else self._from_env(name)
        if value is not None:
            with self._lock:
                self._handed_out[name] = value
        return value

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached values (one, or all), e.g. after a service refused a token."""
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name, None)

    def scrub(self, text: str) -> str:
        """Replace every secret value this provider has handed out by ``[REDACTED:<name>]``.
        A second line of defence behind ``shared.redact`` for text about to leave the process."""
        if not text:
            return text
        with self._lock:
            items = sorted(self._handed_out.items(), key=lambda kv: -len(kv[1]))
        for name, value in items:
            if len(value) >= _MIN_SCRUB_LEN and value in text:
                text = text.replace(value, f"[REDACTED:{key_vault_name(name)}]")
        return text

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            credential = self._credential if self._owns_credential else None
        if client is not None:
            client.close()
        if credential is not None and hasattr(credential, "close"):
            credential.close()

    def __enter__(self) -> "SecretProvider":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:  # never show values
        return f"SecretProvider(source={self.source!r}, vault_url={self._vault_url!r})"

    # --- environment ----------------------------------------------------------------------
    def _from_env(self, name: str) -> str | None:
        raw = self._env.get(name)
        if raw is None or not str(raw).strip():
            return None
        value = str(raw).strip()
        if is_key_vault_reference(value):
            raise SecretError(
                f"secret {name}: the app setting is a Key Vault reference the platform did not resolve. "
                "Check that the app's managed identity may read the secret ('Key Vault Secrets User') "
                "and that the reference names an existing secret; or set KEY_VAULT_URL so the app "
                "reads Key Vault itself"
            )
        return value

    # --- Key Vault ------------------------------------------------------------------------
    def _from_key_vault(self, name: str) -> str | None:
        self._warn_ignored_env(name)
        # One lock per secret: a slow read of one secret does not hold up the others, and
        # concurrent readers of the same secret wait for one fetch instead of each fetching.
        with self._lock:
            name_lock = self._name_locks.setdefault(name, threading.Lock())
        with name_lock:
            now = self._clock()
            cached = self._cache.get(name)
            if cached is not None and now < cached.expires:
                return cached.value
            try:
                value = self._fetch(name)
            except _Transient as exc:
                if cached is not None and cached.value is not None:
                    _log.warning(
                        "Key Vault unreachable while refreshing secret %s (%s); serving the cached value",
                        name, exc.reason,
                    )
                    cached.expires = now + min(self._ttl, _STALE_GRACE_S)
                    return cached.value
                raise SecretError(
                    f"secret {name}: cannot read '{key_vault_name(name)}' from Key Vault "
                    f"{self._vault_url}: {exc.reason}"
                ) from exc.__cause__
            self._cache[name] = _Cached(value=value, expires=now + self._ttl)
            return value

    def _fetch(self, name: str) -> str | None:
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
        )

        kv_name = key_vault_name(name)
        try:
            secret = self._secret_client().get_secret(kv_name)
        except ResourceNotFoundError:
            return None
        except ClientAuthenticationError as exc:
            status = getattr(exc, "status_code", None)
            if status is None:  # no token at all: no managed identity / no developer sign-in
                raise SecretError(
                    f"secret {name}: no Azure credential could get a token for Key Vault "
                    f"({type(exc).__name__}): enable the app's managed identity, or sign in with "
                    "'az login' for local runs"
                ) from exc
            raise SecretError(
                f"secret {name}: Key Vault {self._vault_url} refused the app's identity (HTTP {status})"
                f" reading '{kv_name}'. Grant it the 'Key Vault Secrets User' role on the vault"
            ) from exc
        except HttpResponseError as exc:
            status = exc.status_code
            code = _error_code(exc)
            if status == 403:
                raise SecretError(
                    f"secret {name}: Key Vault {self._vault_url} forbids reading '{kv_name}'"
                    + (f" [{code}]" if code else "")
                    + " (HTTP 403): grant the app's identity 'Key Vault Secrets User', "
                    "check the vault firewall, and that the secret is enabled"
                ) from exc
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                raise SecretError(
                    f"secret {name}: Key Vault {self._vault_url} rejected the request for '{kv_name}'"
                    + (f" [{code}]" if code else "") + f" (HTTP {status})"
                ) from exc
            raise _Transient(f"HTTP {status}" + (f" [{code}]" if code else "")) from exc
        except AzureError as exc:
            raise _Transient(type(exc).__name__) from exc
        value = secret.value
        if value is None or not str(value).strip():
            return None
        return str(value).strip()

    def _secret_client(self) -> Any:
        with self._lock:
            return self._client or self._make_client()

    def _make_client(self) -> Any:
        if self._client is None:
            from azure.keyvault.secrets import SecretClient

            if self._credential is None:
                from azure.identity import DefaultAzureCredential

                self._credential = DefaultAzureCredential()
                self._owns_credential = True
            kwargs: dict[str, Any] = {"retry_total": 3, "retry_backoff_factor": 0.5, "retry_backoff_max": 8}
            kwargs.update(self._client_kwargs)
            if self._transport is not None:
                kwargs["transport"] = self._transport
            self._client = SecretClient(self._vault_url, self._credential, **kwargs)
        return self._client

    def _warn_ignored_env(self, name: str) -> None:
        if name in self._warned_env:
            return
        if str(self._env.get(name) or "").strip():
            self._warned_env.add(name)
            _log.warning(
                "KEY_VAULT_URL is set: ignoring app setting %s; secrets are read only from Key Vault "
                "(secret '%s')", name, key_vault_name(name),
            )

    @staticmethod
    def _check_name(name: str) -> None:
        """A secret setting, or one for one workspace: ``DATABRICKS_TOKEN__<workspace id>``."""
        base, sep, suffix = name.partition("__")
        if base not in SECRET_SETTINGS or (sep and not _WORKSPACE_SUFFIX.fullmatch(suffix)):
            raise ValueError(f"{name!r} is not a secret setting; known: {', '.join(SECRET_SETTINGS)} "
                             "(each may end in __<workspace id>)")


class _Transient(Exception):
    """Key Vault could not be reached or answered 408/429/5xx after the SDK's retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _error_code(exc: Any) -> str | None:
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None)
    return str(code) if code else None
