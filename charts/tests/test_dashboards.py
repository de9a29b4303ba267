"""The Grafana dashboards (charts/checkout-operator/dashboards/*.json) and the ConfigMaps that ship them.

Grafana cannot run here, so a dashboard is checked statically: the grafana-foundation-sdk decodes it into its typed
models (panels by plugin, Prometheus queries) and must give every key back — a misspelled or unknown key is lost
in the round trip, so it fails. The SDK decodes; it does not validate values, so our own rules check the rest:
layout, data sources, variables, exemplars, and every PromQL expression (parsed by promql-parser after the Grafana
variables are replaced, naming only metrics and labels of docs/metrics.md). That every query returns data from the
real Prometheus is checked in e2e/observability/.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from grafana_foundation_sdk.cog import runtime as cog_runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus as sdk_prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard

from checkout_stack import versions
from checkout_stack.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "checkout-operator"
DASHBOARD_DIR = CHART / "dashboards"
FILES = sorted(DASHBOARD_DIR.glob("*.json"))
CATALOGUE = ROOT / "docs" / "metrics.md"
EXPECTED = {
    "checkout-overview": "Checkout platform overview",
    "checkout-service-red": "Checkout service RED",
    "checkout-kafka-outbox": "Checkout Kafka lag and outbox",
    "checkout-operator": "Checkout operator",
}
MIN_SCHEMA_VERSION = 39
GRID_COLUMNS = 24
TARGET_LABELS = {"job", "instance", "namespace"}
"""Labels Prometheus (or the ServiceMonitor) adds to every scraped series."""
BUILT_IN_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "__from": "0", "__to": "0"}
"""Grafana's own variables, with a value each for parsing."""
ALL_VALUE = ".+"
"""What a multi-value variable with "All" selected expands to (the variables' allValue)."""

register_default_plugins()


# --- the catalogue --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One row of docs/metrics.md."""

    name: str
    kind: str
    labels: frozenset[str]
    exemplars: bool

    def series(self) -> dict[str, frozenset[str]]:
        """The series names the metric exposes → the labels each carries."""
        if self.kind == "histogram":
            return {
                f"{self.name}_bucket": self.labels | {"le"},
                f"{self.name}_count": self.labels,
                f"{self.name}_sum": self.labels,
            }
        return {self.name: self.labels}


def load_catalogue() -> dict[str, Metric]:
    """Every metric of docs/metrics.md's tables, by name."""
    metrics = {}
    row = re.compile(r"^\|\s*`(?P<name>[a-z_:][a-z0-9_:]*)`\s*\|(?P<kind>[^|]+)\|(?P<labels>[^|]*)\|")
    for line in CATALOGUE.read_text().splitlines():
        match = row.match(line)
        if not match:
            continue
        kind = match["kind"].strip()
        labels = re.sub(r"\([^)]*\)", "", match["labels"])  # "outcome (processed, …)" → "outcome"
        names = frozenset(label.strip() for label in labels.split(",") if label.strip() not in ("", "—"))
        metrics[match["name"]] = Metric(match["name"], kind.split()[0], names, "exemplars" in kind)
    return metrics


CATALOGUE_METRICS = load_catalogue()
SERIES = {series: labels for metric in CATALOGUE_METRICS.values() for series, labels in metric.series().items()}
SERIES_METRIC = {series: metric for metric in CATALOGUE_METRICS.values() for series in metric.series()}


# --- the dashboards and their queries -------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


DASHBOARDS = {path.stem: load(path) for path in FILES}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard: a panel's target or a variable's label_values() selector."""

    dashboard: str
    where: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.where}"


LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def queries() -> list[Query]:
    found = []
    for name, dashboard in DASHBOARDS.items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found.append(Query(name, f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]))
        for variable in variables(dashboard).values():
            if variable["type"] == "query":
                match = LABEL_VALUES.match(variable["query"])
                assert match, f"{name}: ${variable['name']} is not label_values(selector, label)"
                assert match["selector"], f"{name}: ${variable['name']} selects no metric"
                found.append(Query(name, f"variable ${variable['name']}", match["selector"]))
    return found


QUERIES = queries()
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def referenced_variables(text: str) -> set[str]:
    return {a or b for a, b in VARIABLE.findall(text)}


def substitute(expr: str, dashboard: dict[str, Any]) -> str:
    """The expression as Grafana would send it: built-ins and the dashboard's variables replaced by a value."""
    declared = variables(dashboard)

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name in BUILT_IN_VARIABLES:
            return BUILT_IN_VARIABLES[name]
        assert name in declared, f"${name} is neither declared nor a Grafana variable"
        variable = declared[name]
        return str(variable.get("allValue", ALL_VALUE)) if variable.get("multi") else "gateway-bff"

    return VARIABLE.sub(value, expr)


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def series_name(selector: promql_parser.VectorSelector) -> str:
    if selector.name:
        return str(selector.name)
    names = [m.value for m in selector.matchers.matchers if m.name == "__name__" and str(m.op) == "MatchOp.Equal"]
    assert names, f"{selector} names no metric"
    return str(names[0])


