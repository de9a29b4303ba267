"""The e2e suite's guard: it installs and deletes things, so it runs only against a cluster our tooling marked."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkout_stack import platform_install
from checkout_stack.platform_install import Cluster, ForeignClusterError
from checkout_stack.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(kubernetes_stack: Stack, kubectl: Path, helm: Path, kubeconfig: Path) -> Cluster:
    kubernetes_stack.kubernetes.ensure_owner_marker()
    return Cluster(kubectl, helm, kubeconfig)


def test_the_stacks_own_cluster_is_accepted(kubernetes_stack: Stack, cluster: Cluster) -> None:
    cluster.verify_ours(kubernetes_stack.kubernetes.owner_token_file.read_text())


def test_a_cluster_marked_with_another_token_is_refused(cluster: Cluster) -> None:
    with pytest.raises(ForeignClusterError, match=r"does not carry this checkout's token"):
        cluster.verify_ours("someone-elses-token")


def test_a_cluster_without_the_marker_is_refused(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the cluster were someone's: the ConfigMap the guard looks for does not exist there.
    monkeypatch.setattr(platform_install, "OWNER_MARKER", ("kube-system", "no-such-marker"))
    with pytest.raises(ForeignClusterError, match=r"has no ConfigMap kube-system/no-such-marker"):
        cluster.verify_ours("anything")
