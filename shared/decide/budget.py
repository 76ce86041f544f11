"""What the app's automatic actions cost, in US dollars: the arithmetic only (pure, no I/O).

- **A rerun** (RETRY repairs the failed tasks, RETRY_WITH_NEW_PARAMS runs them on a bigger
  cluster): the failed run's duration x the nodes of the compute it will run on (driver +
  workers; an autoscaling cluster at its maximum) x the DBU rate of the node type x the price of
  a DBU. The rate table (``DEFAULT_DBU_PER_HOUR``, overridden and extended by
  ``TRIAGE_DBU_RATES``) is per node type; a node type not in it is rated from the vCPU count in
  its Azure name (``Standard_D16ds_v5``: 16 vCPUs x 0.1875), else ``default``. Serverless compute
  is rated per task by its performance target (``serverless`` / ``serverless:PERFORMANCE_OPTIMIZED``),
  and priced at the serverless DBU price. A task on an all-purpose cluster the app cannot see is
  rated as one ``default`` node. The estimate errs high: a repair reruns only the failed tasks
  but is charged the whole run's duration.
- **A model call**: prompt tokens x the input price + answer tokens x the output price
  (``TRIAGE_LLM_PRICE_USD_PER_1M_TOKENS``).
- **The check**: a rerun that would take today's spend past the app's cap
  (``TRIAGE_BUDGET_USD_PER_DAY``) or the job's (tag ``triage.budget_usd_per_day``) is stopped,
  with a reason naming the cap and the estimate; the model is asked only while its share of the
  app's cap (``TRIAGE_LLM_BUDGET_SHARE``) is unspent.

The defaults are list-price approximations for Azure Databricks jobs compute (premium tier) and a
small hosted model; set your own prices in the settings (docs/settings.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.snapshot import Snapshot

__all__ = [
    "DEFAULT_DBU_PER_HOUR",
    "DEFAULT_DBU_PRICE_USD",
    "DEFAULT_SERVERLESS_DBU_PRICE_USD",
    "DEFAULT_LLM_PRICE_USD_PER_1M",
    "BUDGET_TAG",
    "Prices",
    "Estimate",
    "prices_of",
    "rerun_estimate",
    "llm_call_cost",
    "job_cap",
    "over_budget",
]

BUDGET_TAG = "triage.budget_usd_per_day"

# DBUs per hour of one node (approximate Azure list rates; TRIAGE_DBU_RATES overrides and adds).
DEFAULT_DBU_PER_HOUR: dict[str, float] = {
    "Standard_DS3_v2": 0.75, "Standard_DS4_v2": 1.5, "Standard_DS5_v2": 3.0,
    "Standard_D4s_v3": 0.75, "Standard_D8s_v3": 1.5, "Standard_D16s_v3": 3.0,
    "Standard_D4ds_v5": 0.75, "Standard_D8ds_v5": 1.5, "Standard_D16ds_v5": 3.0,
    "Standard_E4ds_v5": 1.0, "Standard_E8ds_v5": 2.0, "Standard_E16ds_v5": 4.0,
    "Standard_F4s": 0.5, "Standard_F8s": 1.0, "Standard_F16s": 2.0,
    "serverless": 4.0,                            # per task, performance target STANDARD
    "serverless:PERFORMANCE_OPTIMIZED": 8.0,      # per task
    "default": 1.0,                               # a node type not listed and not parseable
}
# Prices: the defaults live with the settings (shared.config), which parse them.
DEFAULT_DBU_PRICE_USD = 0.30                       # jobs compute, premium tier
DEFAULT_SERVERLESS_DBU_PRICE_USD = 0.45            # serverless jobs
DEFAULT_LLM_PRICE_USD_PER_1M = (0.15, 0.60)        # (prompt, answer) tokens
_DBU_PER_VCPU = 0.1875                             # 4 vCPUs ~ 0.75 DBU/h on general-purpose nodes
_VCPUS = re.compile(r"^Standard_[A-Za-z]+?(\d+)")


@dataclass(frozen=True)
class Prices:
    dbu_per_hour: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_DBU_PER_HOUR))
    dbu_price_usd: float = DEFAULT_DBU_PRICE_USD
    serverless_dbu_price_usd: float = DEFAULT_SERVERLESS_DBU_PRICE_USD
    llm_usd_per_1m: tuple[float, float] = DEFAULT_LLM_PRICE_USD_PER_1M

    def node_rate(self, node_type: str) -> tuple[float, str]:
        """(DBU/hour of one node, where the rate came from)."""
        if node_type in self.dbu_per_hour:
            return float(self.dbu_per_hour[node_type]), "table"
        m = _VCPUS.match(node_type or "")
        if m and 0 < int(m.group(1)) <= 512:
            return round(int(m.group(1)) * _DBU_PER_VCPU, 4), "vCPUs"
        return float(self.dbu_per_hour.get("default", 1.0)), "default"


@dataclass(frozen=True)
class Estimate:
    """A rerun's estimated cost, and how it was worked out (shown to people and stored)."""

    usd: float
    dbu: float
    hours: float
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {"usd": round(self.usd, 4), "dbu": round(self.dbu, 3), "hours": round(self.hours, 3),
                "basis": self.basis}