def groupings(expr: str) -> list[tuple[list[str], list[str]]]:
    """(grouping labels, series names below) of every aggregation with by(...)."""
    found: list[tuple[list[str], list[str]]] = []

    def visit(node: object) -> None:
        modifier = getattr(node, "modifier", None) if isinstance(node, promql_parser.AggregateExpr) else None
        if modifier is not None and str(modifier.type) == "AggModifierType.By":
            below = [series_name(s) for s in selectors(str(node.expr))]
            found.append((list(modifier.labels), below))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


# --- the SDK --------------------------------------------------------------------------------------------------


def lost_keys(original: Any, decoded: Any, path: str = "") -> list[str]:
    """Where ``decoded`` lacks or changes something of ``original`` (keys the SDK adds with defaults are fine)."""
    if isinstance(original, dict):
        if not isinstance(decoded, dict):
            return [f"{path}: became {type(decoded).__name__}"]
        problems = []
        for key, value in original.items():
            if key not in decoded:
                problems.append(f"{path}/{key}: unknown to the SDK")
            else:
                problems += lost_keys(value, decoded[key], f"{path}/{key}")
        return problems
    if isinstance(original, list):
        if not isinstance(decoded, list) or len(decoded) != len(original):
            return [f"{path}: list changed"]
        return [
            p for i, (a, b) in enumerate(zip(original, decoded, strict=True)) for p in lost_keys(a, b, f"{path}/{i}")
        ]
    return [] if original == decoded else [f"{path}: {original!r} became {decoded!r}"]


def sdk_round_trip(dashboard: dict[str, Any]) -> tuple[Dashboard, dict[str, Any]]:
    decoded = Dashboard.from_json(copy.deepcopy(dashboard))
    return decoded, json.loads(json.dumps(decoded, cls=JSONEncoder))


def test_the_dashboards_are_the_expected_four() -> None:
    assert {name: d["title"] for name, d in DASHBOARDS.items()} == EXPECTED
    assert {d["uid"] for d in DASHBOARDS.values()} == set(EXPECTED), "uid = file name: stable links"


@pytest.mark.parametrize("name", EXPECTED)
def test_the_sdk_decodes_every_key_of_the_dashboard(name: str) -> None:
    decoded, encoded = sdk_round_trip(DASHBOARDS[name])
    assert lost_keys(DASHBOARDS[name], encoded) == []
    for panel in decoded.panels or []:
        if panel.type_val == "row":
            continue
        assert cog_runtime.panelcfg_config(panel.type_val) is not None, f"{panel.type_val}: not a Grafana panel"
        for target in panel.targets or []:
            assert isinstance(target, sdk_prometheus.Dataquery), f"panel {panel.id_val}: not a Prometheus query"


def test_the_sdk_check_catches_a_misspelled_key() -> None:
    dashboard = copy.deepcopy(DASHBOARDS["checkout-overview"])
    panel = dashboard["panels"][1]
    panel["gridpos"] = panel.pop("gridPos")
    panel["targets"][0]["exemplars"] = True
    _, encoded = sdk_round_trip(dashboard)
    assert lost_keys(dashboard, encoded) == [
        "/panels/1/targets/0/exemplars: unknown to the SDK",
        "/panels/1/gridpos: unknown to the SDK",
    ]


# --- our own rules --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXPECTED)
def test_dashboard_has_the_required_fields(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["schemaVersion"] >= MIN_SCHEMA_VERSION
    assert dashboard["title"]
    assert dashboard["description"]
    assert "checkout-platform" in dashboard["tags"]
    assert set(dashboard["time"]) == {"from", "to"}
    assert "id" not in dashboard, "provisioned dashboards leave the id to Grafana"
    assert dashboard["editable"] is True
    for panel in panels(dashboard):
        assert {"id", "type", "title", "gridPos"} <= set(panel), panel.get("title")
        if panel["type"] != "row":
            assert panel["description"], f"panel {panel['id']} says what it shows"
            assert panel["targets"], f"panel {panel['id']} queries something"


def test_file_bytes_are_the_canonical_json() -> None:
    # One formatting for every dashboard (what an export from Grafana re-indented gives), so diffs stay small.
    for path in FILES:
        assert path.read_text() == json.dumps(load(path), indent=2, ensure_ascii=False) + "\n", path.name


@pytest.mark.parametrize("name", EXPECTED)
def test_panel_ids_are_unique(name: str) -> None:
    ids = [panel["id"] for panel in panels(DASHBOARDS[name])]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) and i > 0 for i in ids)


