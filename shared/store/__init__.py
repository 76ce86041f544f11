"""The decision store: one interface, two backends (Azure Table Storage, SQLite).

CONTRACT (implemented by ``shared/store/_tables.py`` and ``shared/store/_sqlite.py``;
``open_store(settings)`` picks one from TRIAGE_STORAGE — see README "Storage").

Tables (design doc): ``TriageDecisions`` (PartitionKey job id, RowKey decision key) and
``TriageState`` (PartitionKey kind: watermark / llmcache / lineage / counter / email / ...,
RowKey the key within that kind). Writes that claim work are conditional.

No Azure SDK exception leaves this module family: conflicts are typed results
(``Claim``, ``Updated``); outages raise ``StoreError``/``StoreUnavailable``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError, StoreError, StoreMissing, StoreUnavailable
from shared.store._sqlite import SqliteStore
from shared.store._tables import TablesStore, normalize_connection_string
from shared.store import base
from shared.store.base import *  # noqa: F403 - the contract is this area's public face
from shared.store.base import Store

if TYPE_CHECKING:  # pragma: no cover
    from azure.core.credentials import TokenCredential

    from shared.config import Settings

__all__ = [*base.__all__, "SqliteStore", "TablesStore", "normalize_connection_string", "storage_choice", "open_store"]

log = logging.getLogger(__name__)


def storage_choice(settings: Settings) -> tuple[str, str, str]:
    """(backend, value, setting) for the settings: backend is "tables-key" (connection string),
    "tables-identity" (account URL) or "sqlite" (file path); setting is the name to check."""
    storage = (getattr(settings, "storage", "") or "").strip()
    setting = "TRIAGE_STORAGE"
    if not storage:
        extra = getattr(settings, "extra", None) or {}
        webjobs = (getattr(settings, "azure_webjobs_storage", "") or "").strip()
        if webjobs:
            storage, setting = webjobs, "AzureWebJobsStorage"
        elif (extra.get("AzureWebJobsStorage__tableServiceUri") or "").strip():
            storage = extra["AzureWebJobsStorage__tableServiceUri"].strip()
            setting = "AzureWebJobsStorage__tableServiceUri"
        elif (extra.get("AzureWebJobsStorage__accountName") or "").strip():
            storage = f"https://{extra['AzureWebJobsStorage__accountName'].strip()}.table.core.windows.net"
            setting = "AzureWebJobsStorage__accountName"
        else:
            return "sqlite", os.path.join(".triage", "triage.db"), setting
    if storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///"):]
        if not path or path == ":memory:":
            raise ConfigError(f"{setting}: give a database file, e.g. sqlite:///.triage/triage.db")
        return "sqlite", path, setting
    if storage.startswith("https://"):
        return "tables-identity", storage, setting
    lowered = storage.lower()
    if "=" in storage and any(k in lowered for k in ("usedevelopmentstorage", "accountname", "tableendpoint",
                                                     "sharedaccesssignature")):
        return "tables-key", storage, setting
    raise ConfigError(f"{setting}: not an Azure Storage connection string, an https:// table account URL "
                      "or a sqlite:/// URL")


def _unreachable(exc: BaseException, where: str, setting: str) -> StoreUnavailable:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "failed to retrieve a token from the included credentials" in text or "authentication unavailable" in text:
        return StoreUnavailable(f"no Azure credential found for the decision store at {where}: run `az login`, "
                                f"or set {setting} to a connection string - {text[:900]}")
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StoreUnavailable(f"the decision store at {where} is unreachable; check {setting} ({reason})")


def open_store(settings: Settings, *, check: bool = True, credential: TokenCredential | None = None,
               must_exist: bool = False, **options: Any) -> Store:
    """Pick the backend from settings.storage (TRIAGE_STORAGE), else AzureWebJobsStorage,
    else a SQLite file under ./.triage/. Raises StoreUnavailable naming the setting to check.

    ``check`` (default) creates the tables and so proves the store is reachable. ``must_exist``
    (for readers; use with ``check=False``) creates nothing: a SQLite file or a decisions table
    that is not there raises ``StoreMissing`` naming it (a typo'd path must not become a new,
    empty store; a reader-only identity cannot create tables anyway). ``credential``
    replaces DefaultAzureCredential for an account URL; ``options`` go to the Table Storage
    client (e.g. ``retry_total``, ``retry_backoff_factor``, ``table_prefix``)."""
    backend, value, setting = storage_choice(settings)
    if backend == "sqlite":
        store: Store = SqliteStore(value)
        where = str(getattr(store, "path", value))
    else:
        try:
            if backend == "tables-identity":
                if credential is None:
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                store = TablesStore(value, credential, **options)
            else:
                store = TablesStore.from_connection_string(value, **options)
        except ValueError as exc:
            raise ConfigError(f"{setting}: {exc}") from exc
        where = getattr(store, "endpoint", "")
    if must_exist and not check:
        try:
            found = store.exists()  # type: ignore[attr-defined]
        except StoreError as exc:
            store.close()
            raise _unreachable(exc, where, setting) from exc
        if not found:
            store.close()
            what = f"no SQLite file {value}" if backend == "sqlite" else f"no decisions table at {store.where}"  # type: ignore[attr-defined]
            raise StoreMissing(f"no decision store: {what} (check {setting}; nothing was created)")
    if check:
        try:
            store.check()  # type: ignore[attr-defined]
        except StoreError as exc:
            store.close()
            raise _unreachable(exc, where, setting) from exc
    log.info("decision store: %s", store)
    return store
