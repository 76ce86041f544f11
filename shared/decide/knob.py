"""Where a resource failure hit, and so which knob a resized rerun turns. Pure: no I/O.

More workers cannot help a driver that collected too much, and a bigger driver cannot help
executors that ran out of memory. ``where_it_hit(classification)`` reads the failed tasks' error
text for *where* the failure hit, one row of ``WHERE`` at a time (first match wins, so the more
specific places come first); ``knob_params(hit)`` turns the place into the bounded suggestion that
``shared.databricks.resize`` applies (and bounds again) when it builds the request:

| place | knob | suggestion |
|---|---|---|
| driver | the driver | ``driver_node_type_step: 1`` (one step up ``TRIAGE_NODE_TYPE_LADDER``); for a result-size limit also ``driver_max_result_size_factor: 2`` (``spark.driver.maxResultSize``, allow-listed) and the limit the error reports (``driver_max_result_size_seen``) |
| disk | local disk | ``node_type_step: 1`` (a larger node has more local disk) |
| executors | the executors | ``num_workers_factor: 2``, or one node type step when the workers are at their bound |
| unknown | the executors | as executors: a memory failure with no sign of the driver is most often an executor's |

Serverless tasks have no cluster to size: ``shared.databricks.actions`` asks for
``performance_target: PERFORMANCE_OPTIMIZED`` whatever the place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from shared.models import Classification

__all__ = ["WhereRow", "WHERE", "Hit", "where_it_hit", "knob_params", "KNOBS"]

KNOBS = ("driver", "disk", "executors")


@dataclass(frozen=True)
class WhereRow:
    """One piece of evidence of where a resource failure hit; ``example`` must match (tested)."""

    id: str
    place: str               # driver | disk | executors
    pattern: re.Pattern[str]
    example: str
    result_size: bool = False   # the driver's result-size limit (spark.driver.maxResultSize)


def _row(id: str, place: str, pattern: str, example: str, **kw: Any) -> WhereRow:
    return WhereRow(id, place, re.compile(pattern, re.IGNORECASE | re.DOTALL), example, **kw)


WHERE: tuple[WhereRow, ...] = (
    _row("driver.result-size", "driver",
         r"\bspark\.driver\.maxResultSize\b|\bTotal size of serialized results\b",
         "Total size of serialized results of 2689 tasks (2.0 GiB) is bigger than spark.driver.maxResultSize "
         "(2.0 GiB)", result_size=True),
    _row("driver.broadcast", "driver",
         r"\bSize of broadcasted table far exceeds\b|\bNot enough memory to build and broadcast\b|"
         r"\bbroadcast .{0,40}?(exceeds|too large)\b",
         "Not enough memory to build and broadcast the table to all worker nodes"),
    _row("driver.oom-code", "driver", r"\bDRIVER_OUT_OF_MEMORY\b",
         "Cluster terminated. Reason: DRIVER_OUT_OF_MEMORY"),
    _row("driver.unresponsive", "driver",
         r"\bDriver is up but is not responsive\b|\bdriver\b.{0,40}\bunresponsive\b|\bHard killed Driver\b|"
         r"\bDRIVER_UNRESPONSIVE\b",
         "Driver is up but is not responsive, likely due to GC."),
    _row("driver.stopped", "driver",
         r"\bThe spark driver has stopped unexpectedly\b|\bSpark context has stopped and the driver\b|"
         r"\bdriver is restarting\b",
         "The spark driver has stopped unexpectedly and is restarting. Your notebook will be automatically "
         "reattached."),
    _row("driver.event", "driver", r"\bDRIVER_NOT_RESPONDING\b|\bDRIVER_UNAVAILABLE\b",
         "DRIVER_NOT_RESPONDING"),           # a cluster event (clusters/events) of the task's job cluster
    _row("driver.disk", "driver", r"\bDRIVER_OUT_OF_DISK\b", "Cluster terminated. Reason: DRIVER_OUT_OF_DISK"),
    _row("disk.no-space", "disk",
         r"\bNo space left on device\b|\bDisk quota exceeded\b|\bdisk (is )?full\b|\bnot enough space on the disk\b|"
         r"\bFAILED_TO_EXPAND_DISK\b|\bDID_NOT_EXPAND_DISK\b",
         "java.io.IOException: No space left on device"),
    _row("executors.lost", "executors",
         r"\bExecutorLostFailure\b|\bLost executor\b|\bRemote RPC client disassociated\b|\bEXECUTOR_OUT_OF_MEMORY\b",
         "ExecutorLostFailure (executor 5 exited caused by one of the running tasks) Reason: Container killed"),
    _row("executors.container", "executors",
         r"\bContainer killed\b|\bexit (code|status)[: ]+(137|143)\b|\bExit status: (137|143)\b|\bmemoryOverhead\b",
         "Container killed on request. Exit code is 137"),
    _row("executors.task-oom", "executors",
         r"\bLost task\b.{0,600}?\b(OutOfMemoryError|Java heap space|GC overhead limit exceeded)\b",
         "Lost task 3.0 in stage 7.0 (TID 91) (10.1.2.3 executor 2): java.lang.OutOfMemoryError: Java heap space"),
    _row("executors.shuffle", "executors",
         r"\bFetchFailed(Exception)?\b|\bMissing an output location for shuffle\b",
         "org.apache.spark.shuffle.FetchFailedException: Failed to connect to /10.0.0.5:4048"),
)


@dataclass(frozen=True)
class Hit:
    """Where it hit (``driver``/``disk``/``executors``, or ``unknown``) and the evidence row."""

    place: str
    row: WhereRow | None = None
    matched: str = ""
    limit: str = ""          # the result-size limit the error reports, as a Spark size ("1g"), if any

    @property
    def knob(self) -> str:
        return self.place if self.place in KNOBS else "executors"

    def because(self) -> str:
        """The reason, in words, naming the knob and why."""
        seen = f" (text '{self.matched}')" if self.matched else ""
        if self.place == "driver":
            what = "a larger driver node type" + (" and spark.driver.maxResultSize x2"
                                                  if self.row is not None and self.row.result_size else "")
            return f"the driver ran out of room{seen}: rerun with {what}, not more workers"
        if self.place == "disk":
            return f"local disk filled up{seen}: rerun on the next larger node type (more local disk)"
        if self.place == "executors":
            return f"the executors ran out of memory{seen}: rerun with workers x2 (or the next node type)"
        return "no sign of the driver or the disk: rerun with workers x2 (or the next node type)"


def _texts(classification: Classification) -> Iterable[str]:
    for e in classification.evidence:
        yield e.matched
    yield classification.excerpt
    for t in classification.tasks:
        if not t.upstream_only:
            yield t.excerpt
            for e in t.evidence:
                yield e.matched


def where_it_hit(classification: Classification) -> Hit:
    """The first row of ``WHERE`` that matches any failed task's evidence or error excerpt."""
    texts = [t for t in _texts(classification) if t]
    for row in WHERE:
        for text in texts:
            m = row.pattern.search(text)
            if m:
                matched = " ".join(m.group(0).split())
                return Hit(row.place, row, matched if len(matched) <= 60 else matched[:57] + "...",
                           limit=next((x for x in map(_limit_in, texts) if x), "") if row.result_size else "")
    return Hit("unknown")


