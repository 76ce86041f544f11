"""SQLite backend of the decision store, for local use without Azure (standard library only).

Safe across threads and processes: one connection per thread (re-opened after a fork), WAL
journal, a busy timeout, and ``BEGIN IMMEDIATE`` around every read-decide-write so that two
writers never both win. Rows mirror the Table Storage entities: the same escaped keys and the
same bounded properties (``shared.store._codec``), kept as one JSON document per row.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from shared.store import _codec as codec
from shared.errors import StoreError, StoreUnavailable
from shared.store.base import Claim, DecisionRecord, StateEntry, Store, Updated, now_ms

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {codec.DECISIONS_TABLE} (
    PartitionKey TEXT NOT NULL,
    RowKey       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    etag         TEXT NOT NULL,
    entity       TEXT NOT NULL,
    PRIMARY KEY (PartitionKey, RowKey)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {codec.DECISIONS_TABLE}_created ON {codec.DECISIONS_TABLE} (created_at);
CREATE INDEX IF NOT EXISTS {codec.DECISIONS_TABLE}_rowkey ON {codec.DECISIONS_TABLE} (RowKey);
CREATE TABLE IF NOT EXISTS {codec.STATE_TABLE} (
    PartitionKey TEXT NOT NULL,
    RowKey       TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    etag         TEXT NOT NULL,
    entity       TEXT NOT NULL,
    PRIMARY KEY (PartitionKey, RowKey)
) WITHOUT ROWID;
"""

_D = codec.DECISIONS_TABLE
_S = codec.STATE_TABLE


def _new_etag() -> str:
    return f'W/"{uuid.uuid4().hex}"'


