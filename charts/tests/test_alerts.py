"""The PrometheusRule of the checkout-operator chart: promtool, unit tests of the alerts, runbooks, SLO shape.

The rendered groups are what a Prometheus loads, so they are what `promtool check rules` and `promtool test rules`
see: series are fed in this file, and each alert tested is expected both to fire and to stay quiet. That every
expression returns data from the real platform's metrics is checked in e2e/observability/.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from checkout_stack import versions
from checkout_stack.stack import Stack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "checkout-operator"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
CATALOGUE = ROOT / "docs" / "metrics.md"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
ENABLED = ["--set", "prometheusRule.enabled=true", "--set", "serviceMonitor.enabled=true"]
RUNBOOK_URL = "docs/runbooks.md"
ALERTS = [
    "CheckoutSuccessBudgetFastBurn",
    "CheckoutSuccessBudgetSlowBurn",
    "CheckoutLatencyBudgetFastBurn",
    "CheckoutLatencyBudgetSlowBurn",
    "CheckoutSagasStuck",
    "CheckoutDeadLettersGrowing",
    "CheckoutConsumerLagHigh",
    "CheckoutOutboxBacklogOld",
    "CheckoutPlatformNotReady",
    "CheckoutOperatorReconcileErrors",
    "CheckoutOperatorAbsent",
]
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


# --- tools and rendering ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_binary(local_stack: Stack, request: pytest.FixtureRequest) -> Path:
    """helm as the stack installs it; rendering needs no running server (the `helm` fixture starts one)."""
    path = local_stack.kubernetes.tool("helm")
    if path.exists():
        return path
    helm: Path = request.getfixturevalue("helm")
    return helm


@pytest.fixture(scope="module")
def promtool(local_stack: Stack, request: pytest.FixtureRequest) -> Path:
    """promtool from the Debian package the stack's Prometheus comes with (installed through the fixture if absent)."""
    path = local_stack.prometheus.tools()["promtool"]
    if not path.exists():
        request.getfixturevalue("prometheus")
    return path