_LIMIT = re.compile(r"maxResultSize\s*(?:=\s*(\d+)\b|\(\s*(\d+(?:\.\d+)?)\s*([KMGT])i?B\s*\))", re.IGNORECASE)


def _limit_in(text: str) -> str:
    """The limit the error names: 'maxResultSize=1073741824' -> '1073741824' (bytes),
    'maxResultSize (4.0 GiB)' -> '4g', '(1024.0 MiB)' -> '1024m'."""
    m = _LIMIT.search(text)
    if not m:
        return ""
    if m.group(1):
        return m.group(1)
    number = float(m.group(2))
    return f"{number:g}{m.group(3).lower()}" if not number.is_integer() else f"{int(number)}{m.group(3).lower()}"


def knob_params(hit: Hit) -> dict[str, Any]:
    """The bounded resize suggestion for ``hit`` (applied and bounded in shared.databricks.resize)."""
    if hit.place == "driver":
        params: dict[str, Any] = {"knob": "driver", "driver_node_type_step": 1}
        if hit.row is not None and hit.row.result_size:
            params["driver_max_result_size_factor"] = 2
            if hit.limit:
                params["driver_max_result_size_seen"] = hit.limit
        return params
    if hit.place == "disk":
        return {"knob": "disk", "node_type_step": 1}
    return {"knob": "executors", "num_workers_factor": 2}
