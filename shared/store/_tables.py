"""Azure Table Storage backend of the decision store (``azure-data-tables``).

Tables: ``TriageDecisions`` (PartitionKey = job id, RowKey = decision key) and ``TriageState``
(PartitionKey = kind, RowKey = key), both with keys escaped and properties bounded by
``shared.store._codec``. Claims are inserts (409 = somebody else won), updates are replaces
conditional on the etag (412 = somebody else wrote first). Transient faults are retried by
azure-core's retry policy, configured on the client. No azure-core exception leaves this module:
conflicts become ``Claim``/``Updated``/``None`` results, faults ``StoreError``/``StoreUnavailable``.

The Azure SDK is imported inside the functions that use it, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any, Mapping

from shared.store import _codec as codec
from shared.errors import StoreError, StoreUnavailable
from shared.store.base import Claim, DecisionRecord, StateEntry, Store, Updated, now_ms

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient, TableServiceClient

__all__ = ["TablesStore", "DEFAULT_CLIENT_OPTIONS", "normalize_connection_string"]

log = logging.getLogger(__name__)

# azure-core retry and transport settings: transient faults (connection errors, 408, 429, 5xx)
# are retried with exponential back-off. Tests pass smaller values.
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 4,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 8,
    "connection_timeout": 10,
    "read_timeout": 30,
}

_INT64_FIELDS = ("run_id", "not_before", "created_at", "updated_at", "schema_version", "expires_at")
_WRITE_ID = "write_id"   # who wrote the entity: tells our own retried write from a rival's


def normalize_connection_string(conn_str: str) -> str:
    """Trim a connection string; any form of ``UseDevelopmentStorage=true`` (other settings
    after it, a trailing ``;``, other casing) becomes exactly the form the SDK expands to the
    local emulator's well-known development account."""
    text = (conn_str or "").strip()
    parts = {}
    for piece in text.split(";"):
        if "=" in piece:
            name, _, value = piece.partition("=")
            parts[name.strip().lower()] = value.strip()
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return "UseDevelopmentStorage=true"
    return text


