"""Every query of the dashboards and the PrometheusRule against the real platform and the real Prometheus.

The static checks (charts/tests/test_dashboards.py, test_alerts.py) prove the queries are well formed and name
catalogue metrics; here they meet the code: each metric a query names is in the real ``/metrics`` of the services
or the operator, and each query, its Grafana variables replaced, returns data from Prometheus' query API after
real traffic. Every selector is narrowed to this session's series (``platform=<instance>``, a target label), so
another run's leftovers in the TSDB cannot stand in for ours.

Alert expressions are checked on their measured side: the threshold comparison is dropped (a healthy platform
does not fire) and recorded series are replaced by their recording rule's expression (this Prometheus does not
load the rules).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from checkout_stack import versions
from checkout_stack.metrics import MetricNotFoundError, PrometheusQuery
from checkout_stack.traces import TraceQuery

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "checkout-operator"
DASHBOARDS = {path.stem: json.loads(path.read_text()) for path in sorted((CHART / "dashboards").glob("*.json"))}
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
GRAFANA = {"__rate_interval": "1m", "__interval": "1m", "__range": "30m"}
"""Grafana's own variables: the rate window a 5 s scrape interval gets, and a range covering the session."""
SINGLE_VALUE = {"service": "gateway-bff"}
"""Single-value variables: the service whose RED panels are checked (it answers 2xx, 4xx and 5xx here)."""
ALL = ".+"
DATA_TIMEOUT_S = 120
OPERATOR_METRIC = re.compile(r"^checkout_operator_")
EVENT_ONLY = {
    'checkout_operator_reconciles_total{result="error"}': "a reconcile pass that raises: nothing here makes it raise",
}
"""Selectors that only match after an event the session cannot cause; their query must still run, and the same
query without that label filter must return data."""


# --- the expressions ----------------------------------------------------------------------------------------------


def dashboard_queries() -> list[tuple[str, str, bool]]:
    """(id, expression with the variables replaced, drawn with exemplars) of every target and variable query."""
    found = []
    for name, dashboard in DASHBOARDS.items():
        declared = {v["name"]: v for v in dashboard["templating"]["list"]}

        def value(match: re.Match[str], declared: dict[str, Any] = declared) -> str:
            var = match[1] or match[2]
            if var in GRAFANA:
                return GRAFANA[var]
            return str(declared[var].get("allValue", ALL)) if declared[var].get("multi") else SINGLE_VALUE[var]

        panels = [p for panel in dashboard["panels"] for p in (panel, *panel.get("panels", []))]
        for panel in panels:
            for target in panel.get("targets", []):
                where = f"{name}:{panel['title']}:{target['refId']}"
                found.append((where, VARIABLE.sub(value, target["expr"]), bool(target.get("exemplar"))))
        for var in declared.values():
            if var["type"] == "query":
                selector = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["query"])
                assert selector, var["query"]
                found.append((f"{name}:${var['name']}", VARIABLE.sub(value, selector[1]), False))
    return found


DASHBOARD_QUERIES = [(where, expr) for where, expr, _ in dashboard_queries()]


def selectors(expr: str) -> list[Any]:
    found: list[Any] = []
    promql_parser.walk(
        promql_parser.parse(expr),
        lambda node: found.append(node) if isinstance(node, promql_parser.VectorSelector) else None,
    )
    return found


def metric_names(expr: str) -> set[str]:
    return {str(s.name) for s in selectors(expr)}