@pytest.mark.parametrize("name", EXPECTED)
def test_panels_fit_the_24_column_grid_without_overlapping(name: str) -> None:
    boxes = []
    for panel in panels(DASHBOARDS[name]):
        pos = panel["gridPos"]
        assert set(pos) == {"h", "w", "x", "y"}, panel["title"]
        assert min(pos["w"], pos["h"]) >= 1, panel["title"]
        assert min(pos["x"], pos["y"]) >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= GRID_COLUMNS, f"{panel['title']} ends past column {GRID_COLUMNS}"
        if panel["type"] == "row":
            assert (pos["x"], pos["w"], pos["h"]) == (0, GRID_COLUMNS, 1), panel["title"]
        boxes.append((panel["title"], pos["x"], pos["y"], pos["x"] + pos["w"], pos["y"] + pos["h"]))
    overlaps = [
        (a[0], b[0])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
    ]
    assert overlaps == []


@pytest.mark.parametrize("name", EXPECTED)
def test_every_data_source_is_a_declared_variable(name: str) -> None:
    dashboard = DASHBOARDS[name]
    declared = variables(dashboard)
    datasource_vars = {n: v for n, v in declared.items() if v["type"] == "datasource"}
    assert datasource_vars["datasource"]["query"] == "prometheus"

    def check(ref: dict[str, Any], where: str) -> None:
        match = re.fullmatch(r"\$\{(\w+)\}", ref["uid"])
        assert match, f"{where}: data source uid {ref['uid']!r} is not a variable"
        assert match[1] in datasource_vars, f"{where}: ${{{match[1]}}} is not a declared data source variable"
        assert datasource_vars[match[1]]["query"] == ref["type"], f"{where}: type differs from the variable's"

    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        check(panel["datasource"], f"panel {panel['id']}")
        for target in panel["targets"]:
            check(target["datasource"], f"panel {panel['id']} {target['refId']}")
            assert target["datasource"] == panel["datasource"]
    for variable in declared.values():
        if variable["type"] == "query":
            check(variable["datasource"], f"variable ${variable['name']}")


@pytest.mark.parametrize("name", EXPECTED)
def test_every_target_has_an_expression_and_a_unique_ref_id(name: str) -> None:
    for panel in panels(DASHBOARDS[name]):
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel.get("targets", []):
            assert target["expr"].strip(), f"{panel['title']} {target['refId']}"


@pytest.mark.parametrize("name", EXPECTED)
def test_every_variable_used_is_declared_and_every_declared_one_is_used(name: str) -> None:
    dashboard = DASHBOARDS[name]
    declared = set(variables(dashboard))
    used: set[str] = set()
    for panel in panels(dashboard):
        used |= referenced_variables(json.dumps(panel))
    for variable in variables(dashboard).values():
        used |= referenced_variables(json.dumps(variable.get("query", "")))
    assert used - declared - set(BUILT_IN_VARIABLES) == set()
    assert declared - used == set()


@pytest.mark.parametrize("name", EXPECTED)
def test_latency_panels_show_exemplars_and_link_to_the_tracing_data_source(name: str) -> None:
    dashboard = DASHBOARDS[name]
    declared = variables(dashboard)
    for panel in panels(dashboard):
        with_exemplars = False
        for target in panel.get("targets", []):
            if panel["type"] != "timeseries" or "histogram_quantile" not in target["expr"]:  # stats draw no exemplars
                continue
            metrics = {SERIES_METRIC[series_name(s)] for s in selectors(substitute(target["expr"], dashboard))}
            exemplars = any(m.exemplars for m in metrics)
            assert target.get("exemplar", False) is exemplars, f"{panel['title']}: exemplars iff the metric has them"
            with_exemplars |= exemplars
        if with_exemplars:
            assert (declared["tracing"]["type"], declared["tracing"]["query"]) == ("datasource", "jaeger")
            links = [link["url"] for link in panel.get("links", [])]
            assert any("${tracing}" in url for url in links), f"{panel['title']} links to its traces"


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_every_expression_parses_once_the_variables_are_replaced(query: Query) -> None:
    expr = substitute(query.expr, DASHBOARDS[query.dashboard])
    assert "$" not in expr
    promql_parser.parse(expr)


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_every_metric_and_label_is_in_the_catalogue(query: Query) -> None:
    expr = substitute(query.expr, DASHBOARDS[query.dashboard])
    for selector in selectors(expr):
        name = series_name(selector)
        assert name in SERIES, f"{name} is not in docs/metrics.md"
        matched = {m.name for m in selector.matchers.matchers} - {"__name__"}
        assert matched <= SERIES[name] | TARGET_LABELS, f"{name} has no label {matched - SERIES[name]}"
    for labels, below in groupings(expr):
        known = set(TARGET_LABELS).union(*(SERIES[series] for series in below))
        assert set(labels) <= known, f"by ({', '.join(labels)}) over {below}"


