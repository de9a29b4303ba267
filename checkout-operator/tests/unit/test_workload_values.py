"""The chart values derived from the spec (the chart itself is rendered in the integration tests)."""

from __future__ import annotations

import pytest

from checkout_operator.reconcilers.workloads import Owner, chart_values, split_image, stamp
from checkout_operator.settings import ServiceImage
from checkout_operator.spec import PlatformSpec

OWNER = Owner(name="shop", namespace="team", uid="u-1")


def spec(**services: object) -> PlatformSpec:
    return PlatformSpec.parse(
        {
            "kafka": {"bootstrapServers": ["a:9092", "b:9092"], "topicPrefix": "shop"},
            "postgres": {"host": "db", "database": "main", "adminSecretRef": {"name": "admin"}},
            "services": services,
            "tracing": {"otlpEndpoint": "http://otel:4318", "samplingRatio": 0.25},
            "metrics": {"serviceMonitor": True},
        }
    )


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("shop/order", {"repository": "shop/order"}),
        ("shop/order:1.2", {"repository": "shop/order", "tag": "1.2"}),
        ("registry.local:5000/shop/order", {"repository": "registry.local:5000/shop/order"}),
        ("registry.local:5000/shop/order:1.2", {"repository": "registry.local:5000/shop/order", "tag": "1.2"}),
        (
            "shop/order@sha256:" + "a" * 64,
            {"repository": "shop/order", "digest": "sha256:" + "a" * 64},
        ),
    ],
)
def test_split_image(image: str, expected: dict[str, str]) -> None:
    assert split_image(image) == expected


def test_values_carry_everything_the_service_needs() -> None:
    values = chart_values(
        OWNER,
        spec(
            order={
                "replicas": 2,
                "image": "shop/order:9",
                "env": [{"name": "X", "value": "1"}],
                "resources": {"limits": {"cpu": "1"}},
            }
        ),
        "order",
    )
    assert values["fullnameOverride"] == "shop-order"
    assert values["service"] == {"name": "order"}
    assert values["replicaCount"] == 2
    assert values["image"] == {"repository": "shop/order", "tag": "9"}
    assert values["kafka"] == {"bootstrapServers": "a:9092,b:9092", "topicPrefix": "shop"}
    assert values["database"] == {"secretRef": {"name": "shop-order-database", "key": "url"}, "schema": "shop_orders"}
    assert values["tracing"] == {"endpoint": "http://otel:4318", "samplerRatio": 0.25}
    assert values["extraEnv"] == [{"name": "X", "value": "1"}]
    assert values["resources"] == {"limits": {"cpu": "1"}}
    assert values["serviceMonitor"] == {"enabled": True}


def test_gateway_reaches_the_orchestrator_and_cart_through_their_services() -> None:
    assert chart_values(OWNER, spec(), "gateway-bff")["upstreams"] == {
        "orchestratorService": "shop-checkout-orchestrator",
        "cartService": "shop-cart",
    }
    assert chart_values(OWNER, spec(cart={"enabled": False}), "gateway-bff")["upstreams"] == {
        "orchestratorService": "shop-checkout-orchestrator"
    }
    assert "upstreams" not in chart_values(OWNER, spec(), "order")


def test_default_image_is_left_to_the_chart() -> None:
    assert "image" not in chart_values(OWNER, spec(), "cart")


def test_operator_default_image_applies_when_the_spec_names_none() -> None:
    defaults = {
        "cart": ServiceImage(repository="local/cart", tag="dev"),
        "order": ServiceImage(repository="local/order"),
    }
    assert chart_values(OWNER, spec(), "cart", defaults)["image"] == {"repository": "local/cart", "tag": "dev"}
    assert chart_values(OWNER, spec(), "order", defaults)["image"] == {"repository": "local/order"}
    named = chart_values(OWNER, spec(order={"image": "mine/order:1"}), "order", defaults)
    assert named["image"] == {"repository": "mine/order", "tag": "1"}


def test_stamp_sets_owner_labels_and_namespace() -> None:
    [obj] = stamp(
        [{"kind": "Service", "metadata": {"name": "x", "labels": {"app.kubernetes.io/managed-by": "Helm"}}}],
        OWNER,
        "cart",
    )
    assert obj["metadata"]["namespace"] == "team"
    assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "checkout-operator"
    assert obj["metadata"]["labels"]["checkout.platform.io/platform"] == "shop"
    assert obj["metadata"]["ownerReferences"] == [OWNER.reference()]