def narrowed(expr: str, label: tuple[str, str]) -> str:
    """``expr`` with ``label`` added to every selector (only this session's series)."""
    key, value = label
    for name in sorted(metric_names(expr), key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])(\{{)?")
        expr = pattern.sub(
            lambda m, name=name: f'{name}{{{key}="{value}", ' if m[1] else f'{name}{{{key}="{value}"}}', expr
        )
    return expr.replace(", }", "}")


def rendered_rules(helm: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            str(helm),
            "template",
            "rel",
            str(CHART),
            "--kube-version",
            versions.KUBERNETES,
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "serviceMonitor.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rule = yaml.safe_load(out)
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def inline_recorded(expr: str, records: dict[str, str]) -> str:
    """Replace each recorded series by its recording rule's expression."""
    for name, body in records.items():
        expr = re.sub(rf"(?<![\w:]){re.escape(name)}(?![\w:])", lambda _, body=body: f"({body.strip()})", expr)
    return expr


def is_constant(node: Any) -> bool:
    has_data: list[bool] = []
    promql_parser.walk(
        node,
        lambda n: has_data.append(True) if isinstance(n, (promql_parser.VectorSelector, promql_parser.Call)) else None,
    )
    return not has_data


def measured(node: Any) -> list[Any]:
    """The parts of an alert condition that measure something: set operators are split, threshold comparisons
    dropped, ``absent(x)`` becomes ``x``."""
    if isinstance(node, promql_parser.ParenExpr):
        return measured(node.expr)
    if isinstance(node, promql_parser.BinaryExpr):
        op = str(node.op)
        if op in ("and", "or", "unless"):
            return measured(node.lhs) + measured(node.rhs)
        if op in (">", "<", ">=", "<=", "==", "!="):
            return [side for side in (node.lhs, node.rhs) if not is_constant(side)]
    if isinstance(node, promql_parser.Call) and str(node.func.name) in ("absent", "absent_over_time"):
        return [node.args[0]]
    return [node]


def query_with_data(prometheus_query: PrometheusQuery, expr: str) -> list[dict[str, Any]]:
    try:
        return prometheus_query.wait_for(expr, bool, timeout_s=DATA_TIMEOUT_S)
    except MetricNotFoundError as error:
        raise AssertionError(f"no data from Prometheus for:\n{expr}") from error


def without_event_filters(expr: str) -> str:
    """``expr`` without the label filters of :data:`EVENT_ONLY` (unchanged when it has none)."""
    for selector in EVENT_ONLY:
        name, matcher = selector.rstrip("}").split("{", 1)
        if name in expr:
            expr = re.sub(rf",\s*{re.escape(matcher)}|{re.escape(matcher)}\s*,?\s*", "", expr)
    return expr


def check_returns_data(prometheus_query: PrometheusQuery, expr: str) -> None:
    relaxed = without_event_filters(expr)
    if relaxed != expr:
        prometheus_query.query(expr)  # it runs; its data needs an event this session cannot cause …
    query_with_data(prometheus_query, relaxed)  # … and but for that event, it has data


# --- the real /metrics ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(observed: Any) -> dict[str, set[str]]:
    """Sample names in each process's real /metrics (OpenMetrics, as Prometheus scrapes them)."""
    names: dict[str, set[str]] = {}
    for process, url in observed.metrics_urls().items():
        text = httpx.get(url, timeout=10).text
        names[process] = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    return names


@pytest.fixture(scope="module")
def rules(helm: Path) -> list[dict[str, Any]]:
    return rendered_rules(helm)


def assert_exported(names: set[str], exported: dict[str, set[str]]) -> None:
    services = set().union(*(v for k, v in exported.items() if k != "checkout-operator"))
    for name in names:
        where = exported["checkout-operator"] if OPERATOR_METRIC.match(name) else services
        assert name in where, (
            f"{name} is in no real /metrics ({'operator' if OPERATOR_METRIC.match(name) else 'services'})"
        )


def test_every_dashboard_metric_is_in_the_real_metrics_output(exported: dict[str, set[str]]) -> None:
    for _, expr in DASHBOARD_QUERIES:
        assert_exported(metric_names(expr), exported)


def test_every_rule_metric_is_in_the_real_metrics_output(
    rules: list[dict[str, Any]], exported: dict[str, set[str]]
) -> None:
    records = {r["record"] for r in rules if "record" in r}
    for rule in rules:
        assert_exported(metric_names(rule["expr"]) - records, exported)


@pytest.mark.parametrize(("where", "expr"), DASHBOARD_QUERIES, ids=[q for q, _ in DASHBOARD_QUERIES])
def test_every_dashboard_query_returns_data(
    observed: Any, prometheus_query: PrometheusQuery, where: str, expr: str
) -> None:
    check_returns_data(prometheus_query, narrowed(expr, observed.label))


def test_every_recording_rule_returns_data(
    observed: Any, prometheus_query: PrometheusQuery, rules: list[dict[str, Any]]
) -> None:
    recording = [r for r in rules if "record" in r]
    assert recording
    for rule in recording:
        check_returns_data(prometheus_query, narrowed(rule["expr"], observed.label))


def test_every_alert_measures_something_that_returns_data(
    observed: Any, prometheus_query: PrometheusQuery, rules: list[dict[str, Any]]
) -> None:
    records = {r["record"]: r["expr"] for r in rules if "record" in r}
    alerts = [r for r in rules if "alert" in r]
    assert len(alerts) == 11
    for rule in alerts:
        expr = narrowed(inline_recorded(rule["expr"], records), observed.label)
        prometheus_query.query(expr)  # the whole condition runs (empty: nothing fires on this platform)
        parts = measured(promql_parser.parse(expr))
        assert parts, rule["alert"]
        for part in parts:
            check_returns_data(prometheus_query, part.prettify())


EXEMPLAR_TARGETS = [(where, expr) for where, expr, exemplar in dashboard_queries() if exemplar]
"""The dashboard queries drawn with exemplars."""


@pytest.mark.parametrize(("where", "expr"), EXEMPLAR_TARGETS, ids=[q for q, _ in EXEMPLAR_TARGETS])
def test_exemplars_of_latency_panels_open_real_traces(
    observed: Any, prometheus_url: str, trace_query: TraceQuery, where: str, expr: str
) -> None:
    narrowed_expr = narrowed(expr, observed.label)
    deadline = time.monotonic() + DATA_TIMEOUT_S
    trace_ids: set[str] = set()
    while not trace_ids and time.monotonic() < deadline:
        response = httpx.get(
            f"{prometheus_url}/api/v1/query_exemplars",
            params={"query": narrowed_expr, "start": time.time() - 3600, "end": time.time()},
            timeout=10,
        )
        body = response.json()
        assert body["status"] == "success", body
        trace_ids = {e["labels"]["trace_id"] for group in body["data"] for e in group["exemplars"]}
        if not trace_ids:
            time.sleep(1)
    assert trace_ids, f"no exemplar for {where}"
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids), trace_ids
    trace_query.wait_for_trace(sorted(trace_ids)[0], timeout_s=60)


def test_the_success_sli_sees_the_timed_out_checkouts_and_not_the_declines(
    observed: Any, prometheus_query: PrometheusQuery, rules: list[dict[str, Any]]
) -> None:
    # Of each batch of five: two completed, one declined and one out of stock (business outcomes), one timed out.
    [rule] = [r for r in rules if r.get("record") == "namespace:checkout_sagas_failed_platform:ratio_rate1h"]
    # rate() needs two samples of the deadline_exceeded series that differ: wait for the scrape that saw
    # the second timed-out saga fail (on a loaded machine it can come after the first data points).
    try:
        [platform_failures] = prometheus_query.wait_for(
            narrowed(rule["expr"], observed.label),
            lambda result: bool(result) and float(result[0]["value"][1]) > 0,
            timeout_s=DATA_TIMEOUT_S,
        )
    except MetricNotFoundError as error:
        message = f"the platform-fault SLI never counted the timed-out checkouts:\n{rule['expr']}"
        raise AssertionError(message) from error
    all_failures = narrowed(
        "sum(rate(checkout_sagas_failed_total[1h])) / sum(rate(checkout_saga_duration_seconds_count[1h]))",
        observed.label,
    )
    [failures] = query_with_data(prometheus_query, all_failures)
    assert 0 < float(platform_failures["value"][1]) < float(failures["value"][1])


def test_the_measured_side_split_keeps_the_data_and_drops_the_thresholds() -> None:
    expr = '(a:b:rate1h > (14.4 * (1 - 99.5 / 100)) and a:b:rate5m > 0.1) or absent(x{job="y"})'
    assert [p.prettify() for p in measured(promql_parser.parse(expr))] == ["a:b:rate1h", "a:b:rate5m", 'x{job="y"}']


@pytest.mark.parametrize(
    "expr",
    [
        'rate(checkout_operator_reconciles_total{platform="p", result="error"}[1m])',
        'rate(checkout_operator_reconciles_total{result="error",platform="p"}[1m])',
    ],
)
def test_an_event_only_filter_is_dropped_wherever_it_stands(expr: str) -> None:
    assert without_event_filters(expr) == 'rate(checkout_operator_reconciles_total{platform="p"}[1m])'
    assert without_event_filters('rate(checkout_operator_reconciles_total{result="ready"}[1m])').count("ready") == 1


def test_narrowing_labels_every_selector() -> None:
    expr = 'sum(rate(a_total[1m])) / sum(rate(a_total{b="c"}[1m])) or a_total_x'
    assert narrowed(expr, ("platform", "p")) == (
        'sum(rate(a_total{platform="p"}[1m])) / sum(rate(a_total{platform="p", b="c"}[1m])) or a_total_x{platform="p"}'
    )
