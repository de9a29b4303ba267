"""How a Pod's container paths become this host's paths."""

from __future__ import annotations

from pathlib import Path

from checkout_stack.kubelet.images import LocalImage
from checkout_stack.kubelet.pods import _local

IMAGE = LocalImage(
    "checkout-operator",
    Path("Dockerfile"),
    paths={"/app/charts/checkout-service": Path("/tmp/clone/charts/checkout-service")},  # noqa: S108
)
MOUNTS = {"/tmp": Path("/run/pod/volumes/tmp")}  # noqa: S108


def test_an_image_path_maps_once_even_when_the_checkout_lives_under_tmp() -> None:
    # The repository cloned under /tmp must not be taken for the Pod's /tmp emptyDir afterwards.
    assert _local("/app/charts/checkout-service", IMAGE, MOUNTS) == "/tmp/clone/charts/checkout-service"  # noqa: S108


def test_a_volume_mount_maps_to_the_pods_directory() -> None:
    assert _local("/tmp/helm/cache", IMAGE, MOUNTS) == "/run/pod/volumes/tmp/helm/cache"  # noqa: S108
    assert _local("/tmp", IMAGE, MOUNTS) == "/run/pod/volumes/tmp"  # noqa: S108


def test_other_values_are_left_alone() -> None:
    assert _local("info", IMAGE, MOUNTS) == "info"
    assert _local("/tmpfoo", IMAGE, MOUNTS) == "/tmpfoo"  # noqa: S108
