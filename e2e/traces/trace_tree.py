"""A trace as the backend's query API returns it (Jaeger's JSON), read as a tree of spans.

What the tests need of a checkout's trace: each span with its service, kind, tags and parent;
the path from a span up to the root; the text tree for people (``tree_text``); and the search
of traces by tag (a checkout's ``checkout.saga.id``) that an SRE does in the UI.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from checkout_stack.traces import TraceQuery


@dataclass(frozen=True)
class Span:
    """One span of a trace."""

    span_id: str
    parent_id: str | None
    """The CHILD_OF reference, if any (None for the root)."""
    parent_trace_id: str | None
    name: str
    service: str
    start_us: int
    duration_us: int
    tags: Mapping[str, Any]

    @property
    def kind(self) -> str:
        """``server``, ``client``, ``producer``, ``consumer`` or ``internal``."""
        return str(self.tags.get("span.kind", "internal"))

    @property
    def label(self) -> str:
        """``service: name``."""
        return f"{self.service}: {self.name}"


@dataclass
class Trace:
    """All spans of one trace, indexed by id and by parent."""

    trace_id: str
    spans: dict[str, Span]
    children: dict[str | None, list[Span]] = field(default_factory=dict)

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Trace:
        """Parse one element of the query API's ``data``."""
        processes = {key: value["serviceName"] for key, value in data["processes"].items()}
        spans: dict[str, Span] = {}
        for raw in data["spans"]:
            parent = next((ref for ref in raw.get("references") or [] if ref["refType"] == "CHILD_OF"), None)
            spans[raw["spanID"]] = Span(
                span_id=raw["spanID"],
                parent_id=parent["spanID"] if parent else None,
                parent_trace_id=parent["traceID"] if parent else None,
                name=raw["operationName"],
                service=processes[raw["processID"]],
                start_us=int(raw["startTime"]),
                duration_us=int(raw["duration"]),
                tags={tag["key"]: tag["value"] for tag in raw.get("tags") or []},
            )
        trace = cls(str(data["traceID"]), spans)
        for span in sorted(spans.values(), key=lambda s: s.start_us):
            trace.children.setdefault(span.parent_id, []).append(span)
        return trace

    def roots(self) -> list[Span]:
        """Spans whose parent is not in the trace (one, for a whole checkout)."""
        return [span for span in self.spans.values() if span.parent_id is None or span.parent_id not in self.spans]

    def parent(self, span: Span) -> Span | None:
        """The span's parent in this trace."""
        return self.spans.get(span.parent_id) if span.parent_id else None

    def ancestry(self, span: Span) -> list[Span]:
        """The path from the root down to ``span`` (both included)."""
        path = [span]
        while (parent := self.parent(path[-1])) is not None:
            path.append(parent)
        return list(reversed(path))

    def find(self, name: str, service: str | None = None, **tags: Any) -> list[Span]:
        """Spans called ``name`` (of ``service``, with these tag values), in start order."""
        found = [
            span
            for span in self.spans.values()
            if span.name == name
            and (service is None or span.service == service)
            and all(span.tags.get(key) == value for key, value in tags.items())
        ]
        return sorted(found, key=lambda s: s.start_us)

    def services(self) -> Counter[str]:
        """Span count per service."""
        return Counter(span.service for span in self.spans.values())

    def walk(self) -> Iterator[tuple[int, Span]]:
        """(depth, span) depth-first from the roots, children in start order."""
        stack = [(0, root) for root in sorted(self.roots(), key=lambda s: s.start_us, reverse=True)]
        while stack:
            depth, span = stack.pop()
            yield depth, span
            stack.extend((depth + 1, child) for child in reversed(self.children.get(span.span_id, [])))

    def tree_text(self) -> str:
        """The trace as an indented text tree: ``service: name [kind]``, one span a line (a query's table too)."""
        lines = (f"{'  ' * depth}{span.label} [{span.kind}]{_query_target(span)}" for depth, span in self.walk())
        return "\n".join(lines)


_TABLE = re.compile(r"\b(?:INTO|FROM|UPDATE)\s+\"?(\w+)", re.IGNORECASE)
_FUNCTION = re.compile(r"^SELECT\s+(\w+)\(", re.IGNORECASE)


def _query_target(span: Span) -> str:
    """`` → inbox``: what a database span's statement works on (its first table, else the function it calls)."""
    query = span.tags.get("db.query.text")
    if not isinstance(query, str):
        return ""
    match = _TABLE.search(query) or _FUNCTION.search(query)
    return f" → {match.group(1)}" if match else ""


class TraceSearch:
    """The query API's search by tag (``/api/traces?tags=``) next to the stack's fetch by id, polled within a bound."""

    def __init__(self, query: TraceQuery) -> None:
        self.query = query
        self.base_url = query.base_url
        self.timeout_s = query.timeout_s

    def by_tag(self, service: str, key: str, value: str) -> list[Trace]:
        """Traces with a span of ``service`` tagged ``key=value`` (the last hour)."""
        response = httpx.get(
            f"{self.base_url}/api/traces",
            params={"service": service, "tags": json.dumps({key: value}), "limit": 20, "lookback": "1h"},
            timeout=self.timeout_s,
        )
        response.raise_for_status()
        return [Trace.of(data) for data in response.json().get("data") or []]

    def by_id(self, trace_id: str) -> Trace | None:
        """The whole trace, or None while the backend does not know it."""
        data = self.query.trace(trace_id)
        return None if data is None else Trace.of(data)

    def wait_until(self, trace_id: str, complete: Any, timeout_s: float = 60.0) -> Trace:
        """Poll the trace until ``complete(trace)`` holds (spans arrive in batches, service by service)."""
        deadline = time.monotonic() + timeout_s
        seen: Trace | None = None
        while time.monotonic() < deadline:
            seen = self.by_id(trace_id)
            if seen is not None and complete(seen):
                return seen
            time.sleep(0.5)
        described = "no trace" if seen is None else f"{len(seen.spans)} spans:\n{seen.tree_text()}"
        raise AssertionError(f"trace {trace_id} not complete after {timeout_s:.0f}s; {described}")

    def settled(self, trace_id: str, quiet_s: float = 1.5, timeout_s: float = 30.0) -> Trace:
        """The trace once no span arrived for ``quiet_s`` (the last batches of every process are in)."""
        deadline = time.monotonic() + timeout_s
        last = self.by_id(trace_id)
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            now = self.by_id(trace_id)
            if now is not None and last is not None and len(now.spans) == len(last.spans):
                return now
            last = now
        raise AssertionError(f"trace {trace_id} kept growing for {timeout_s:.0f}s")
