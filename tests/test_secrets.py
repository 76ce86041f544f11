import logging
import secrets as _random
import subprocess
import sys
from pathlib import Path

import pytest

import shared.secrets as secrets_mod
from shared.config import SECRET_SETTINGS, Settings
from shared.errors import ConfigError, SecretError
from shared.secrets import SecretProvider, is_key_vault_reference, key_vault_name
from tests.fakes.azure_services import FakeCredential, KeyVaultService

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _token() -> str:
    return "dapi" + _random.token_hex(16)


def _kv_provider(service: KeyVaultService, *, env=None, ttl="5m", clock=None):
    settings = Settings.from_env({"KEY_VAULT_URL": service.vault_url, "TRIAGE_SECRET_CACHE_TTL": ttl, **(env or {})})
    credential = FakeCredential()
    provider = SecretProvider.from_settings(settings, credential=credential, transport=service.transport,
                                            clock=clock or Clock())
    return provider, credential


def test_secrets_exports_exist():
    assert all(hasattr(secrets_mod, name) for name in secrets_mod.__all__)


@pytest.mark.parametrize("setting,name", [("DATABRICKS_TOKEN", "databricks-token"),
                                          ("TRIAGE_FEEDBACK_SIGNING_KEY", "triage-feedback-signing-key"),
                                          ("ACS_CONNECTION_STRING", "acs-connection-string")])
def test_key_vault_name_lower_case_with_dashes(setting, name):
    assert key_vault_name(setting) == name


# --- environment mode ---------------------------------------------------------------------

def test_get_from_environment_without_key_vault():
    token = _token()
    provider = SecretProvider.from_settings(Settings.from_env({"DATABRICKS_TOKEN": token}))
    assert provider.source == "environment"
    assert provider.get("DATABRICKS_TOKEN") == token
    assert provider.get_optional("OPENAI_API_KEY") is None


def test_get_missing_secret_names_it_never_a_value():
    token = _token()
    provider = SecretProvider.from_settings(Settings.from_env({"OPENAI_API_KEY": token, "DATABRICKS_TOKEN": " "}))
    with pytest.raises(SecretError) as info:
        provider.get("DATABRICKS_TOKEN")
    assert "DATABRICKS_TOKEN" in str(info.value) and "databricks-token" in str(info.value)
    assert token not in str(info.value)


def test_get_unresolved_key_vault_reference_is_an_error():
    ref = "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/databricks-token/)"
    provider = SecretProvider.from_settings(Settings.from_env({"DATABRICKS_TOKEN": ref}))
    assert is_key_vault_reference(ref)
    with pytest.raises(SecretError, match="DATABRICKS_TOKEN: the app setting is a Key Vault reference") as info:
        provider.get_optional("DATABRICKS_TOKEN")
    assert "SecretUri" not in str(info.value)


def test_get_unknown_setting_lists_known_ones():
    provider = SecretProvider.from_settings(Settings.from_env({}))
    with pytest.raises(ValueError) as info:
        provider.get("DATABRICKS_HOST")
    assert all(name in str(info.value) for name in SECRET_SETTINGS)


def test_from_settings_bad_vault_url_is_config_error():
    with pytest.raises(ConfigError, match="KEY_VAULT_URL must look like https://"):
        SecretProvider.from_settings(Settings.from_env({"KEY_VAULT_URL": "http://kv.vault.azure.net"}))


def test_scrub_replaces_values_handed_out():
    value = "Zq9" + _random.token_urlsafe(24)
    provider = SecretProvider.from_settings(Settings.from_env({"TRIAGE_WEBHOOK_PASSWORD": value}))
    assert provider.scrub(f"login failed for {value}!") == f"login failed for {value}!"  # not handed out yet
    provider.get("TRIAGE_WEBHOOK_PASSWORD")
    assert provider.scrub(f"login failed for {value}!") == "login failed for [REDACTED:triage-webhook-password]!"
    assert value not in repr(provider)


# --- Key Vault mode -------------------------------------------------------------------------

def test_key_vault_challenge_then_secret_bundle():
    token = _token()
    service = KeyVaultService({"databricks-token": token})
    provider, credential = _kv_provider(service)
    assert provider.source == "key-vault"
    assert provider.get("DATABRICKS_TOKEN") == token
    first, second = service.transport.requests[:2]
    assert "Authorization" not in first.headers and service.challenges == 1
    assert second.headers["Authorization"] == "Bearer fake-access-token"
    assert second.url.startswith(f"{service.vault_url}/secrets/databricks-token")
    assert "api-version=" in second.url
    assert credential.scopes == [("https://vault.azure.net/.default",)]


