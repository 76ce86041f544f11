"""Settings: every environment setting the app reads, parsed in one place.

Settings are passed explicitly (``Settings.from_env(env)``); nothing here is a singleton, so
tests build the settings they need. Secrets are *not* read here: ``shared.secrets`` reads them
(Key Vault or environment) when they are first needed, and only their names appear below.
Every name here is documented in ``local.settings.json.example`` and set in ``infra/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from shared.errors import ConfigError

__all__ = ["Settings", "SECRET_SETTINGS", "CHANNELS", "DATABRICKS_AUTH_TYPES", "parse_duration"]

# DATABRICKS_AUTH_TYPE values (the Databricks SDKs' names), plus azure-identity, this app's older
# name for DefaultAzureCredential (managed identity in Azure, a developer sign-in locally).
DATABRICKS_AUTH_TYPES = ("pat", "oauth-m2m", "azure-msi", "azure-cli", "azure-client-secret", "azure-identity")

# Settings whose value is a secret: read through shared.secrets (Key Vault when KEY_VAULT_URL
# is set, the environment otherwise). The Key Vault secret name is the setting's name in lower
# case with '_' replaced by '-' (DATABRICKS_TOKEN -> databricks-token).
SECRET_SETTINGS = (
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
    "ARM_CLIENT_SECRET",
    "AZURE_OPENAI_API_KEY",
    "OPENAI_API_KEY",
    "ACS_CONNECTION_STRING",
    "TRIAGE_WEBHOOK_USERNAME",
    "TRIAGE_WEBHOOK_PASSWORD",
    "TRIAGE_FEEDBACK_SIGNING_KEY",
    "PAGERDUTY_ROUTING_KEY",
    "TEAMS_WEBHOOK_URL",
    "SLACK_WEBHOOK_URL",
    "TRIAGE_WEBHOOK_URL",
    "TRIAGE_WEBHOOK_SECRET",
)

# Notification channels by name (TRIAGE_NOTIFY_VIA, TRIAGE_ESCALATE_VIA, job tags
# triage.notify_via / triage.escalate_via). A name only ever selects a channel configured here.
CHANNELS = ("email", "pagerduty", "teams", "slack", "webhook")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, setting: str = "duration") -> int:
    """'90s', '15m', '24h', '7d', '2w' or a bare number of seconds -> seconds."""
    t = str(text).strip().lower()
    try:
        if t and t[-1] in _UNITS:
            value = float(t[:-1]) * _UNITS[t[-1]]
        else:
            value = float(t)
    except ValueError:
        raise ConfigError(f"{setting}: {text!r} is not a duration (use e.g. 90s, 15m, 24h, 7d)") from None
    if value < 0:
        raise ConfigError(f"{setting}: {text!r} is negative")
    return int(value)


def _int(env: Mapping[str, str], name: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a whole number") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{name}: {value} is outside {lo}..{hi}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float = 0.0, hi: float = 1.0) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: {value} is outside {lo}..{hi}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(p.strip() for p in raw.replace(";", ",").split(",") if p.strip())


def _channels(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.lower() for n in _list(env, name)))
    unknown = [n for n in names if n not in CHANNELS]
    if unknown:
        raise ConfigError(f"{name}: unknown channel {', '.join(map(repr, unknown))} (use {', '.join(CHANNELS)})")
    return names or default


def _events_url(env: Mapping[str, str]) -> str:
    from urllib.parse import urlsplit

    raw = (env.get("PAGERDUTY_EVENTS_URL") or PAGERDUTY_EVENTS_URL).strip()
    parts = urlsplit(raw)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not parts.hostname or parts.username or parts.password or parts.query \
            or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError(f"PAGERDUTY_EVENTS_URL: {raw!r} is not an https URL like {PAGERDUTY_EVENTS_URL}")
    return raw


def _money(raw: str, name: str) -> float | None:
    raw = (raw or "").strip()
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not an amount in US dollars") from None
    if not 0 <= value <= 10_000_000:
        raise ConfigError(f"{name}: {value} is outside 0..10000000")
    return value


def _price_pair(text: str, name: str, default: tuple[float, float]) -> tuple[float, float]:
    """'0.3' (both) or '0.15,0.60' (first, second)."""
    raw = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not raw:
        return default
    try:
        values = [float(p) for p in raw]
    except ValueError:
        values = []
    if not values or len(values) > 2 or any(not 0 <= v <= 10_000 for v in values):
        raise ConfigError(f"{name}: {text!r} is not a price or two comma-separated prices")
    return (values[0], values[-1])


def _rates(text: str, name: str) -> dict[str, float]:
    """'Standard_DS3_v2=0.75, serverless=4' -> {...}."""
    out: dict[str, float] = {}
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not sep or not key.strip() or not 0 <= rate <= 10_000:
            raise ConfigError(f"{name}: {part!r} is not NODE_TYPE=DBU_PER_HOUR (e.g. Standard_DS3_v2=0.75)")
        out[key.strip()] = rate
    return out


def _duration(env: Mapping[str, str], name: str, default: str) -> int:
    return parse_duration(env.get(name) or default, setting=name)


@dataclass(frozen=True)
class Settings:
    """Plain, non-secret settings. Defaults are the safe ones (shadow mode, no LLM, no email)."""

    mode: str = "shadow"                      # TRIAGE_MODE: shadow | act
    storage: str = ""                         # TRIAGE_STORAGE (see shared.store)
    azure_webjobs_storage: str = ""           # AzureWebJobsStorage (fallback for storage)
    queue_name: str = "triage-requests"       # TRIAGE_QUEUE_NAME
    databricks_host: str = ""                 # DATABRICKS_HOST
    databricks_auth: str = "pat"              # DATABRICKS_AUTH_TYPE (old name DATABRICKS_AUTH): DATABRICKS_AUTH_TYPES
    databricks_client_id: str = ""            # DATABRICKS_CLIENT_ID: a service principal's OAuth client id (oauth-m2m)
    arm_client_id: str = ""                   # ARM_CLIENT_ID: Entra app (azure-client-secret) or user-assigned identity
    arm_tenant_id: str = ""                   # ARM_TENANT_ID: the Entra tenant (azure-client-secret)
    workspaces: tuple[str, ...] = ()          # TRIAGE_WORKSPACES: host or id=host, comma-separated
    max_retries: int = 3                      # TRIAGE_MAX_RETRIES (job tag triage.max_retries wins; cap 10)
    max_workers: int = 16                     # TRIAGE_MAX_WORKERS: ceiling for resized reruns
    node_type_ladder: tuple[str, ...] = ()    # TRIAGE_NODE_TYPE_LADDER: small->large, comma-separated
    spark_conf_allowlist: tuple[str, ...] = (  # TRIAGE_SPARK_CONF_ALLOWLIST
        "spark.sql.shuffle.partitions",
        "spark.driver.maxResultSize",
        "spark.sql.autoBroadcastJoinThreshold",
        "spark.sql.adaptive.enabled",
        "spark.executor.memoryOverhead",
    )
    sweep_schedule: str = "0 */5 * * * *"     # TRIAGE_SWEEP_SCHEDULE (NCRONTAB, read by the host)
    sweep_overlap_s: int = 600                # TRIAGE_SWEEP_OVERLAP
    sweep_max_lookback_s: int = 86400         # TRIAGE_SWEEP_MAX_LOOKBACK
    llm_min_rule_confidence: float = 0.7      # TRIAGE_LLM_MIN_RULE_CONFIDENCE
    llm_max_calls_per_hour: int = 60          # TRIAGE_LLM_MAX_CALLS_PER_HOUR
    llm_timeout_s: float = 20.0               # TRIAGE_LLM_TIMEOUT
    llm_cache_ttl_s: int = 7 * 86400          # TRIAGE_LLM_CACHE_TTL
    llm_max_prompt_tokens: int = 3000         # TRIAGE_LLM_MAX_PROMPT_TOKENS
    azure_openai_endpoint: str = ""           # AZURE_OPENAI_ENDPOINT
    azure_openai_deployment: str = ""         # AZURE_OPENAI_DEPLOYMENT
    openai_api_version: str = ""              # OPENAI_API_VERSION (versioned Azure client when set)
    openai_base_url: str = ""                 # OPENAI_BASE_URL (any OpenAI-compatible endpoint)
    openai_model: str = ""                    # OPENAI_MODEL (model name for OPENAI_BASE_URL)
    key_vault_url: str = ""                   # KEY_VAULT_URL
    secret_cache_ttl_s: int = 300             # TRIAGE_SECRET_CACHE_TTL
    acs_endpoint: str = ""                    # ACS_ENDPOINT (keyless email)
    email_sender: str = ""                    # EMAIL_SENDER
    email_default_to: tuple[str, ...] = ()    # EMAIL_DEFAULT_TO
    email_escalation_to: tuple[str, ...] = () # EMAIL_ESCALATION_TO
    email_window_s: int = 6 * 3600            # TRIAGE_EMAIL_WINDOW: repeated failures -> one email
    public_base_url: str = ""                 # TRIAGE_PUBLIC_BASE_URL: https://<app>.azurewebsites.net
    feedback_link_ttl_s: int = 14 * 86400     # TRIAGE_FEEDBACK_LINK_TTL
    precedent_ttl_s: int = 90 * 86400         # TRIAGE_PRECEDENT_TTL
    hopeless_after: int = 3                   # TRIAGE_HOPELESS_AFTER: failed auto-retries of a fingerprint
    hopeless_window_s: int = 7 * 86400        # TRIAGE_HOPELESS_WINDOW
    max_task_outputs: int = 20                # TRIAGE_MAX_TASK_OUTPUTS: task outputs read per failed run
    notify_via: tuple[str, ...] = ("email",)  # TRIAGE_NOTIFY_VIA: channels for SEND_EMAIL, in order
    escalate_via: tuple[str, ...] = ("email",)  # TRIAGE_ESCALATE_VIA: channels for ESCALATE, in order
    pagerduty_events_url: str = PAGERDUTY_EVENTS_URL  # PAGERDUTY_EVENTS_URL (tests, regional endpoints)
    incident_window_s: int = 1800             # TRIAGE_INCIDENT_WINDOW: escalations that join one incident
    acting_timeout_s: int = 900               # TRIAGE_ACTING_TIMEOUT: then the sweep reconciles the action
    action_attempts: int = 5                  # TRIAGE_ACTION_ATTEMPTS: sends of a transiently failing action
    budget_usd_per_day: float | None = None   # TRIAGE_BUDGET_USD_PER_DAY: reruns + model, per UTC day
    llm_budget_share: float = 0.1             # TRIAGE_LLM_BUDGET_SHARE: the model's part of that budget
    dbu_price_usd: tuple[float, float] = (0.30, 0.45)   # TRIAGE_DBU_PRICE_USD: jobs[,serverless]
    dbu_rates: Mapping[str, float] = field(default_factory=dict)  # TRIAGE_DBU_RATES: NODE=DBU/h, ...
    llm_price_usd_per_1m: tuple[float, float] = (0.15, 0.60)  # TRIAGE_LLM_PRICE_USD_PER_1M_TOKENS: in[,out]
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def acting(self) -> bool:
        return self.mode == "act"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        e = dict(os.environ if env is None else env)
        mode = (e.get("TRIAGE_MODE") or "shadow").strip().lower()
        if mode not in ("shadow", "act"):
            raise ConfigError(f"TRIAGE_MODE: {mode!r} is not 'shadow' or 'act'")
        auth_setting = "DATABRICKS_AUTH_TYPE" if (e.get("DATABRICKS_AUTH_TYPE") or "").strip() else "DATABRICKS_AUTH"
        auth = (e.get("DATABRICKS_AUTH_TYPE") or e.get("DATABRICKS_AUTH") or "pat").strip().lower()
        if auth not in DATABRICKS_AUTH_TYPES:
            raise ConfigError(f"{auth_setting}: {auth!r} is not one of {', '.join(DATABRICKS_AUTH_TYPES)}")
        kwargs = dict(
            mode=mode,
            storage=e.get("TRIAGE_STORAGE", "").strip(),
            azure_webjobs_storage=e.get("AzureWebJobsStorage", "").strip(),
            queue_name=e.get("TRIAGE_QUEUE_NAME") or "triage-requests",
            databricks_host=e.get("DATABRICKS_HOST", "").strip().rstrip("/"),
            databricks_auth=auth,
            databricks_client_id=e.get("DATABRICKS_CLIENT_ID", "").strip(),
            arm_client_id=e.get("ARM_CLIENT_ID", "").strip(),
            arm_tenant_id=e.get("ARM_TENANT_ID", "").strip(),
            workspaces=_list(e, "TRIAGE_WORKSPACES"),
            max_retries=_int(e, "TRIAGE_MAX_RETRIES", 3, 0, 10),
            max_workers=_int(e, "TRIAGE_MAX_WORKERS", 16, 1, 10000),
            node_type_ladder=_list(e, "TRIAGE_NODE_TYPE_LADDER"),
            sweep_schedule=e.get("TRIAGE_SWEEP_SCHEDULE") or cls.sweep_schedule,
            sweep_overlap_s=_duration(e, "TRIAGE_SWEEP_OVERLAP", "10m"),
            sweep_max_lookback_s=_duration(e, "TRIAGE_SWEEP_MAX_LOOKBACK", "24h"),
            llm_min_rule_confidence=_float(e, "TRIAGE_LLM_MIN_RULE_CONFIDENCE", 0.7),
            llm_max_calls_per_hour=_int(e, "TRIAGE_LLM_MAX_CALLS_PER_HOUR", 60, 0),
            llm_timeout_s=float(_int(e, "TRIAGE_LLM_TIMEOUT", 20, 1, 600)),
            llm_cache_ttl_s=_duration(e, "TRIAGE_LLM_CACHE_TTL", "7d"),
            llm_max_prompt_tokens=_int(e, "TRIAGE_LLM_MAX_PROMPT_TOKENS", 3000, 256, 100000),
            azure_openai_endpoint=e.get("AZURE_OPENAI_ENDPOINT", "").strip().rstrip("/"),
            azure_openai_deployment=e.get("AZURE_OPENAI_DEPLOYMENT", "").strip(),
            openai_api_version=e.get("OPENAI_API_VERSION", "").strip(),
            openai_base_url=e.get("OPENAI_BASE_URL", "").strip().rstrip("/"),
            openai_model=e.get("OPENAI_MODEL", "").strip(),
            key_vault_url=e.get("KEY_VAULT_URL", "").strip(),
            secret_cache_ttl_s=_duration(e, "TRIAGE_SECRET_CACHE_TTL", "5m"),
            acs_endpoint=e.get("ACS_ENDPOINT", "").strip().rstrip("/"),
            email_sender=e.get("EMAIL_SENDER", "").strip(),
            email_default_to=_list(e, "EMAIL_DEFAULT_TO"),
            email_escalation_to=_list(e, "EMAIL_ESCALATION_TO"),
            email_window_s=_duration(e, "TRIAGE_EMAIL_WINDOW", "6h"),
            public_base_url=e.get("TRIAGE_PUBLIC_BASE_URL", "").strip().rstrip("/"),
            feedback_link_ttl_s=_duration(e, "TRIAGE_FEEDBACK_LINK_TTL", "14d"),
            precedent_ttl_s=_duration(e, "TRIAGE_PRECEDENT_TTL", "90d"),
            hopeless_after=_int(e, "TRIAGE_HOPELESS_AFTER", 3, 1, 100),
            hopeless_window_s=_duration(e, "TRIAGE_HOPELESS_WINDOW", "7d"),
            max_task_outputs=_int(e, "TRIAGE_MAX_TASK_OUTPUTS", 20, 1, 1000),
            notify_via=_channels(e, "TRIAGE_NOTIFY_VIA", ("email",)),
            escalate_via=_channels(e, "TRIAGE_ESCALATE_VIA", ("email",)),
            pagerduty_events_url=_events_url(e),
            incident_window_s=_duration(e, "TRIAGE_INCIDENT_WINDOW", "30m"),
            acting_timeout_s=max(60, _duration(e, "TRIAGE_ACTING_TIMEOUT", "15m")),
            action_attempts=_int(e, "TRIAGE_ACTION_ATTEMPTS", 5, 1, 20),
            budget_usd_per_day=_money(e.get("TRIAGE_BUDGET_USD_PER_DAY", ""), "TRIAGE_BUDGET_USD_PER_DAY"),
            llm_budget_share=_float(e, "TRIAGE_LLM_BUDGET_SHARE", 0.1),
            dbu_price_usd=_price_pair(e.get("TRIAGE_DBU_PRICE_USD", ""), "TRIAGE_DBU_PRICE_USD", (0.30, 0.45)),
            dbu_rates=_rates(e.get("TRIAGE_DBU_RATES", ""), "TRIAGE_DBU_RATES"),
            llm_price_usd_per_1m=_price_pair(e.get("TRIAGE_LLM_PRICE_USD_PER_1M_TOKENS", ""),
                                             "TRIAGE_LLM_PRICE_USD_PER_1M_TOKENS", (0.15, 0.60)),
            extra=e,
        )
        if e.get("TRIAGE_SPARK_CONF_ALLOWLIST"):
            kwargs["spark_conf_allowlist"] = _list(e, "TRIAGE_SPARK_CONF_ALLOWLIST")
        return cls(**kwargs)

    @property
    def llm_configured(self) -> bool:
        return bool((self.azure_openai_endpoint and self.azure_openai_deployment) or self.openai_base_url)