class SqliteStore(Store):
    """The decision store in one SQLite file.

    :param path: the database file; its directory is created when missing.
    :param busy_timeout_s: how long a writer waits for another one before giving up.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 30.0) -> None:
        text = os.fspath(path)
        if not text or text == ":memory:" or text.startswith("file:"):
            raise ValueError("SqliteStore needs a file path (an in-memory database is not shared "
                             "between threads or processes); e.g. sqlite:///.triage/triage.db")
        if busy_timeout_s <= 0:
            raise ValueError("busy_timeout_s must be positive")
        self.path = Path(text).expanduser().absolute()
        self._timeout = float(busy_timeout_s)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pid = os.getpid()
        self._conns: list[sqlite3.Connection] = []
        self._ready = False
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "SqliteStore":
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        if not url.startswith("sqlite:///"):
            raise ValueError(f"{url!r} is not a sqlite:/// URL (e.g. sqlite:///.triage/triage.db)")
        return cls(url[len("sqlite:///"):], **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings) -> "SqliteStore":
        storage = getattr(settings, "storage", "") or ""
        if storage.startswith("sqlite:///"):
            return cls.from_url(storage)
        return cls(Path(".triage") / "triage.db")

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # --- connections ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the store is closed")
        if os.getpid() != self._pid:          # forked: never share a connection with the parent
            self._local = threading.local()
            self._conns = []
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=self._timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
            if not self._ready:
                self._initialise(conn)
                self._ready = True
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the SQLite store {self.path}: {exc}") from exc
        self._local.conn = conn
        with self._lock:
            self._conns.append(conn)
        return conn

    def _initialise(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the schema. Switching the journal mode can answer "database is locked"
        at once, without waiting for the busy timeout, when several processes open a new file
        together: retry that within the timeout."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _tx(self, write: bool) -> Iterator[sqlite3.Connection]:
        """A transaction: ``BEGIN IMMEDIATE`` for writes (takes the write lock up front)."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:  # pragma: no cover - the original error matters more
                    pass
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"SQLite store {self.path}: {exc}") from exc
            raise

    def exists(self) -> bool:
        """True when the database file is there (nothing is created)."""
        return self.path.is_file()

    def check(self) -> None:
        """Open the file and create the tables; StoreUnavailable when that is impossible."""
        try:
            with self._tx(write=False) as conn:
                conn.execute(f"SELECT COUNT(*) FROM {_S} WHERE 0").fetchone()
        except StoreUnavailable:
            raise
        except StoreError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
            self._closed = True
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - closing is best effort
                pass
        self._local = threading.local()

    # --- decisions ------------------------------------------------------------------------
    @staticmethod
    def _row_to_record(row: tuple[str, str] | None) -> DecisionRecord | None:
        if row is None:
            return None
        entity, etag = row
        return codec.props_to_record(json.loads(entity), etag)

    def claim(self, record: DecisionRecord) -> Claim:
        props = codec.record_to_props(record)
        pk, rk = codec.job_partition(record.job_id), codec.escape_key(record.decision_key)
        etag = _new_etag()
        with self._tx(write=True) as conn:
            cur = conn.execute(
                f"INSERT INTO {_D} (PartitionKey, RowKey, created_at, etag, entity) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (PartitionKey, RowKey) DO NOTHING",
                (pk, rk, props["created_at"], etag, json.dumps(props, ensure_ascii=False)),
            )
            if cur.rowcount == 1:
                return Claim(won=True, record=codec.props_to_record(props, etag))
            row = conn.execute(f"SELECT entity, etag FROM {_D} WHERE PartitionKey = ? AND RowKey = ?",
                               (pk, rk)).fetchone()
        winner = self._row_to_record(row)
        if winner is None:  # pragma: no cover - a row cannot vanish inside the transaction
            raise StoreError(f"decision {record.decision_key}: claim conflicted but no row was found")
        return Claim(won=False, record=winner)

    def get(self, decision_key: str, job_id: str | None = None) -> DecisionRecord | None:
        rk = codec.escape_key(decision_key)
        with self._tx(write=False) as conn:
            if job_id is not None:
                row = conn.execute(f"SELECT entity, etag FROM {_D} WHERE PartitionKey = ? AND RowKey = ?",
                                   (codec.job_partition(job_id), rk)).fetchone()
            else:
                row = conn.execute(f"SELECT entity, etag FROM {_D} WHERE RowKey = ? "
                                   "ORDER BY created_at DESC LIMIT 1", (rk,)).fetchone()
        return self._row_to_record(row)

    def update(self, record: DecisionRecord) -> Updated:
        record, pk, rk, props = codec.prepare_record_update(record, now_ms())
        etag = _new_etag()
        with self._tx(write=True) as conn:
            cur = conn.execute(
                f"UPDATE {_D} SET created_at = ?, etag = ?, entity = ? "
                "WHERE PartitionKey = ? AND RowKey = ? AND etag = ?",
                (props["created_at"], etag, json.dumps(props, ensure_ascii=False), pk, rk, record.etag),
            )
            if cur.rowcount == 1:
                return Updated(ok=True, record=codec.props_to_record(props, etag))
            row = conn.execute(f"SELECT entity, etag FROM {_D} WHERE PartitionKey = ? AND RowKey = ?",
                               (pk, rk)).fetchone()
        return Updated(ok=False, record=self._row_to_record(row))

    def list(self, job_id: str | None = None, since_ms: int | None = None,
             until_ms: int | None = None, limit: int | None = None) -> list[DecisionRecord]:
        where, args = [], []
        if job_id is not None:
            where.append("PartitionKey = ?")
            args.append(codec.job_partition(job_id))
        if since_ms is not None:
            where.append("created_at >= ?")
            args.append(int(since_ms))
        if until_ms is not None:
            where.append("created_at < ?")
            args.append(int(until_ms))
        sql = f"SELECT entity, etag FROM {_D}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, RowKey DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(0, int(limit)))
        with self._tx(write=False) as conn:
            rows = conn.execute(sql, args).fetchall()
        return [codec.props_to_record(json.loads(entity), etag) for entity, etag in rows]

    # --- state ----------------------------------------------------------------------------
    def state_get(self, kind: str, key: str) -> StateEntry | None:
        pk, rk = codec.escape_key(kind), codec.escape_key(key)
        with self._tx(write=False) as conn:
            row = conn.execute(f"SELECT entity, etag, expires_at FROM {_S} WHERE PartitionKey = ? AND RowKey = ?",
                               (pk, rk)).fetchone()
        if row is None or (row[2] and row[2] <= now_ms()):
            return None
        return codec.props_to_state(json.loads(row[0]), row[1])

    def state_put(self, kind: str, key: str, value: Mapping[str, Any], *, etag: str | None = None,
                  if_absent: bool = False, ttl_s: int | None = None) -> StateEntry | None:
        now = now_ms()
        pk, rk, props = codec.prepare_state_write(kind, key, value, etag=etag, if_absent=if_absent, ttl_s=ttl_s,
                                                  now=now)
        new_etag = _new_etag()
        body = json.dumps(props, ensure_ascii=False)
        with self._tx(write=True) as conn:
            row = conn.execute(f"SELECT etag, expires_at FROM {_S} WHERE PartitionKey = ? AND RowKey = ?",
                               (pk, rk)).fetchone()
            live = row is not None and not (row[1] and row[1] <= now)
            if if_absent and live:
                return None
            if etag and (row is None or row[0] != etag):
                return None
            conn.execute(
                f"INSERT INTO {_S} (PartitionKey, RowKey, expires_at, etag, entity) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (PartitionKey, RowKey) DO UPDATE SET "
                "expires_at = excluded.expires_at, etag = excluded.etag, entity = excluded.entity",
                (pk, rk, props["expires_at"], new_etag, body),
            )
        return codec.props_to_state(props, new_etag)