def test_key_vault_value_cached_within_ttl():
    service = KeyVaultService({"databricks-token": _token()})
    clock = Clock()
    provider, _ = _kv_provider(service, ttl="5m", clock=clock)
    provider.get("DATABRICKS_TOKEN")
    clock.t += 299
    provider.get("DATABRICKS_TOKEN")
    assert service.gets == {"databricks-token": 1}


def test_key_vault_rotation_picked_up_after_ttl():
    old, new = _token(), _token()
    service = KeyVaultService({"databricks-token": old})
    clock = Clock()
    provider, _ = _kv_provider(service, ttl="5m", clock=clock)
    assert provider.get("DATABRICKS_TOKEN") == old
    service.secrets["databricks-token"] = new
    clock.t += 120
    assert provider.get("DATABRICKS_TOKEN") == old
    clock.t += 181
    assert provider.get("DATABRICKS_TOKEN") == new
    assert service.gets == {"databricks-token": 2}


def test_key_vault_missing_secret_error_names_it():
    service = KeyVaultService({})
    provider, _ = _kv_provider(service)
    with pytest.raises(SecretError) as info:
        provider.get("TRIAGE_FEEDBACK_SIGNING_KEY")
    msg = str(info.value)
    assert "TRIAGE_FEEDBACK_SIGNING_KEY" in msg and "'triage-feedback-signing-key'" in msg
    assert service.vault_url in msg


def test_key_vault_missing_optional_secret_is_none_and_cached():
    service = KeyVaultService({})
    provider, _ = _kv_provider(service)
    assert provider.get_optional("OPENAI_API_KEY") is None
    assert provider.get_optional("OPENAI_API_KEY") is None
    assert service.gets == {"openai-api-key": 1}


def test_key_vault_set_app_settings_are_not_read(caplog):
    plain = _token()
    service = KeyVaultService({})
    provider, _ = _kv_provider(service, env={"DATABRICKS_TOKEN": plain})
    with caplog.at_level(logging.WARNING, logger="shared.secrets"):
        with pytest.raises(SecretError, match="app settings are not read") as info:
            provider.get("DATABRICKS_TOKEN")
    assert plain not in str(info.value)
    assert "ignoring app setting DATABRICKS_TOKEN" in caplog.text and plain not in caplog.text


def test_key_vault_value_wins_over_app_setting():
    plain, vaulted = _token(), _token()
    service = KeyVaultService({"databricks-token": vaulted})
    provider, _ = _kv_provider(service, env={"DATABRICKS_TOKEN": plain})
    assert provider.get("DATABRICKS_TOKEN") == vaulted


def test_key_vault_outage_serves_cached_value(caplog):
    token = _token()
    service = KeyVaultService({"databricks-token": token})
    clock = Clock()
    provider, _ = _kv_provider(service, ttl="5m", clock=clock)
    provider.get("DATABRICKS_TOKEN")
    service.faults = [503] * 10          # more than the SDK's retries
    clock.t += 301
    with caplog.at_level(logging.WARNING, logger="shared.secrets"):
        assert provider.get("DATABRICKS_TOKEN") == token
    assert "serving the cached value" in caplog.text and token not in caplog.text
    assert service.gets["databricks-token"] > 2  # the SDK retried the 503s


def test_key_vault_outage_without_cached_value_is_secret_error():
    service = KeyVaultService({"databricks-token": _token()})
    service.faults = [503] * 10
    provider, _ = _kv_provider(service)
    with pytest.raises(SecretError, match=r"DATABRICKS_TOKEN: cannot read 'databricks-token' .*HTTP 503"):
        provider.get("DATABRICKS_TOKEN")


def test_key_vault_forbidden_says_which_role():
    service = KeyVaultService({"databricks-token": _token()})
    service.faults = [403]
    provider, _ = _kv_provider(service)
    with pytest.raises(SecretError, match="Key Vault Secrets User"):
        provider.get("DATABRICKS_TOKEN")


def test_import_does_not_load_azure_sdks():
    code = ("import sys, shared.secrets, shared.signing, shared.notify; "
            "bad = [m for m in ('azure.identity', 'azure.keyvault.secrets', 'azure.communication.email', "
            "'requests', 'openai') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_key_vault_concurrent_readers_fetch_once():
    from concurrent.futures import ThreadPoolExecutor

    token = _token()
    service = KeyVaultService({"databricks-token": token, "openai-api-key": _token()})
    provider, _ = _kv_provider(service)
    names = ["DATABRICKS_TOKEN", "OPENAI_API_KEY"] * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        values = list(pool.map(provider.get, names))
    assert values[0::2] == [token] * 8
    assert service.gets == {"databricks-token": 1, "openai-api-key": 1}