def test_the_catalogue_check_rejects_an_unknown_metric_and_label() -> None:
    bad = 'sum by (reasons) (rate(checkout_sagas_failed_total{reason="x"}[1m])) + checkout_sagas_lost'
    names = [series_name(s) for s in selectors(bad)]
    assert [n in SERIES for n in names] == [True, False]
    [(labels, below)] = groupings(bad)
    assert not set(labels) <= TARGET_LABELS.union(*(SERIES[s] for s in below))


def test_every_catalogue_metric_is_charted() -> None:
    charted = set()
    for query in QUERIES:
        charted |= {
            SERIES_METRIC[series_name(s)].name for s in selectors(substitute(query.expr, DASHBOARDS[query.dashboard]))
        }
    assert set(CATALOGUE_METRICS) - charted == set()


def test_the_overview_answers_the_sres_questions() -> None:
    overview = DASHBOARDS["checkout-overview"]
    exprs = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in panels(overview)}
    assert "checkout_sagas_started_total" in exprs["Checkout throughput"]
    assert "checkout_sagas_completed_total" in exprs["Success rate"]
    latency = exprs["Saga latency (start to terminal state)"]
    assert all(f"histogram_quantile({q}," in latency for q in ("0.5", "0.95", "0.99"))
    assert "by (reason)" in exprs["Compensations by reason"]
    assert "by (reason)" in exprs["Failures by reason"]
    assert "checkout_sagas_stuck" in exprs["Stuck sagas"]
    assert "by (state)" in exprs["In flight by state"]


# --- the ConfigMaps -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_binary(local_stack: Stack, request: pytest.FixtureRequest) -> Path:
    """helm as the stack installs it; rendering needs no running server (the `helm` fixture starts one)."""
    path = local_stack.kubernetes.tool("helm")
    if path.exists():
        return path
    helm: Path = request.getfixturevalue("helm")
    return helm


def helm_template(helm: Path, *args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            str(helm),
            "template",
            "rel",
            str(CHART),
            "--namespace",
            "checkout",
            "--kube-version",
            versions.KUBERNETES,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def config_maps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == "ConfigMap"]


@pytest.mark.integration
def test_dashboards_are_off_by_default(helm_binary: Path) -> None:
    assert config_maps(helm_template(helm_binary)) == []


@pytest.mark.integration
def test_each_dashboard_ships_byte_identical_in_a_sidecar_config_map(helm_binary: Path) -> None:
    shipped = config_maps(helm_template(helm_binary, "--set", "dashboards.enabled=true"))
    assert sorted(cm["metadata"]["name"] for cm in shipped) == sorted(
        f"rel-checkout-operator-dashboard-{path.stem}" for path in FILES
    )
    for config_map in shipped:
        assert config_map["metadata"]["namespace"] == "checkout"
        labels = config_map["metadata"]["labels"]
        assert labels["grafana_dashboard"] == "1"
        assert labels["app.kubernetes.io/part-of"] == "checkout-platform"
        assert "annotations" not in config_map["metadata"]
        [(key, text)] = config_map["data"].items()
        assert text == (DASHBOARD_DIR / key).read_text(), f"{key} is not the file's bytes"


@pytest.mark.integration
def test_sidecar_labels_and_folder_annotation_are_configurable(helm_binary: Path) -> None:
    args = ["--set", "dashboards.enabled=true", "--set", "dashboards.annotations.grafana_folder=Checkout"]
    args += ["--set-json", 'dashboards.labels={"grafana_dashboard":null,"dashboards":"checkout"}']
    for config_map in config_maps(helm_template(helm_binary, *args)):
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "Checkout"}
        assert config_map["metadata"]["labels"]["dashboards"] == "checkout"
        assert "grafana_dashboard" not in config_map["metadata"]["labels"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "dashboards.folder=x"], "additional properties 'folder' not allowed"),
        (["--set", "dashboards.enabled=yes"], "at '/dashboards/enabled': got string, want boolean"),
        (["--set", "dashboards.labels.grafana_dashboard=1"], "at '/dashboards/labels/grafana_dashboard'"),
    ],
    ids=["unknown-key", "enabled-not-boolean", "label-not-string"],
)
def test_schema_rejects_bad_dashboard_values(helm_binary: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [str(helm_binary), "template", "rel", str(CHART), "--kube-version", versions.KUBERNETES, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr
