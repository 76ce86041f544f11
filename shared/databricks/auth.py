"""Databricks credentials: each gives the ``Authorization`` header value for the Jobs API client.

- ``PatCredential(token)``: a personal access token, or a zero-argument callable returning one
  (so a Key Vault reader can supply and rotate it).
- ``AzureIdentityCredential(token_credential=None)``: Microsoft Entra ID for Azure Databricks.
  Any azure-core ``TokenCredential`` (default: ``DefaultAzureCredential``, i.e. the managed
  identity in Azure) asked for ``2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default``; the token is
  cached and fetched again five minutes before it expires.
- ``OAuthM2MCredential(host, client_id, client_secret)``: a Databricks service principal's OAuth
  secret exchanged at the workspace's ``/oidc/v1/token``; cached and refreshed before expiry.

``credential_for(settings, secrets, host=..., workspace_id=...)`` picks one the way the Databricks
SDKs' unified authentication does (``DATABRICKS_AUTH_TYPE``: pat, oauth-m2m, azure-msi,
azure-cli, azure-client-secret; unset: a token if there is one, else a client id and secret),
with per-workspace settings (``<NAME>__<workspace id>``) before the shared ones.
``read_profile`` / ``profile_settings`` read a ``~/.databrickscfg`` profile for the command line.

No token ever appears in an error, a log line or a repr.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Protocol

from shared.errors import DatabricksAuthError, SecretError

__all__ = ["DATABRICKS_SCOPE", "Credential", "PatCredential", "AzureIdentityCredential", "OAuthM2MCredential",
           "no_azure_credential", "credential_for", "read_profile", "profile_settings"]

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




class OAuthM2MCredential:
    """OAuth machine-to-machine for a Databricks service principal (``DATABRICKS_AUTH_TYPE=oauth-m2m``):
    the client id and secret are exchanged at the workspace's ``/oidc/v1/token`` (client
    credentials grant, scope ``all-apis``) for an access token, which is cached and fetched again
    ``refresh_margin_s`` before it expires (tokens live an hour). ``client_secret`` may be a
    zero-argument callable (a Key Vault reader: a rotated secret is picked up on the next fetch).

    A refused client is a ``DatabricksAuthError`` naming the client id (never the secret); an
    unreachable endpoint a ``DatabricksUnavailable``."""

    def __init__(self, host: str, client_id: str, client_secret: str | Callable[[], str], *,
                 scope: str = "all-apis", timeout: float = 30.0, refresh_margin_s: float = 300.0,
                 clock: Callable[[], float] = time.time, session: Any = None) -> None:
        if not client_id or not str(client_id).strip():
            raise ValueError("OAuthM2MCredential needs the service principal's client id (DATABRICKS_CLIENT_ID)")
        if not callable(client_secret) and not (isinstance(client_secret, str) and client_secret.strip()):
            raise ValueError("OAuthM2MCredential needs the client secret (DATABRICKS_CLIENT_SECRET)")
        host = host.strip().rstrip("/")
        self.host = host if "://" in host else "https://" + host
        self.client_id = str(client_id).strip()
        self._secret = client_secret if callable(client_secret) else (lambda v=client_secret.strip(): v)
        self._scope = scope
        self._timeout = float(timeout)
        self._margin = float(refresh_margin_s)
        self._clock = clock
        self._session = session
        self._lock = threading.Lock()
        self._token = ""
        self._expires_on = 0.0
        self._last_secret = ""
        self.fetches = 0              # tokens fetched (for tests and the health page)

    @property
    def token_url(self) -> str:
        return f"{self.host}/oidc/v1/token"

    def _fetch(self) -> None:
        import requests

        from shared.errors import DatabricksUnavailable

        try:
            secret = self._secret()
        except Exception as exc:  # noqa: BLE001 - a secret reader may raise anything
            raise SecretError(f"DATABRICKS_CLIENT_SECRET could not be read: {type(exc).__name__}: "
                              f"{_one_line(str(exc), 200)}") from exc
        if not isinstance(secret, str) or not secret.strip():
            raise SecretError("DATABRICKS_CLIENT_SECRET is empty")
        self._last_secret = secret.strip()
        session = self._session or requests
        try:
            answer = session.post(self.token_url, data={"grant_type": "client_credentials", "scope": self._scope},
                                  auth=(self.client_id, self._last_secret), timeout=self._timeout,
                                  headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise DatabricksUnavailable(f"cannot get an OAuth token from {self.token_url}: {type(exc).__name__}",
                                        method="POST", url=self.token_url) from None
        self.fetches += 1
        try:
            body = answer.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        if answer.status_code >= 400:
            code = str(body.get("error") or body.get("error_code") or f"HTTP {answer.status_code}")
            text = _one_line(str(body.get("error_description") or body.get("message") or ""), 200)
            cls = DatabricksUnavailable if answer.status_code in (429,) or answer.status_code >= 500 \
                else DatabricksAuthError
            raise cls(f"the workspace refused OAuth client {self.client_id}: {code}" + (f" ({text})" if text else "")
                      + (" - check DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET" if cls is DatabricksAuthError
                         else ""), status=answer.status_code, error_code=code, method="POST", url=self.token_url)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise DatabricksAuthError(f"{self.token_url} answered without an access_token",
                                      status=answer.status_code, method="POST", url=self.token_url)
        try:
            lifetime = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = token
        # refresh before expiry: the margin, but never more than half the token's life
        self._expires_on = self._clock() + lifetime
        self._margin_now = min(self._margin, lifetime / 2)
        log.debug("fetched an OAuth M2M token for %s, valid for %.0f s", self.client_id, lifetime)

    def authorization(self) -> str:
        with self._lock:
            if not self._token or self._clock() >= self._expires_on - getattr(self, "_margin_now", self._margin):
                self._fetch()
            return f"Bearer {self._token}"

    def invalidate(self) -> None:
        """Forget the cached token (the workspace refused it): the next call fetches a new one."""
        with self._lock:
            self._token = ""
            self._expires_on = 0.0

    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in (self._token, self._last_secret) if v)

    def __repr__(self) -> str:
        return f"OAuthM2MCredential({self.host!r}, client_id={self.client_id!r})"


# --- choosing a credential (unified auth) --------------------------------------------------------

_AZURE_TYPES = ("azure-msi", "azure-cli", "azure-client-secret", "azure-identity")


def _per_workspace(settings: Any, name: str, workspace_id: str, default: str = "") -> str:
    """``<name>__<workspace id>`` when set, else ``default``."""
    extra = getattr(settings, "extra", None) or {}
    if workspace_id:
        value = str(extra.get(f"{name}__{workspace_id}") or "").strip()
        if value:
            return value
    return default


def _secret_reader(secrets: Any, name: str, workspace_id: str) -> tuple[str, Callable[[], str]] | None:
    """(the setting that holds it, a reader called on every use) for the first of
    ``<name>__<workspace id>`` and ``<name>`` that is set; None when neither is."""
    for candidate in ([f"{name}__{workspace_id}"] if workspace_id else []) + [name]:
        if secrets.get_optional(candidate) is not None:
            return candidate, (lambda c=candidate: secrets.get(c))
    return None


def credential_for(settings: Any, secrets: Any, *, host: str, workspace_id: str = "",
                   timeout: float = 30.0) -> Credential:
    """The credential for one workspace, chosen as the Databricks SDKs' unified authentication
    does. ``DATABRICKS_AUTH_TYPE`` (or ``DATABRICKS_AUTH_TYPE__<workspace id>``; the old name
    ``DATABRICKS_AUTH`` too) forces a type; unset, a personal access token is used when there is
    one, else OAuth M2M when a client id and secret are set. Secrets come through ``secrets``
    (Key Vault or the environment); each setting is looked up for the workspace first
    (``DATABRICKS_TOKEN__<id>``, ``DATABRICKS_CLIENT_ID__<id>``, ...), then shared."""
    from shared.errors import ConfigError

    extra = getattr(settings, "extra", None) or {}
    forced = _per_workspace(settings, "DATABRICKS_AUTH_TYPE", workspace_id).lower()
    if forced and forced not in ("pat", "oauth-m2m", *_AZURE_TYPES):
        raise ConfigError(f"DATABRICKS_AUTH_TYPE__{workspace_id}: {forced!r} is not one of pat, oauth-m2m, "
                          + ", ".join(_AZURE_TYPES))
    explicit = bool(forced or str(extra.get("DATABRICKS_AUTH_TYPE") or extra.get("DATABRICKS_AUTH") or "").strip())
    auth = forced or (getattr(settings, "databricks_auth", "") or "pat")
    where = (f" (workspace {workspace_id}: a setting NAME__{workspace_id} is read before NAME)"
             if workspace_id else "")
    if auth == "pat":
        token = _secret_reader(secrets, "DATABRICKS_TOKEN", workspace_id)
        if token is not None:
            return PatCredential(token[1])
        client_id = _per_workspace(settings, "DATABRICKS_CLIENT_ID", workspace_id,
                                   getattr(settings, "databricks_client_id", ""))
        if not explicit and client_id and _secret_reader(secrets, "DATABRICKS_CLIENT_SECRET", workspace_id):
            auth = "oauth-m2m"
        else:
            raise SecretError("no Databricks credential: set DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID and "
                              "DATABRICKS_CLIENT_SECRET (a service principal, DATABRICKS_AUTH_TYPE=oauth-m2m), or "
                              "DATABRICKS_AUTH_TYPE=azure-msi / azure-cli / azure-client-secret" + where)
    if auth == "oauth-m2m":
        client_id = _per_workspace(settings, "DATABRICKS_CLIENT_ID", workspace_id,
                                   getattr(settings, "databricks_client_id", ""))
        if not client_id:
            raise ConfigError("DATABRICKS_AUTH_TYPE=oauth-m2m needs DATABRICKS_CLIENT_ID, the service principal's "
                              "OAuth client id" + where)
        secret = _secret_reader(secrets, "DATABRICKS_CLIENT_SECRET", workspace_id)
        if secret is None:
            raise SecretError("DATABRICKS_AUTH_TYPE=oauth-m2m needs the secret DATABRICKS_CLIENT_SECRET "
                              "(Key Vault: databricks-client-secret)" + where)
        return OAuthM2MCredential(host, client_id, secret[1], timeout=timeout)
    client = _per_workspace(settings, "ARM_CLIENT_ID", workspace_id, getattr(settings, "arm_client_id", ""))
    if auth == "azure-msi":
        from azure.identity import ManagedIdentityCredential

        return AzureIdentityCredential(ManagedIdentityCredential(client_id=client) if client
                                       else ManagedIdentityCredential())
    if auth == "azure-cli":
        from azure.identity import AzureCliCredential

        return AzureIdentityCredential(AzureCliCredential())
    if auth == "azure-client-secret":
        tenant = _per_workspace(settings, "ARM_TENANT_ID", workspace_id, getattr(settings, "arm_tenant_id", ""))
        secret = _secret_reader(secrets, "ARM_CLIENT_SECRET", workspace_id)
        if not (client and tenant and secret):
            raise ConfigError("DATABRICKS_AUTH_TYPE=azure-client-secret needs ARM_CLIENT_ID, ARM_TENANT_ID and the "
                              "secret ARM_CLIENT_SECRET (an Entra ID service principal)" + where)
        from azure.identity import ClientSecretCredential

        return AzureIdentityCredential(ClientSecretCredential(tenant, client, secret[1]()))
    return AzureIdentityCredential()      # azure-identity: DefaultAzureCredential


# --- ~/.databrickscfg profiles (for people at a terminal) ---------------------------------------

# .databrickscfg field -> the setting it stands for (the Databricks SDKs' names).
PROFILE_FIELDS = {
    "host": "DATABRICKS_HOST",
    "token": "DATABRICKS_TOKEN",
    "auth_type": "DATABRICKS_AUTH_TYPE",
    "client_id": "DATABRICKS_CLIENT_ID",
    "client_secret": "DATABRICKS_CLIENT_SECRET",
    "azure_client_id": "ARM_CLIENT_ID",
    "azure_tenant_id": "ARM_TENANT_ID",
    "azure_client_secret": "ARM_CLIENT_SECRET",
}


def read_profile(path: str, name: str) -> dict[str, str] | None:
    """The fields of profile ``[name]`` of a .databrickscfg file (None when there is no such
    profile). ``[DEFAULT]`` is an ordinary profile here, as in the Databricks tools."""
    import configparser

    from shared.errors import ConfigError

    parser = configparser.ConfigParser(default_section="\x00none", interpolation=None)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"{path}: not a readable .databrickscfg file ({type(exc).__name__})") from None
    if not parser.has_section(name):
        return None
    return {k.strip().lower(): v.strip() for k, v in parser.items(name) if v is not None}


def profile_settings(env: Any, *, home: str | None = None) -> dict[str, str]:
    """Settings from a Databricks configuration profile, for the names ``env`` does not set (the
    environment wins, as in the Databricks SDKs). The file is DATABRICKS_CONFIG_FILE, else
    ~/.databrickscfg; the profile DATABRICKS_CONFIG_PROFILE, else DEFAULT when the file has one.
    A profile that was asked for and is missing is a ConfigError naming it."""
    import os

    from shared.errors import ConfigError

    wanted = str(env.get("DATABRICKS_CONFIG_PROFILE") or "").strip()
    path = str(env.get("DATABRICKS_CONFIG_FILE") or "").strip() or os.path.join(
        home if home is not None else os.path.expanduser("~"), ".databrickscfg")
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        if wanted:
            raise ConfigError(f"DATABRICKS_CONFIG_PROFILE={wanted}: there is no configuration file {path} "
                              "(set DATABRICKS_CONFIG_FILE, or run `databricks auth login`)")
        return {}
    fields = read_profile(path, wanted or "DEFAULT")
    if fields is None:
        if wanted:
            raise ConfigError(f"DATABRICKS_CONFIG_PROFILE={wanted}: {path} has no profile [{wanted}]")
        return {}
    out = {setting: fields[key] for key, setting in PROFILE_FIELDS.items()
           if fields.get(key) and not str(env.get(setting) or "").strip()}
    return out