# --- settings ---------------------------------------------------------------------------------

def prices_of(settings: "Settings") -> Prices:
    return Prices(dbu_per_hour={**DEFAULT_DBU_PER_HOUR, **dict(settings.dbu_rates)},
                  dbu_price_usd=settings.dbu_price_usd[0], serverless_dbu_price_usd=settings.dbu_price_usd[1],
                  llm_usd_per_1m=tuple(settings.llm_price_usd_per_1m))  # type: ignore[arg-type]


# --- a rerun ----------------------------------------------------------------------------------

def _hours(run: Mapping[str, Any]) -> float:
    for key in ("run_duration", "execution_duration"):
        value = run.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return value / 3_600_000
    start, end = run.get("start_time"), run.get("end_time")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end > start > 0:
        return (end - start) / 3_600_000
    return 1.0 / 6                                  # unknown: ten minutes, said in the basis


def _clusters(obj: Any) -> Iterable[Mapping[str, Any]]:
    """Every cluster spec (``new_cluster``) inside a request body or run."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if key == "new_cluster" and isinstance(value, Mapping):
                yield value
            else:
                yield from _clusters(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _clusters(value)


def _nodes(cluster: Mapping[str, Any]) -> tuple[int, str, str]:
    """(workers, worker node type, driver node type) of a cluster spec."""
    auto = cluster.get("autoscale") if isinstance(cluster.get("autoscale"), Mapping) else {}
    workers = auto.get("max_workers", cluster.get("num_workers", 0))
    try:
        workers = max(0, int(workers))
    except (TypeError, ValueError):
        workers = 0
    node = str(cluster.get("node_type_id") or "")
    return workers, node, str(cluster.get("driver_node_type_id") or node)


def _failed_computes(snapshot: "Snapshot") -> tuple[list[Mapping[str, Any]], int, int]:
    """(cluster specs the failed tasks ran on, serverless tasks, tasks on clusters we cannot see)."""
    run = snapshot.run
    job_clusters = {c.get("job_cluster_key"): c.get("new_cluster") for c in run.get("job_clusters") or []
                    if isinstance(c, Mapping) and isinstance(c.get("new_cluster"), Mapping)}
    specs: dict[str, Mapping[str, Any]] = {}
    serverless = unseen = 0
    tasks = [t.raw for t in snapshot.failed_tasks if not t.state.upstream] or [run]
    for task in tasks:
        if isinstance(task.get("new_cluster"), Mapping):
            specs[f"task:{task.get('task_key')}"] = task["new_cluster"]
        elif task.get("job_cluster_key") is not None and task.get("job_cluster_key") in job_clusters:
            specs[f"job:{task.get('job_cluster_key')}"] = job_clusters[task.get("job_cluster_key")]
        elif task.get("existing_cluster_id"):
            unseen += 1
        else:
            serverless += 1
    return list(specs.values()), serverless, unseen


def rerun_estimate(snapshot: "Snapshot", requests: Iterable[Mapping[str, Any]], prices: Prices) -> Estimate:
    """The estimated cost of rerunning ``snapshot``'s failed run with ``requests`` (the plan's
    request bodies): the clusters those requests define, else those the failed tasks ran on."""
    hours = _hours(snapshot.run)
    timing = "the failed run's duration" if hours != 1.0 / 6 else "ten minutes (the run's duration is unknown)"
    bodies = [r.get("body") if isinstance(r, Mapping) and "body" in r else r for r in requests]
    specs = [c for body in bodies for c in _clusters(body)]
    serverless = unseen = 0
    if not specs:
        specs, serverless, unseen = _failed_computes(snapshot)
    dbu_per_hour = 0.0
    parts: list[str] = []
    for cluster in specs:
        workers, node, driver = _nodes(cluster)
        w_rate, w_from = prices.node_rate(node)
        d_rate, _ = prices.node_rate(driver)
        dbu_per_hour += workers * w_rate + d_rate
        parts.append(f"{workers} x {node or '?'} + driver at {w_rate:g} DBU/h ({w_from})")
    dbu_cost = dbu_per_hour * hours * prices.dbu_price_usd
    if unseen:
        rate = prices.node_rate("default")[0]
        dbu_per_hour += unseen * rate
        dbu_cost += unseen * rate * hours * prices.dbu_price_usd
        parts.append(f"{unseen} task(s) on an existing cluster at {rate:g} DBU/h")
    if serverless:
        target = str(snapshot.run.get("performance_target") or "").upper()
        key = f"serverless:{target}" if f"serverless:{target}" in prices.dbu_per_hour else "serverless"
        rate = float(prices.dbu_per_hour.get(key, DEFAULT_DBU_PER_HOUR["serverless"]))
        dbu_per_hour += serverless * rate
        dbu_cost += serverless * rate * hours * prices.serverless_dbu_price_usd
        parts.append(f"{serverless} serverless task(s) at {rate:g} DBU/h ({target or 'STANDARD'})")
    basis = f"{'; '.join(parts) or 'no compute found'}, for {timing} ({hours * 60:.0f} min)"
    return Estimate(usd=dbu_cost, dbu=dbu_per_hour * hours, hours=hours, basis=basis)


# --- a model call -----------------------------------------------------------------------------

def llm_call_cost(usage: Mapping[str, Any] | None, prices: Prices, *, est_prompt_tokens: int = 0) -> float:
    """US dollars of one model call from its reported usage (else the prompt's estimated size and
    a short answer)."""
    usage = usage or {}
    prompt = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else est_prompt_tokens
    answer = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else 300
    p_in, p_out = prices.llm_usd_per_1m
    return (max(0, prompt) * p_in + max(0, answer) * p_out) / 1_000_000


# --- the check --------------------------------------------------------------------------------

def job_cap(tags: Mapping[str, str]) -> float | None:
    """The job's own daily cap (tag ``triage.budget_usd_per_day``); None when absent or unreadable."""
    raw = str(tags.get(BUDGET_TAG, "")).strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def over_budget(estimate_usd: float, *, app_spent: float, app_cap: float | None, job_spent: float,
                job_cap_usd: float | None) -> str:
    """Why a rerun costing ``estimate_usd`` must not start ('' when it may)."""
    if app_cap is not None and app_spent + estimate_usd > app_cap:
        return (f"the app's daily budget would be exceeded (TRIAGE_BUDGET_USD_PER_DAY ${app_cap:.2f}, "
                f"spent today ${app_spent:.2f}); this rerun would cost about ${estimate_usd:.2f}")
    if job_cap_usd is not None and job_spent + estimate_usd > job_cap_usd:
        return (f"the job's daily budget would be exceeded (job tag {BUDGET_TAG} ${job_cap_usd:.2f}, "
                f"spent today ${job_spent:.2f}); this rerun would cost about ${estimate_usd:.2f}")
    return ""
