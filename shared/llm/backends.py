"""Model backends: ``OpenAIBackend`` (Azure OpenAI v1 or versioned endpoints, keyless or with a
key, or any OpenAI-compatible endpoint) and ``NoopBackend``. ``openai`` and ``azure.identity``
are imported only when a backend is built.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import ValidationError

from shared.errors import LLMError

if TYPE_CHECKING:  # pragma: no cover
    from shared.secrets import SecretProvider
    from azure.core.credentials import TokenCredential
    from shared.config import Settings

from shared.llm.schema import LLMAnswer, LLMRequest, VERDICT_SCHEMA, Verdict, _KNOWN_FIELDS, _SCHEMA_NAME, _clean

__all__ = ["COGNITIVE_SERVICES_SCOPE", "LLMBackend", "NoopBackend", "OpenAIBackend", "backend_from_settings"]

log = logging.getLogger(__name__)

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
# --- backends ------------------------------------------------------------------------------
@runtime_checkable
class LLMBackend(Protocol):
    """A model that answers triage requests. ``analyse`` never raises: failures come back as
    ``Verdict.fallback(reason)``."""

    name: str
    model: str

    def analyse(self, request: LLMRequest) -> Verdict: ...

    def close(self) -> None: ...


class NoopBackend:
    """No model configured: every request falls back to the rules."""

    name = "noop"
    model = ""

    def analyse(self, request: LLMRequest) -> Verdict:
        return Verdict.fallback("no model configured", backend=self.name)

    def close(self) -> None:
        pass

    def __enter__(self) -> "NoopBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_url(url: str, setting: str) -> str:
    url = (url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password \
            or parts.query:
        raise ValueError(f"{setting} must look like https://<host>[/path] (no credentials or query), got {url!r}")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"{setting} must use https (plain http is only accepted for a loopback address)")
    return url


def _retry_after(headers: Any) -> float | None:
    """Seconds the service asked us to wait (retry-after-ms, retry-after), or None."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) * scale)
        except ValueError:
            try:
                from email.utils import parsedate_to_datetime

                when = parsedate_to_datetime(raw)
                return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
            except (TypeError, ValueError):
                return None
    return None


