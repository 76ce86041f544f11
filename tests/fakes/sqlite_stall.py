"""Stall one write of another process on a SQLite store, with no hook in the product.

``SqliteStall(path).arm(table, "UPDATE", when)`` installs a ``BEFORE`` trigger in the store's
database file whose ``WHEN`` clause is true for the write meant (``when`` is SQL over ``NEW``
and ``OLD``; the stored row keeps its properties as a JSON document in ``entity``, so
``json_extract(NEW.entity, '$.status')`` reads a decision's new status) and then counts a
recursive CTE to 10^12: the writer spins inside that write's transaction, which never commits.
``wait_stalled(process)`` returns once the process is seen spinning there (it holds the write lock
and burns CPU); the test kills it, then ``disarm()`` drops the trigger. A killed writer's
transaction never happened: SQLite (WAL) ignores uncommitted frames and the OS frees its locks.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

__all__ = ["SqliteStall"]

_TRIGGER = "crash_test_stall"
_SPIN = ("(WITH RECURSIVE spin(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM spin WHERE n < 1000000000000) "
         "SELECT count(*) FROM spin) > 0")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process (clock ticks), None once it has ended."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[11]) + int(fields[12])


class SqliteStall:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _conn(self, timeout: float = 10.0) -> sqlite3.Connection:
        return sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)

    def arm(self, table: str, event: str, when: str) -> None:
        """``BEFORE <event> ON <table> WHEN <when>``: the first write that matches spins forever."""
        if event not in ("INSERT", "UPDATE", "DELETE"):
            raise ValueError(f"event {event!r}")
        conn = self._conn()
        try:
            conn.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER}")
            conn.execute(f"CREATE TRIGGER {_TRIGGER} BEFORE {event} ON {table} "
                         f"WHEN ({when}) AND {_SPIN} BEGIN SELECT 1; END")
        finally:
            conn.close()

    def disarm(self) -> None:
        conn = self._conn()
        try:
            conn.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER}")
        finally:
            conn.close()

    def _write_locked(self) -> bool:
        conn = self._conn(timeout=0)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        else:
            conn.execute("ROLLBACK")
            return False
        finally:
            conn.close()

    def wait_stalled(self, process: subprocess.Popen, timeout_s: float = 60.0, *, window: int = 4,
                     every_s: float = 0.08) -> bool:
        """True once ``process`` has held the write lock for ``window`` samples in a row while
        spending most of that time on the CPU (a normal write holds the lock for milliseconds and
        waits on nothing but the disk); False when it exits or the time runs out. Without
        ``/proc`` (not Linux) the lock alone decides, held three times as long."""
        with_cpu = os.path.isdir("/proc/self")
        window = window if with_cpu else 3 * window
        deadline = time.monotonic() + timeout_s
        samples: list[tuple[bool, int]] = []
        while time.monotonic() < deadline:
            ticks = _cpu_ticks(process.pid) if with_cpu else 0
            if ticks is None or process.poll() is not None:
                return False
            samples = [*samples[-window:], (self._write_locked(), ticks)]
            if len(samples) > window and all(locked for locked, _ in samples):
                spent_s = (samples[-1][1] - samples[0][1]) / _TICKS
                if not with_cpu or spent_s >= 0.5 * window * every_s:
                    return True
            time.sleep(every_s)
        return False
