"""schemathesis against each service's own OpenAPI document, over HTTP to the running process.

For every operation of every service, schemathesis generates requests that fit the schema (positive)
and requests that break it (negative: wrong types, missing fields, values out of bounds, strings the
patterns refuse), a bounded number of each, reproducibly (derandomized). Every response must:

- not be a server error (no 5xx);
- arrive within the request timeout (no hang);
- be a 4xx when the request breaks the schema (``negative_data_rejection``: no unvalidated input);
- conform to the document (status code, content type and body schema it declares).

Meanwhile the service's resident memory is read from ``/proc`` after every operation: its growth over
the whole run must stay under a generous bound (a leak per request would cross it; allocator noise
does not). Counts and growth go to the reliability ledger, measured, not timed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import hypothesis
import pytest
import requests
import schemathesis
from chaos_ledger import record_check
from hypothesis import HealthCheck, Phase
from saga_platform import SagaPlatform
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.integration

SERVICES: Final = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart")
MAX_EXAMPLES: Final = 20
"""Generated requests per operation and generation mode: keeps the directory within minutes on 2 cores."""
REQUEST_TIMEOUT_S: Final = 10.0
"""A request not answered by then is a hang."""
RSS_GROWTH_BOUND: Final = 64 * 1024 * 1024
"""Most a service's resident memory may grow over its run (a few hundred requests): generous on purpose."""
MIB: Final = 1024 * 1024
Case = schemathesis.Case[Any]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
CHECKS: Final = [
    not_a_server_error,
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class FuzzRun:
    """What one service's run sent and what came back."""

    service: str
    base_url: str
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0
    hangs: int = 0
    failures: list[str] = field(default_factory=list)

    def send(self, case: Case) -> None:
        """Send one generated request and judge its response; a failure is kept, not raised (the run goes on)."""
        self.cases += 1
        label = case.operation.label
        try:
            response = case.call(base_url=self.base_url, timeout=REQUEST_TIMEOUT_S)
        except requests.Timeout:
            self.hangs += 1
            self.failures.append(f"{label}: no answer within {REQUEST_TIMEOUT_S:.0f} s\n    {self._curl(case)}")
            return
        except requests.ConnectionError as error:
            self.failures.append(f"{label}: connection failed ({error})\n    {self._curl(case)}")
            return
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.server_errors += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except AssertionError as failed:  # schemathesis' Failure is an AssertionError
            self.failures.append(f"{label}: {failed}\n    {self._curl(case)}")
        except BaseExceptionGroup as group:  # several checks failed at once (FailureGroup)
            self.failures.extend(f"{label}: {failed}\n    {self._curl(case)}" for failed in group.exceptions)

    def _curl(self, case: Case) -> str:
        try:
            return case.as_curl_command(base_url=self.base_url)
        except Exception as error:  # a case that cannot be rendered is still a finding
            return f"(no curl: {error})"


def fuzz_operation(run: FuzzRun, operation: Operation, mode: GenerationMode) -> bool:
    """``MAX_EXAMPLES`` requests of one operation in one mode, derandomized (the same ones every run).

    False if the mode has nothing to generate for the operation (no parameter or body a negative
    case could break: every draw is filtered out).
    """

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Case) -> None:
        run.send(case)

    try:
        send()
    except hypothesis.errors.Unsatisfiable:
        return False
    return True


COVERAGE_CONFIG: Final = {
    "seed": 20_261_126,
    "generation": {"mode": "all", "deterministic": True, "database": "none"},
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": False},
        "stateful": {"enabled": False},
    },
    "suppress-health-check": ["all"],
}
"""schemathesis' deterministic phases: the schema's own examples, then coverage (every parameter and body
property at its boundaries, of the wrong type, missing; unexpected content types and methods)."""


def cover_operation(run: FuzzRun, schema: schemathesis.BaseSchema, operation: Operation) -> None:
    """The examples and coverage phases of one operation, through schemathesis' own per-operation test builder.

    The builder is what schemathesis' lazy pytest integration (``schemathesis.pytest.from_fixture``) runs for
    each operation; that integration itself cannot run under pytest 9.2 (it rewrites ``Function._nodeid``,
    which no longer exists), so the builder is called directly.
    """
    from schemathesis.generation.feedback import FeedbackSources
    from schemathesis.pytest._test_builder import build_operation_test
    from schemathesis.python._constants.orchestrator import make_constants_value_source

    def send(case: Case) -> None:
        run.send(case)

    feedback = FeedbackSources(constants_value_source=make_constants_value_source(schema))
    build_operation_test(
        config=schema.config, operation=operation, test_func=send, given_kwargs={}, feedback=feedback
    )()


@pytest.mark.parametrize("service", SERVICES)
def test_generated_requests_get_no_server_error_no_hang_and_memory_stays_bounded(
    platform: SagaPlatform, rss: Callable[[str], int], service: str
) -> None:
    base_url = platform.url(service)
    schema_url = f"{base_url}/openapi.json"
    schema = schemathesis.openapi.from_url(schema_url, timeout=REQUEST_TIMEOUT_S)
    covered = schemathesis.openapi.from_url(
        schema_url, config=schemathesis.Config.from_dict(COVERAGE_CONFIG), timeout=REQUEST_TIMEOUT_S
    )
    run = FuzzRun(service, base_url)
    start_rss = peak_rss = rss(service)
    operations = 0
    nothing_to_break: list[str] = []
    for result in covered.get_all_operations():
        assert isinstance(result, Ok), f"{service}: schemathesis cannot read an operation: {result.err()}"
        cover_operation(run, covered, result.ok())
        peak_rss = max(peak_rss, rss(service))
    coverage_cases = run.cases
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"{service}: schemathesis cannot read an operation: {result.err()}"
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if not fuzz_operation(run, operation, mode):
                assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request can be generated"
                nothing_to_break.append(operation.label)
            peak_rss = max(peak_rss, rss(service))
    growth = peak_rss - start_rss
    findings = platform.run_dir / f"schemathesis-{service}.txt"
    findings.write_text("".join(f"{failure}\n\n" for failure in run.failures) or "no failures\n")
    statuses = ", ".join(f"{code}: {count}" for code, count in sorted(run.statuses.items()))
    passed = not run.failures and growth <= RSS_GROWTH_BOUND and run.cases > 0
    record_check(
        "hostile-input",
        f"schemathesis {service} ({run.cases} cases, {operations} operations)",
        f"{run.server_errors} 5xx, {run.hangs} hangs, {len(run.failures)} check failures, "
        f"max RSS growth {growth / MIB:.1f} MiB",
        passed=passed,
        detail=f"{coverage_cases} examples/coverage cases, {run.cases - coverage_cases} fuzzed; statuses {statuses}; "
        f"RSS {start_rss / MIB:.0f} → peak {peak_rss / MIB:.0f} MiB"
        + ("; first failures: " + " | ".join(run.failures[:3]) if run.failures else ""),
    )
    print(
        f"{service}: {run.cases} cases ({coverage_cases} coverage) over {operations} operations; {statuses}; "
        f"RSS +{growth / MIB:.1f} MiB; no negative case for {nothing_to_break}"
    )
    assert run.cases > coverage_cases > 0, f"{service}: schemathesis generated too little ({run.cases})"
    assert not run.failures, f"{service}: {len(run.failures)} failures (all in {findings}):\n" + "\n".join(
        run.failures[:10]
    )
    assert growth <= RSS_GROWTH_BOUND, f"{service}: RSS grew {growth / MIB:.1f} MiB over {run.cases} requests"
