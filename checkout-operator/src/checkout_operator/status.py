"""``status`` of a ``CheckoutPlatform``: conditions per the Kubernetes API conventions, and per-item detail.

Pure functions: the handlers hand in the reconcilers' outcomes and the previous status, and get back the
status to write. ``lastTransitionTime`` changes only when a condition's status changes, so the age of a
condition (``kubectl describe``) tells how long it has been true or false.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from checkout_operator.outcome import Outcome

READY: Final = "Ready"
TOPICS_READY: Final = "TopicsReady"
DATABASE_READY: Final = "DatabaseReady"
WORKLOADS_READY: Final = "WorkloadsReady"
PAUSED: Final = "Paused"
DELETING: Final = "Deleting"
CONCERNS: Final = (TOPICS_READY, DATABASE_READY, WORKLOADS_READY)
"""The conditions whose conjunction is ``Ready``, in reporting order."""
ORDER: Final = (READY, *CONCERNS, PAUSED, DELETING)

ConditionStatus = Literal["True", "False", "Unknown"]


def now_rfc3339() -> str:
    """The current time as Kubernetes writes it (seconds, UTC, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: str, status: ConditionStatus, reason: str, message: str, generation: int, now: str
) -> dict[str, Any]:
    """One ``metav1.Condition``."""
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now,
    }


def from_outcome(type_: str, outcome: Outcome, generation: int, now: str) -> dict[str, Any]:
    """The condition of one concern from its reconciler's outcome."""
    return condition(type_, "True" if outcome.ready else "False", outcome.reason, outcome.message, generation, now)


def ready_condition(concerns: Sequence[Mapping[str, Any]], generation: int, now: str) -> dict[str, Any]:
    """``Ready``: true when every concern is; otherwise it names the first that is not, and why."""
    failing = [c for c in concerns if c["status"] != "True"]
    if not failing:
        return condition(READY, "True", "Reconciled", "topics, database and workloads match the spec", generation, now)
    first = failing[0]
    status: ConditionStatus = "Unknown" if all(c["status"] == "Unknown" for c in failing) else "False"
    message = "; ".join(f"{c['type']}: {c['message']}" for c in failing)
    return condition(READY, status, str(first["reason"]), message, generation, now)


def merge_conditions(
    previous: Iterable[Mapping[str, Any]], updates: Iterable[Mapping[str, Any]], drop: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Previous conditions with ``updates`` applied, ``drop`` removed, in a stable order.

    An update whose status equals the previous one keeps the previous ``lastTransitionTime``.
    """
    merged: dict[str, dict[str, Any]] = {str(c["type"]): dict(c) for c in previous}
    for update in updates:
        new = dict(update)
        old = merged.get(str(new["type"]))
        if old is not None and old.get("status") == new["status"] and old.get("lastTransitionTime"):
            new["lastTransitionTime"] = old["lastTransitionTime"]
        merged[str(new["type"])] = new
    for type_ in drop:
        merged.pop(type_, None)
    rank = {t: i for i, t in enumerate(ORDER)}
    return sorted(merged.values(), key=lambda c: (rank.get(str(c["type"]), len(ORDER)), str(c["type"])))


def find(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    """The condition of that type, if any."""
    return next((c for c in conditions if c.get("type") == type_), None)


def topic_entries(detail: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``status.topics`` from the topics reconciler's detail (only the fields the CRD declares)."""
    entries = []
    for item in detail:
        entry: dict[str, Any] = {"name": item["name"], "state": item.get("state", "Unknown")}
        for key in ("partitions", "replicationFactor", "message"):
            if item.get(key) is not None:
                entry[key] = item[key]
        entry["ready"] = entry["state"] in ("Ready", "Created", "Updated")
        entries.append(entry)
    return entries


def service_entries(
    services: Sequence[str],
    enabled: Iterable[str],
    database: Sequence[Mapping[str, Any]],
    workloads: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """``status.services``: per service, its schema and role and its workload, side by side."""
    by_service_db = {str(d["service"]): d for d in database}
    by_service_wl = {str(w["service"]): w for w in workloads}
    enabled_set = set(enabled)
    entries = []
    for name in services:
        db = by_service_db.get(name)
        wl = by_service_wl.get(name)
        if db is None and wl is None and name not in enabled_set:
            continue
        entry: dict[str, Any] = {"name": name, "enabled": name in enabled_set}
        messages = []
        ready = True
        if db is not None:
            entry.update(schema=db.get("schema"), role=db.get("role"), database=db.get("state", "Unknown"))
            if db.get("secretName"):
                entry["databaseSecret"] = db["secretName"]
            ready = ready and db.get("state") in ("Ready", "Created", "Repaired")
            if db.get("message"):
                messages.append(str(db["message"]))
        if wl is not None:
            entry.update(replicas=wl.get("replicas", 0), readyReplicas=wl.get("readyReplicas", 0))
            ready = ready and bool(wl.get("ready"))
            if wl.get("message"):
                messages.append(str(wl["message"]))
        entry["ready"] = ready
        if messages:
            entry["message"] = "; ".join(messages)
        entries.append({k: v for k, v in entry.items() if v is not None})
    return entries