class OpenAIBackend:
    """Chat completions with a strict JSON-schema response format, through the ``openai`` package.

    Three ways to reach a model:

    - ``mode="azure-v1"``: Azure OpenAI's v1 endpoint, ``<endpoint>/openai/v1/``, with the plain
      ``OpenAI`` client and the deployment name as the model (no api-version).
    - ``mode="azure"``: the versioned ``AzureOpenAI`` client (``api_version`` required;
      structured outputs need 2024-08-01-preview or later), URL
      ``<endpoint>/openai/deployments/<deployment>/chat/completions?api-version=...``.
    - ``mode="openai"``: any OpenAI-compatible endpoint (``base_url`` + ``api_key``, model name).

    Azure authentication is keyless by default (a bearer-token provider for
    ``COGNITIVE_SERVICES_SCOPE`` from ``credential``, ``DefaultAzureCredential`` when none is
    given) or an ``api_key``. Retries are ours, not the SDK's: at most ``max_retries`` more
    attempts on 429/5xx/connection errors, a 429 waits its ``retry-after`` only when that is at
    most ``max_retry_after_s``, and all attempts together stay within ``timeout_s``.
    """

    def __init__(
        self,
        *,
        mode: str,
        endpoint: str,
        model: str,
        api_key: str | None = None,
        api_version: str = "",
        credential: TokenCredential | None = None,
        timeout_s: float = 20.0,
        max_retries: int = 2,
        max_retry_after_s: float = 5.0,
        backoff_s: float = 0.5,
        max_output_tokens: int = 800,
        temperature: float | None = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if mode not in ("azure-v1", "azure", "openai"):
            raise ValueError(f"mode must be 'azure-v1', 'azure' or 'openai', got {mode!r}")
        setting = "OPENAI_BASE_URL" if mode == "openai" else "AZURE_OPENAI_ENDPOINT"
        self._endpoint = _check_url(endpoint, setting)
        if not (model or "").strip():
            raise ValueError("set AZURE_OPENAI_DEPLOYMENT (the deployment name)" if mode != "openai"
                             else "set OPENAI_MODEL (the model name the endpoint serves)")
        if mode == "azure" and not (api_version or "").strip():
            raise ValueError("the versioned Azure OpenAI API needs OPENAI_API_VERSION (2024-08-01-preview or later), "
                             "or leave it unset to use the v1 endpoint")
        if mode == "openai" and not api_key:
            raise ValueError("set OPENAI_API_KEY for OPENAI_BASE_URL (any placeholder if the endpoint needs no key)")
        if timeout_s <= 0:
            raise ValueError("the LLM time-out (TRIAGE_LLM_TIMEOUT) must be positive")
        if not 0 <= max_retries <= 5:
            raise ValueError("max_retries must be between 0 and 5")
        if max_retry_after_s < 0 or backoff_s < 0:
            raise ValueError("max_retry_after_s and backoff_s must not be negative")
        self.mode = mode
        self.name = "openai" if mode == "openai" else "azure-openai"
        self.model = model.strip()
        self._api_key = api_key or None
        self._api_version = (api_version or "").strip()
        self._credential = credential
        self._owns_credential = False
        self._timeout_s = float(timeout_s)
        self._max_retries = int(max_retries)
        self._max_retry_after_s = float(max_retry_after_s)
        self._backoff_s = float(backoff_s)
        self._max_output_tokens = int(max_output_tokens)
        self._temperature = temperature
        self._sleep = sleep
        self._client: Any = None

    # --- construction ----------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: "Settings", *, api_key: str | None = None, credential: TokenCredential | None = None,
                      secrets: SecretProvider | None = None, **options: Any) -> "OpenAIBackend":
        """Azure OpenAI when AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT are set (v1 endpoint
        unless OPENAI_API_VERSION is set), else the OpenAI-compatible OPENAI_BASE_URL. The API key
        is ``api_key``, else the secret AZURE_OPENAI_API_KEY / OPENAI_API_KEY (read through
        ``secrets``, a ``shared.secrets.SecretProvider``, or one built from the settings);
        without a key, Azure is reached keyless with ``credential``."""
        options.setdefault("timeout_s", settings.llm_timeout_s)
        if settings.azure_openai_endpoint and settings.azure_openai_deployment:
            key = api_key or _read_secret("AZURE_OPENAI_API_KEY", settings, secrets)
            return cls(
                mode="azure" if settings.openai_api_version else "azure-v1",
                endpoint=settings.azure_openai_endpoint,
                model=settings.azure_openai_deployment,
                api_key=key,
                api_version=settings.openai_api_version,
                credential=credential,
                **options,
            )
        if settings.openai_base_url:
            key = api_key or _read_secret("OPENAI_API_KEY", settings, secrets)
            return cls(mode="openai", endpoint=settings.openai_base_url, model=settings.openai_model,
                       api_key=key, **options)
        raise ValueError("no model is configured: set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT, "
                         "or OPENAI_BASE_URL and OPENAI_MODEL")

    @property
    def url(self) -> str:
        """Where requests go (no credentials in it)."""
        if self.mode == "azure-v1":
            return f"{self._base_v1()}chat/completions"
        if self.mode == "azure":
            return f"{self._endpoint}/openai/deployments/{self.model}/chat/completions?api-version={self._api_version}"
        return f"{self._endpoint}/chat/completions"

    def _base_v1(self) -> str:
        base = self._endpoint
        return f"{base}/" if base.endswith("/openai/v1") else f"{base}/openai/v1/"

    def _token_provider(self) -> Callable[[], str]:
        from azure.identity import get_bearer_token_provider

        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
            self._owns_credential = True
        return get_bearer_token_provider(self._credential, COGNITIVE_SERVICES_SCOPE)

    def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        import openai

        common: dict[str, Any] = {"timeout": self._timeout_s, "max_retries": 0}
        if self.mode == "openai":
            self._client = openai.OpenAI(base_url=self._endpoint, api_key=self._api_key, **common)
        elif self.mode == "azure-v1":
            if self._api_key:
                self._client = openai.OpenAI(base_url=self._base_v1(), api_key=self._api_key,
                                             default_headers={"api-key": self._api_key}, **common)
            else:
                self._client = openai.OpenAI(base_url=self._base_v1(), api_key=self._token_provider(), **common)
        else:
            auth: dict[str, Any] = (
                {"api_key": self._api_key} if self._api_key else {"azure_ad_token_provider": self._token_provider()}
            )
            self._client = openai.AzureOpenAI(azure_endpoint=self._endpoint, azure_deployment=self.model,
                                              api_version=self._api_version, **auth, **common)
        return self._client

    # --- the call ----------------------------------------------------------------------
    def analyse(self, request: LLMRequest) -> Verdict:
        try:
            completion = self._create(request)
        except LLMError as exc:
            log.warning("LLM call failed, falling back to the rules: %s", exc)
            return Verdict.fallback(exc.message, backend=self.name, model=self.model)
        except Exception as exc:  # noqa: BLE001 - a backend never raises to the pipeline
            log.warning("LLM call failed unexpectedly (%s), falling back to the rules", type(exc).__name__)
            return Verdict.fallback(f"unexpected {type(exc).__name__}", backend=self.name, model=self.model)
        return self._parse(completion)

    def _kwargs(self, request: LLMRequest, dropped: set[str]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.user},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": _SCHEMA_NAME, "strict": True, "schema": VERDICT_SCHEMA},
            },
        }
        if "max_completion_tokens" not in dropped:
            kwargs["max_completion_tokens"] = min(self._max_output_tokens, request.max_output_tokens)
        elif "max_tokens" not in dropped:
            kwargs["max_tokens"] = min(self._max_output_tokens, request.max_output_tokens)
        if self._temperature is not None and "temperature" not in dropped:
            kwargs["temperature"] = self._temperature
        return kwargs

    def _error(self, message: str, *, status: int | None = None, code: str | None = None) -> LLMError:
        return LLMError(message, status=status, error_code=code, method="POST", url=self.url)

    def _create(self, request: LLMRequest) -> Any:
        import openai

        client = self._get_client()
        deadline = time.monotonic() + self._timeout_s
        dropped: set[str] = set()
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0.01:
                raise self._error(f"no answer within {self._timeout_s:g}s")
            try:
                return client.chat.completions.create(**self._kwargs(request, dropped), timeout=remaining)
            except openai.APITimeoutError as exc:
                raise self._error(f"no answer within {self._timeout_s:g}s (time-out)") from exc
            except openai.RateLimitError as exc:
                wait = _retry_after(getattr(exc.response, "headers", None))
                if attempt >= self._max_retries:
                    raise self._error("throttled (429) after retries", status=429, code=exc.code) from exc
                if wait is None:
                    wait = self._backoff_s * (2 ** attempt)
                if wait > self._max_retry_after_s or wait >= deadline - time.monotonic():
                    raise self._error(f"throttled (429); retry-after {wait:g}s is beyond the bound",
                                      status=429, code=exc.code) from exc
                self._sleep(wait)
            except openai.BadRequestError as exc:
                code = (exc.code or "").lower()
                if code == "content_filter" or "content_filter" in str(exc.body or "").lower():
                    raise self._error("content filter refused the prompt", status=400, code="content_filter") from exc
                param = (exc.param or "").strip()
                if param in ("temperature", "max_completion_tokens", "max_tokens") and param not in dropped:
                    dropped.add(param)  # a model that rejects a parameter: ask again without it
                    continue
                raise self._error("the service rejected the request", status=400, code=exc.code) from exc
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise self._error("the service refused the credentials", status=exc.status_code,
                                  code=exc.code) from exc
            except openai.APIStatusError as exc:
                if exc.status_code >= 500 and attempt < self._max_retries:
                    self._sleep(min(self._backoff_s * (2 ** attempt), max(0.0, deadline - time.monotonic())))
                else:
                    raise self._error(f"the service answered HTTP {exc.status_code}", status=exc.status_code,
                                      code=exc.code) from exc
            except openai.APIConnectionError as exc:
                if attempt >= self._max_retries:
                    raise self._error("cannot reach the service") from exc
                self._sleep(min(self._backoff_s * (2 ** attempt), max(0.0, deadline - time.monotonic())))
            except openai.OpenAIError as exc:
                raise self._error(f"client error {type(exc).__name__}") from exc
            attempt += 1

    def _parse(self, completion: Any) -> Verdict:
        usage: dict[str, int] = {}
        u = getattr(completion, "usage", None)
        if u is not None:
            for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                v = getattr(u, k, None)
                if isinstance(v, int):
                    usage[k] = v
        model = str(getattr(completion, "model", "") or self.model)

        def fail(reason: str) -> Verdict:
            log.warning("LLM answer unusable, falling back to the rules: %s", reason)
            return Verdict.fallback(reason, backend=self.name, model=model, usage=usage)

        choices = getattr(completion, "choices", None) or []
        if not choices:
            return fail("empty answer (no choices)")
        choice = choices[0]
        message = getattr(choice, "message", None)
        refusal = getattr(message, "refusal", None)
        if refusal:
            return fail(f"the model refused: {_clean(refusal, 160)}")
        finish = getattr(choice, "finish_reason", None)
        if finish == "length":
            return fail("truncated answer (finish_reason=length)")
        if finish == "content_filter":
            return fail("content filter stopped the answer")
        content = getattr(message, "content", None)
        if not isinstance(content, str) or not content.strip():
            return fail("empty answer")
        try:
            answer = LLMAnswer.model_validate_json(content)
        except ValidationError as exc:
            errors = exc.errors()
            if errors and errors[0].get("type") == "json_invalid":
                return fail("invalid JSON in the answer")
            where = ", ".join(".".join(str(p) for p in e.get("loc", ())) or "answer" for e in errors[:4])
            return fail(f"answer does not match the schema ({where})")
        dropped: list[str] = []
        try:
            raw = json.loads(content)
            if isinstance(raw, dict):
                dropped = [f"unknown field {str(k)[:40]!r} dropped" for k in raw if k not in _KNOWN_FIELDS][:10]
        except ValueError:  # pragma: no cover - validated above
            pass
        return Verdict.from_answer(answer, backend=self.name, model=model, usage=usage, dropped=dropped)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        if self._owns_credential and self._credential is not None:
            try:
                self._credential.close()
            except Exception:  # noqa: BLE001
                pass
            self._credential, self._owns_credential = None, False

    def __enter__(self) -> "OpenAIBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:  # never shows a key
        return f"OpenAIBackend(mode={self.mode!r}, url={self.url!r}, model={self.model!r})"


def _read_secret(name: str, settings: "Settings", secrets: SecretProvider) -> str | None:
    """A secret through the given provider, else a ``shared.secrets.SecretProvider`` built from
    the settings (Key Vault when KEY_VAULT_URL is set, the environment otherwise)."""
    if secrets is not None:
        return secrets.get_optional(name)
    from shared.secrets import SecretProvider

    with SecretProvider.from_settings(settings) as provider:
        return provider.get_optional(name)


def backend_from_settings(settings: "Settings", *, api_key: str | None = None, credential: TokenCredential | None = None,
                          secrets: SecretProvider | None = None, **options: Any) -> LLMBackend:
    """``OpenAIBackend.from_settings`` when a model is configured, else ``NoopBackend``.
    Raises ``ConfigError`` for a configuration that cannot work (naming the setting)."""
    if not settings.llm_configured:
        return NoopBackend()
    try:
        return OpenAIBackend.from_settings(settings, api_key=api_key, credential=credential, secrets=secrets,
                                           **options)
    except ValueError as exc:
        from shared.errors import ConfigError

        raise ConfigError(str(exc)) from exc