def run(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert result.returncode == 0, f"{' '.join(map(str, argv))}:\n{result.stdout}\n{result.stderr}"
    return result


def render(helm: Path, *args: str) -> list[dict[str, Any]]:
    out = run(
        helm, "template", "rel", CHART, "--namespace", "checkout", "--kube-version", versions.KUBERNETES, *args
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def prometheus_rule(helm: Path, *args: str) -> dict[str, Any]:
    [rule] = [doc for doc in render(helm, *args) if doc["kind"] == "PrometheusRule"]
    return rule


def rules_of(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def alerts_of(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in rules_of(rule) if "alert" in r}


@pytest.fixture(scope="module")
def rendered(helm_binary: Path) -> dict[str, Any]:
    return prometheus_rule(helm_binary, *ENABLED)


@pytest.fixture(scope="module")
def rules_file(rendered: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered groups as a Prometheus rule file."""
    path = tmp_path_factory.mktemp("rules") / "checkout.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rendered["spec"]["groups"]}, sort_keys=False))
    return path


# --- the object, promtool check -----------------------------------------------------------------------------------


def test_prometheus_rule_is_off_by_default(helm_binary: Path) -> None:
    assert [doc for doc in render(helm_binary) if doc["kind"] == "PrometheusRule"] == []


def test_rendered_rule_carries_the_chart_labels_and_the_extra_ones(helm_binary: Path) -> None:
    rule = prometheus_rule(helm_binary, "-f", str(FULL_VALUES))
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["metadata"]["labels"]["app.kubernetes.io/part-of"] == "checkout-platform"
    assert rule["metadata"]["namespace"] == "checkout"


@pytest.mark.parametrize("args", [ENABLED, ["-f", str(FULL_VALUES)]], ids=["defaults", "full-values"])
def test_rendered_groups_pass_promtool_check_rules(
    helm_binary: Path, promtool: Path, tmp_path: Path, args: list[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": prometheus_rule(helm_binary, *args)["spec"]["groups"]}))
    result = run(promtool, "check", "rules", path)
    assert f"SUCCESS: {2 * len(WINDOWS) + len(ALERTS)} rules found" in result.stdout


def test_promtool_check_fails_a_broken_rule(promtool: Path, tmp_path: Path) -> None:
    # The check above can fail: a bad expression is refused.
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "rate(x[5m]"}]}]}))
    assert run(promtool, "check", "rules", path, check=False).returncode != 0


def test_the_alerts_are_the_expected_ones(rendered: dict[str, Any], helm_binary: Path) -> None:
    assert list(alerts_of(rendered)) == ALERTS
    without_monitor = alerts_of(prometheus_rule(helm_binary, "--set", "prometheusRule.enabled=true"))
    assert "CheckoutOperatorAbsent" not in without_monitor, "no scrape, no absence alert"


def test_operator_absence_looks_for_the_service_monitors_job(helm_binary: Path) -> None:
    alerts = alerts_of(prometheus_rule(helm_binary, "-f", str(FULL_VALUES)))
    # full-values sets nameOverride: cop; the ServiceMonitor's jobLabel is app.kubernetes.io/name.
    assert alerts["CheckoutOperatorAbsent"]["expr"] == 'absent(checkout_operator_paused_platforms{job="cop"})'


# --- every alert: labels, annotations, runbook ------------------------------------------------------------------


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_has_severity_summary_description_and_runbook(rendered: dict[str, Any], alert: str) -> None:
    rule = alerts_of(rendered)[alert]
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"].strip()
    assert rule["annotations"]["description"].strip()
    url = rule["annotations"]["runbook_url"]
    assert url == f"{RUNBOOK_URL}#{alert.lower()}"
    assert url.split("#")[1] in github_anchors(RUNBOOKS.read_text()), f"docs/runbooks.md has no section {alert}"


def test_runbooks_have_one_section_per_alert_and_no_other() -> None:
    sections = re.findall(r"^## (Checkout\w+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    assert sections == ALERTS


def test_pages_are_the_fast_burns_and_stuck_sagas(rendered: dict[str, Any]) -> None:
    critical = [name for name, rule in alerts_of(rendered).items() if rule["labels"]["severity"] == "critical"]
    assert critical == ["CheckoutSuccessBudgetFastBurn", "CheckoutLatencyBudgetFastBurn", "CheckoutSagasStuck"]


def test_runbook_url_follows_the_value(helm_binary: Path) -> None:
    for rule in alerts_of(prometheus_rule(helm_binary, "-f", str(FULL_VALUES))).values():
        assert (
            rule["annotations"]["runbook_url"] == f"https://docs.checkout.example/runbooks.md#{rule['alert'].lower()}"
        )


# --- the SLOs ---------------------------------------------------------------------------------------------------


def test_recording_rules_cover_every_window_the_alerts_use(rendered: dict[str, Any]) -> None:
    recorded = [r["record"] for r in rules_of(rendered) if "record" in r]
    expected = [f"namespace:checkout_sagas_{sli}:ratio_rate{w}" for sli in ("failed_platform", "slow") for w in WINDOWS]
    assert recorded == expected
    used = set()
    for rule in alerts_of(rendered).values():
        used |= set(re.findall(r"namespace:checkout_sagas_\w+:ratio_rate\w+", rule["expr"]))
    assert used == set(recorded)


@pytest.mark.parametrize(
    ("alert", "sli", "budget"),
    [
        ("CheckoutSuccessBudgetFastBurn", "failed_platform", "(1 - 99.5 / 100)"),
        ("CheckoutSuccessBudgetSlowBurn", "failed_platform", "(1 - 99.5 / 100)"),
        ("CheckoutLatencyBudgetFastBurn", "slow", "(1 - 99 / 100)"),
        ("CheckoutLatencyBudgetSlowBurn", "slow", "(1 - 99 / 100)"),
    ],
)
def test_burn_rate_alerts_follow_the_sre_workbook(rendered: dict[str, Any], alert: str, sli: str, budget: str) -> None:
    expr = alerts_of(rendered)[alert]["expr"]
    pairs = re.findall(rf"namespace:checkout_sagas_{sli}:ratio_rate(\w+) > \(([\d.]+) \* {re.escape(budget)}\)", expr)
    expected = {
        "FastBurn": [("1h", "14.4"), ("5m", "14.4"), ("6h", "6"), ("30m", "6")],
        "SlowBurn": [("1d", "3"), ("2h", "3"), ("3d", "1"), ("6h", "1")],
    }[alert.removeprefix(f"Checkout{'Success' if sli == 'failed_platform' else 'Latency'}Budget")]
    assert pairs == expected
    tree = promql_parser.parse(expr)  # (long and short) or (long and short)
    assert str(tree.op) == "or"
    assert all(str(side.expr.op if hasattr(side, "expr") else side.op) == "and" for side in (tree.lhs, tree.rhs))


def test_business_declines_are_good_events_and_platform_failures_bad(rendered: dict[str, Any]) -> None:
    [rule] = [
        r for r in rules_of(rendered) if r.get("record") == "namespace:checkout_sagas_failed_platform:ratio_rate5m"
    ]
    [selector] = re.findall(r'checkout_sagas_failed_total\{reason!~"([^"]+)"\}', rule["expr"])
    good = set(selector.split("|"))
    assert good == {"payment_declined", "out_of_stock", "unknown_sku", "order_rejected", "invalid_request"}
    from checkout_orchestrator.metrics import reason_label  # the label values the orchestrator really writes

    codes = ["OUT_OF_STOCK", "UNKNOWN_SKU", "PAYMENT_DECLINED", "ORDER_REJECTED", "INVALID_REQUEST"]
    assert {reason_label(f"FAILURE_CODE_{code}") for code in codes} == good
    assert {reason_label(f"FAILURE_CODE_{c}") for c in ("DEADLINE_EXCEEDED", "INTERNAL")} & good == set()
    assert reason_label(None) not in good


def test_latency_threshold_is_a_bucket_of_the_saga_histogram() -> None:
    from checkout_orchestrator.metrics import SAGA_BUCKETS

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert float(values["prometheusRule"]["slo"]["latencyThresholdSeconds"]) in SAGA_BUCKETS


def test_objectives_and_thresholds_follow_the_values(helm_binary: Path) -> None:
    rule = prometheus_rule(helm_binary, "-f", str(FULL_VALUES))
    alerts = alerts_of(rule)
    assert "(14.4 * (1 - 99.9 / 100))" in alerts["CheckoutSuccessBudgetFastBurn"]["expr"]
    assert "(14.4 * (1 - 99.5 / 100))" in alerts["CheckoutLatencyBudgetFastBurn"]["expr"]
    [slow] = [r for r in rules_of(rule) if r.get("record") == "namespace:checkout_sagas_slow:ratio_rate5m"]
    assert 'le=~"1(\\\\.0)?"' in slow["expr"]
    assert alerts["CheckoutConsumerLagHigh"]["expr"].rstrip().endswith("> 500")
    assert alerts["CheckoutOutboxBacklogOld"]["expr"].endswith("> 30")
    assert alerts["CheckoutPlatformNotReady"]["for"] == "30m"


# --- only catalogue metrics ---------------------------------------------------------------------------------------


def catalogue_series() -> set[str]:
    names = set()
    for match in re.finditer(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(\w+)", CATALOGUE.read_text(), re.MULTILINE):
        name, kind = match[1], match[2]
        names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"} if kind == "histogram" else {name}
    return names


def test_every_rule_names_only_catalogue_metrics_and_recorded_series(rendered: dict[str, Any]) -> None:
    known = catalogue_series() | {r["record"] for r in rules_of(rendered) if "record" in r}
    for rule in rules_of(rendered):
        names: list[str] = []

        def visit(node: object, found: list[str] = names) -> None:
            if isinstance(node, promql_parser.VectorSelector):
                found.append(str(node.name))

        promql_parser.walk(promql_parser.parse(rule["expr"]), visit)
        assert names, rule
        assert set(names) <= known, f"{rule.get('alert') or rule.get('record')}: {set(names) - known}"


# --- schema -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "prometheusRule.interval=1m"], "additional properties 'interval' not allowed"),
        (["--set", "prometheusRule.slo.successObjective=100"], "at '/prometheusRule/slo/successObjective'"),
        (["--set", "prometheusRule.slo.latencyThresholdSeconds=0"], "at '/prometheusRule/slo/latencyThresholdSeconds'"),
        (["--set", "prometheusRule.runbookUrl=https://x/runbooks.md#top"], "at '/prometheusRule/runbookUrl'"),
        (["--set", "prometheusRule.thresholds.platformNotReadyFor=soon"], "at '/prometheusRule/thresholds"),
    ],
    ids=["unknown-key", "objective-100", "zero-threshold", "url-with-anchor", "bad-duration"],
)
def test_schema_rejects_bad_rule_values(helm_binary: Path, args: list[str], message: str) -> None:
    result = run(helm_binary, "template", "rel", CHART, "--kube-version", versions.KUBERNETES, *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr


# --- promtool test rules ----------------------------------------------------------------------------------------


def expected_annotations(rule: dict[str, Any], labels: dict[str, str], value: str) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them for ``labels`` and ``value`` (already formatted)."""

    def render(text: str) -> str:
        text = re.sub(r"\{\{ \$value(?: \| \w+)? \}\}", value, text)
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m[1], ""), text)

    return {key: render(text) for key, text in rule["annotations"].items()}


def alert(rendered: dict[str, Any], alert_name: str, value: str, /, **labels: str) -> dict[str, Any]:
    """One alert expected from ``promtool test rules``: its labels and its rendered annotations."""
    rule = alerts_of(rendered)[alert_name]
    exp_labels = {**rule["labels"], **labels}
    return {"exp_labels": exp_labels, "exp_annotations": expected_annotations(rule, exp_labels, value)}


def promtool_test(promtool: Path, rules_file: Path, tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    spec = {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": tests}
    path = tmp_path / "unit.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, width=1000))
    run(promtool, "test", "rules", path)


def saga_series(namespace: str, completed: str, failed: str, reason: str) -> list[dict[str, str]]:
    """Terminal sagas per minute as the orchestrator exports them: the duration count and the failure counter."""
    return [
        {
            "series": f'checkout_saga_duration_seconds_count{{namespace="{namespace}", outcome="completed"}}',
            "values": completed,
        },
        {
            "series": f'checkout_saga_duration_seconds_count{{namespace="{namespace}", outcome="failed"}}',
            "values": failed,
        },
        {"series": f'checkout_sagas_failed_total{{namespace="{namespace}", reason="{reason}"}}', "values": failed},
    ]


def test_fast_burn_pages_on_platform_failures_only(
    promtool: Path, rules_file: Path, rendered: dict[str, Any], tmp_path: Path
) -> None:
    name = "CheckoutSuccessBudgetFastBurn"
    tests = [
        {
            # 10 % of sagas fail on deadlines (14.4x budget = 7.2 %) in "shop"; as many are declined in "quiet".
            "interval": "1m",
            "input_series": [
                *saga_series("shop", "0+54x120", "0+6x120", "deadline_exceeded"),
                *saga_series("quiet", "0+54x120", "0+6x120", "payment_declined"),
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": name, "exp_alerts": []},  # pending: for 2m
                {"eval_time": "10m", "alertname": name, "exp_alerts": [alert(rendered, name, "10%", namespace="shop")]},
                {"eval_time": "90m", "alertname": name, "exp_alerts": [alert(rendered, name, "10%", namespace="shop")]},
            ],
        },
        {
            # 1 in 300 fails through the platform (0.33 %): within the 0.5 % budget, no page and no ticket.
            "interval": "1m",
            "input_series": saga_series("shop", "0+299x120", "0+1x120", "internal"),
            "alert_rule_test": [
                {"eval_time": "90m", "alertname": name, "exp_alerts": []},
                {"eval_time": "90m", "alertname": "CheckoutSuccessBudgetSlowBurn", "exp_alerts": []},
            ],
        },
        {
            # The failures stop at 60m: once the short windows (5m, 30m) are clean the page clears, long windows or not.
            "interval": "1m",
            "input_series": saga_series("shop", "0+54x60 3300+60x59", "0+6x60 360x59", "deadline_exceeded"),
            "alert_rule_test": [
                {"eval_time": "50m", "alertname": name, "exp_alerts": [alert(rendered, name, "10%", namespace="shop")]},
                {"eval_time": "100m", "alertname": name, "exp_alerts": []},
            ],
        },
    ]
    promtool_test(promtool, rules_file, tmp_path, tests)


def test_slow_burn_tickets_a_steady_one_percent(
    promtool: Path, rules_file: Path, rendered: dict[str, Any], tmp_path: Path
) -> None:
    name = "CheckoutSuccessBudgetSlowBurn"
    tests = [
        {
            "interval": "1m",
            "input_series": saga_series("shop", "0+99x60", "0+1x60", "unspecified"),
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": name, "exp_alerts": []},  # pending: for 15m
                {"eval_time": "30m", "alertname": name, "exp_alerts": [alert(rendered, name, "1%", namespace="shop")]},
                {"eval_time": "30m", "alertname": "CheckoutSuccessBudgetFastBurn", "exp_alerts": []},
            ],
        }
    ]
    promtool_test(promtool, rules_file, tmp_path, tests)


def test_latency_fast_burn_counts_completed_sagas_above_the_bucket(
    promtool: Path, rules_file: Path, rendered: dict[str, Any], tmp_path: Path
) -> None:
    name = "CheckoutLatencyBudgetFastBurn"
    bucket = 'checkout_saga_duration_seconds_bucket{{namespace="{}", outcome="completed", le="2.5"}}'
    count = 'checkout_saga_duration_seconds_count{{namespace="{}", outcome="completed"}}'
    tests = [
        {
            # "shop": a third of the completed sagas take longer than 2.5 s; "fast": all within.
            "interval": "1m",
            "input_series": [
                {"series": bucket.format("shop"), "values": "0+40x60"},
                {"series": count.format("shop"), "values": "0+60x60"},
                {"series": bucket.format("fast"), "values": "0+60x60"},
                {"series": count.format("fast"), "values": "0+60x60"},
            ],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": name,
                    "exp_alerts": [alert(rendered, name, "33.33%", namespace="shop")],
                }
            ],
        }
    ]
    promtool_test(promtool, rules_file, tmp_path, tests)


def test_stuck_sagas_page_after_five_minutes(
    promtool: Path, rules_file: Path, rendered: dict[str, Any], tmp_path: Path
) -> None:
    name = "CheckoutSagasStuck"
    stuck = 'checkout_sagas_stuck{{namespace="{}", job="checkout-orchestrator", instance="{}"}}'
    tests = [
        {
            # Two orchestrator replicas report the same two stuck sagas from 3m on; "calm" has none.
            "interval": "1m",
            "input_series": [
                {"series": stuck.format("shop", "a"), "values": "0 0 0 2x20"},
                {"series": stuck.format("shop", "b"), "values": "0 0 0 2x20"},
                {"series": stuck.format("calm", "a"), "values": "0x23"},
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": name, "exp_alerts": []},
                {"eval_time": "6m", "alertname": name, "exp_alerts": []},  # pending
                {"eval_time": "10m", "alertname": name, "exp_alerts": [alert(rendered, name, "2", namespace="shop")]},
            ],
        },
        {
            # A saga stuck for one scrape and then resolved never pages.
            "interval": "1m",
            "input_series": [{"series": stuck.format("shop", "a"), "values": "0 0 1 1 0x20"}],
            "alert_rule_test": [{"eval_time": "15m", "alertname": name, "exp_alerts": []}],
        },
    ]
    promtool_test(promtool, rules_file, tmp_path, tests)


def test_dead_letters_warn_for_the_first_one_and_for_growth(
    promtool: Path, rules_file: Path, rendered: dict[str, Any], tmp_path: Path
) -> None:
    name = "CheckoutDeadLettersGrowing"
    series = 'checkout_dead_letters_total{{namespace="shop", job="{}", topic="shop.{}", reason="{}"}}'
    first = {"job": "inventory", "topic": "shop.inventory-command", "reason": "undecodable", "namespace": "shop"}
    growing = {"job": "payment", "topic": "shop.payment-command", "reason": "handler-failed", "namespace": "shop"}
    tests = [
        {
            "interval": "1m",
            "input_series": [
                # Born at its first dead letter, at 10m (a counter series does not exist before).
                {"series": series.format("inventory", "inventory-command", "undecodable"), "values": "_x10 1x70"},
                # Three old ones (older than the window), then one more every minute from 46m on.
                {"series": series.format("payment", "payment-command", "handler-failed"), "values": "3x45 4+1x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": name, "exp_alerts": [alert(rendered, name, "1", **first)]},
                {"eval_time": "40m", "alertname": name, "exp_alerts": []},
                {"eval_time": "65m", "alertname": name, "exp_alerts": [alert(rendered, name, "15", **growing)]},
            ],
        }
    ]
    promtool_test(promtool, rules_file, tmp_path, tests)


def test_platform_not_ready_warns_after_fifteen_minutes(
    promtool: Path, rules_file: Path, rendered: dict[str, Any], tmp_path: Path
) -> None:
    name = "CheckoutPlatformNotReady"
    condition = 'checkout_operator_condition{{namespace="team-a", name="{}", type="Ready", status="True"}}'
    tests = [
        {
            "interval": "1m",
            "input_series": [
                {"series": condition.format("shop"), "values": "1x5 0x30"},
                {"series": condition.format("fine"), "values": "1x35"},
            ],
            "alert_rule_test": [
                {"eval_time": "15m", "alertname": name, "exp_alerts": []},
                {
                    "eval_time": "25m",
                    "alertname": name,
                    "exp_alerts": [alert(rendered, name, "0", namespace="team-a", name="shop")],
                },
            ],
        }
    ]
    promtool_test(promtool, rules_file, tmp_path, tests)
