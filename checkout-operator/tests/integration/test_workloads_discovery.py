"""Many platforms' passes look kinds up at once, in worker threads: discovery must hold up (real API server)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from checkout_operator.reconcilers.workloads import WorkloadsReconciler
from checkout_operator.settings import WorkloadSettings

pytestmark = pytest.mark.integration

KINDS = [
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
]


def test_concurrent_kind_lookups_never_break_discovery(kube_api: Any, tmp_path: Any) -> None:
    # ServiceMonitor has no CRD on the local control plane: each miss rebuilds the client's discovery cache,
    # which used to race with the other threads' reads (KeyError: 'resources' / 'apis') under a burst of
    # platforms (bench/operator/run.py).
    reconciler = WorkloadsReconciler(DynamicClient(kube_api, cache_file=str(tmp_path / "d.json")), WorkloadSettings())

    def look_up(index: int) -> str:
        api_version, kind = KINDS[index % len(KINDS)]
        try:
            return str(reconciler._resource(api_version, kind).kind)
        except ResourceNotFoundError:
            return "missing"

    with ThreadPoolExecutor(max_workers=16) as pool:
        found = list(pool.map(look_up, range(400)))
    assert set(found) == {"Deployment", "Service", "ConfigMap", "missing"}