def _client_options(options: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(DEFAULT_CLIENT_OPTIONS)
    merged.update({k: v for k, v in options.items() if v is not None})
    return merged


def _first_line(text: Any, limit: int = 200) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[:limit] + "…"


def _fault(exc: BaseException, what: str) -> StoreError:
    """Translate an azure-core exception into our tree (the caller raises it ``from exc``)."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    if isinstance(exc, ClientAuthenticationError):
        return StoreUnavailable(f"{what}: the storage account refused the credentials "
                                f"({type(exc).__name__}: {_first_line(exc)})")
    if isinstance(exc, ServiceRequestError):
        return StoreUnavailable(f"{what}: no connection to the storage account "
                                f"({type(exc).__name__}: {_first_line(exc)})")
    if isinstance(exc, HttpResponseError):
        code = getattr(exc, "error_code", None)
        status = getattr(exc, "status_code", None)
        detail = f"HTTP {status}" + (f" {code}" if code else "")
        if status in (408, 429, 500, 502, 503, 504):
            return StoreUnavailable(f"{what}: the storage service kept failing ({detail})")
        return StoreError(f"{what}: the storage service refused the call ({detail})")
    return StoreError(f"{what}: {type(exc).__name__}: {_first_line(exc)}")


def _to_entity(pk: str, rk: str, props: Mapping[str, Any], write_id: str) -> dict[str, Any]:
    from azure.data.tables import EdmType, EntityProperty

    entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk}
    for name, value in props.items():
        entity[name] = EntityProperty(int(value), EdmType.INT64) if name in _INT64_FIELDS else value
    entity[_WRITE_ID] = write_id
    return entity


def _from_entity(entity: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Plain properties of a read entity (INT64 unwrapped, keys and write id dropped), and its etag."""
    props: dict[str, Any] = {}
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey", _WRITE_ID):
            continue
        props[name] = getattr(value, "value", value) if type(value).__name__ == "EntityProperty" else value
    metadata = getattr(entity, "metadata", {}) or {}
    return props, metadata.get("etag")


class TablesStore(Store):
    """The decision store in Azure Table Storage.

    :param endpoint: the table service URL, ``https://<account>.table.core.windows.net``.
    :param credential: a token credential (e.g. ``DefaultAzureCredential()``), an
        ``AzureNamedKeyCredential`` or an ``AzureSasCredential``.
    :param table_prefix: prepended to both table names (tests use it to get private tables).
    :param options: azure-core client options (``retry_total``, ``retry_backoff_factor``,
        ``retry_backoff_max``, ``connection_timeout``, ``read_timeout``, ``transport``...),
        over ``DEFAULT_CLIENT_OPTIONS``.
    """

    def __init__(self, endpoint: str, credential: TokenCredential, *, table_prefix: str = "", **options: Any) -> None:
        shown = endpoint.split("?")[0] if isinstance(endpoint, str) else endpoint   # a query may hold a SAS
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise ValueError(f"endpoint {shown!r} is not a table service URL "
                             "(https://<account>.table.core.windows.net)")
        if credential is None:
            raise ValueError("credential is required: pass DefaultAzureCredential() for identity-based "
                             "access, or use TablesStore.from_connection_string")
        from azure.data.tables import TableServiceClient

        try:
            service = TableServiceClient(endpoint=endpoint.rstrip("/"), credential=credential,
                                         **_client_options(options))
        except ValueError as exc:
            raise ValueError(f"cannot use table endpoint {shown!r}: {exc}") from exc
        self._setup(service, table_prefix)

    @classmethod
    def from_connection_string(cls, conn_str: str, *, table_prefix: str = "", **options: Any) -> "TablesStore":
        """From an Azure Storage connection string (``UseDevelopmentStorage=true`` included)."""
        from azure.data.tables import TableServiceClient

        try:
            service = TableServiceClient.from_connection_string(normalize_connection_string(conn_str),
                                                                **_client_options(options))
        except (ValueError, KeyError) as exc:
            # never echo the connection string: it holds the account key
            raise ValueError(f"the storage connection string is malformed ({type(exc).__name__}); "
                             "expected e.g. DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...") from exc
        store = cls.__new__(cls)
        store._setup(service, table_prefix)
        return store

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> "TablesStore":
        """From ``settings.storage`` or, when unset, ``settings.azure_webjobs_storage``."""
        value = (getattr(settings, "storage", "") or getattr(settings, "azure_webjobs_storage", "") or "").strip()
        if value.startswith(("https://", "http://")):
            from azure.identity import DefaultAzureCredential

            return cls(value, DefaultAzureCredential(), **options)
        return cls.from_connection_string(value, **options)

    def _setup(self, service: "TableServiceClient", table_prefix: str) -> None:
        if table_prefix and not (table_prefix.isalnum() and table_prefix[0].isalpha() and table_prefix.isascii()):
            raise ValueError("table_prefix must be ASCII letters and digits, starting with a letter")
        self._service = service
        self.endpoint = service.url.split("?")[0].rstrip("/")
        self._decisions_name = f"{table_prefix}{codec.DECISIONS_TABLE}"
        self._state_name = f"{table_prefix}{codec.STATE_TABLE}"
        self._decisions: TableClient = service.get_table_client(self._decisions_name)
        self._state: TableClient = service.get_table_client(self._state_name)

    @property
    def credential(self) -> Any:
        """The credential the client signs requests with (never printed)."""
        return self._service.credential

    def __repr__(self) -> str:
        return f"TablesStore({self.endpoint!r}, tables={self._decisions_name!r}, {self._state_name!r})"

    def exists(self) -> bool:
        """True when the decisions table is there: one read of at most one entity, nothing
        created (a reader-only identity may call it). StoreUnavailable when unreachable."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            next(iter(self._decisions.query_entities("PartitionKey eq '~'", results_per_page=1)), None)
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise StoreUnavailable(str(_fault(exc, f"reading table {self._decisions_name}"))) from exc
        return True

    @property
    def where(self) -> str:
        return f"{self.endpoint}/{self._decisions_name}"

    def check(self) -> None:
        """Create both tables when absent: the start-up probe. StoreUnavailable when unreachable."""
        from azure.core.exceptions import AzureError

        for name in (self._decisions_name, self._state_name):
            try:
                self._service.create_table_if_not_exists(name)
            except AzureError as exc:
                err = _fault(exc, f"creating table {name}")
                raise StoreUnavailable(str(err)) from exc

    def close(self) -> None:
        for client in (self._decisions, self._state, self._service):
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing is best effort  # pragma: no cover
                pass

    # --- helpers --------------------------------------------------------------------------
    def _read(self, table: "TableClient", pk: str, rk: str) -> Any | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return table.get_entity(partition_key=pk, row_key=rk)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _fault(exc, f"read {table.table_name}") from exc

    def _query(self, table: "TableClient", query: str) -> list[Any]:
        from azure.core.exceptions import AzureError

        try:
            return list(table.query_entities(query))
        except AzureError as exc:
            raise _fault(exc, f"query {table.table_name}") from exc

    @staticmethod
    def _record(entity: Any) -> DecisionRecord:
        props, etag = _from_entity(entity)
        return codec.props_to_record(props, etag)

    def _replace(self, table: "TableClient", entity: dict[str, Any], etag: str) -> str | None:
        """Replace if the etag matches: the new etag, or None when it did not match / is gone."""
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            meta = table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                       match_condition=MatchConditions.IfNotModified)
            return meta.get("etag")
        except (ResourceModifiedError, ResourceNotFoundError):
            # A retried request whose first attempt went through looks like a conflict: tell
            # our own write from a rival's by the write id.
            current = self._read(table, entity["PartitionKey"], entity["RowKey"])
            if current is not None and current.get(_WRITE_ID) == entity[_WRITE_ID]:
                return current.metadata.get("etag")
            return None
        except AzureError as exc:
            raise _fault(exc, f"update {table.table_name}") from exc

    def _insert(self, table: "TableClient", entity: dict[str, Any]) -> tuple[str | None, Any | None]:
        """Insert if absent: (new etag, None), or (None, the entity already there)."""
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            meta = table.create_entity(entity)
            return meta.get("etag"), None
        except ResourceExistsError:
            current = self._read(table, entity["PartitionKey"], entity["RowKey"])
            if current is not None and current.get(_WRITE_ID) == entity[_WRITE_ID]:
                return current.metadata.get("etag"), None      # our own retried insert
            if current is None:
                raise StoreError(f"insert into {table.table_name}: the row exists but cannot be read") from None
            return None, current
        except AzureError as exc:
            raise _fault(exc, f"insert into {table.table_name}") from exc

    # --- decisions ------------------------------------------------------------------------
    def claim(self, record: DecisionRecord) -> Claim:
        props = codec.record_to_props(record)
        pk, rk = codec.job_partition(record.job_id), codec.escape_key(record.decision_key)
        etag, winner = self._insert(self._decisions, _to_entity(pk, rk, props, uuid.uuid4().hex))
        if winner is not None:
            return Claim(won=False, record=self._record(winner))
        return Claim(won=True, record=codec.props_to_record(props, etag))

    def get(self, decision_key: str, job_id: str | None = None) -> DecisionRecord | None:
        rk = codec.escape_key(decision_key)
        if job_id is not None:
            entity = self._read(self._decisions, codec.job_partition(job_id), rk)
            return self._record(entity) if entity is not None else None
        found = [self._record(e) for e in self._query(self._decisions, f"RowKey eq '{rk}'")]
        found.sort(key=lambda r: r.created_at, reverse=True)
        return found[0] if found else None

    def update(self, record: DecisionRecord) -> Updated:
        new, pk, rk, props = codec.prepare_record_update(record, now_ms())
        etag = self._replace(self._decisions, _to_entity(pk, rk, props, uuid.uuid4().hex), record.etag)
        if etag is not None:
            return Updated(ok=True, record=codec.props_to_record(props, etag))
        current = self._read(self._decisions, pk, rk)
        return Updated(ok=False, record=self._record(current) if current is not None else None)

    def list(self, job_id: str | None = None, since_ms: int | None = None,
             until_ms: int | None = None, limit: int | None = None) -> list[DecisionRecord]:
        clauses = []
        if job_id is not None:
            clauses.append(f"PartitionKey eq '{codec.job_partition(job_id)}'")   # escaped: no quotes
        if since_ms is not None:
            clauses.append(f"created_at ge {int(since_ms)}L")
        if until_ms is not None:
            clauses.append(f"created_at lt {int(until_ms)}L")
        if clauses:
            entities = self._query(self._decisions, " and ".join(clauses))
        else:
            from azure.core.exceptions import AzureError

            try:
                entities = list(self._decisions.list_entities())
            except AzureError as exc:
                raise _fault(exc, f"list {self._decisions_name}") from exc
        records = [self._record(e) for e in entities]
        records.sort(key=lambda r: (r.created_at, codec.escape_key(r.decision_key)), reverse=True)
        return records if limit is None else records[: max(0, int(limit))]

    # --- state ----------------------------------------------------------------------------
    def state_get(self, kind: str, key: str) -> StateEntry | None:
        entity = self._read(self._state, codec.escape_key(kind), codec.escape_key(key))
        if entity is None:
            return None
        props, etag = _from_entity(entity)
        entry = codec.props_to_state(props, etag)
        if entry.expires_at and entry.expires_at <= now_ms():
            return None
        return entry

    def state_put(self, kind: str, key: str, value: Mapping[str, Any], *, etag: str | None = None,
                  if_absent: bool = False, ttl_s: int | None = None) -> StateEntry | None:
        now = now_ms()
        pk, rk, props = codec.prepare_state_write(kind, key, value, etag=etag, if_absent=if_absent, ttl_s=ttl_s,
                                                  now=now)
        entity = _to_entity(pk, rk, props, uuid.uuid4().hex)
        if if_absent:
            new_etag, current = self._insert(self._state, entity)
            if current is not None:
                cur_props, cur_etag = _from_entity(current)
                expired = int(cur_props.get("expires_at") or 0)
                if not expired or expired > now or not cur_etag:
                    return None
                new_etag = self._replace(self._state, entity, cur_etag)   # expired counts as absent
        elif etag:
            new_etag = self._replace(self._state, entity, etag)
        else:
            from azure.core.exceptions import AzureError
            from azure.data.tables import UpdateMode

            try:
                new_etag = self._state.upsert_entity(entity, mode=UpdateMode.REPLACE).get("etag")
            except AzureError as exc:
                raise _fault(exc, f"write {self._state_name}") from exc
        if new_etag is None:
            return None
        return codec.props_to_state(props, new_etag)
