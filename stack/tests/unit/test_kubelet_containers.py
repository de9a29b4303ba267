"""A Pod spec's container → environment and command line, as the kubelet would give them, then localized."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from checkout_stack.kubelet.containers import (
    ContainerConfigError,
    Network,
    ObjectData,
    Sources,
    command_line,
    container_ports,
    expand,
    localize,
    probe_port,
    resolve_env,
    service_aliases,
)

NAMESPACE = "shop"
POD: dict[str, Any] = {
    "metadata": {
        "name": "shop-cart-7d9f",
        "namespace": NAMESPACE,
        "uid": "0b6c-uid",
        "labels": {"app.kubernetes.io/name": "cart"},
        "annotations": {"checkout.example.com/revision": "7"},
    },
    "spec": {"nodeName": "kwok-node-0", "serviceAccountName": "cart"},
}


def _lookup(objects: Mapping[str, dict[str, str]]) -> ObjectData:
    """(namespace, name) → data, from ``{"<namespace>/<name>": data}``."""

    async def lookup(namespace: str, name: str) -> dict[str, str] | None:
        data = objects.get(f"{namespace}/{name}")
        return None if data is None else dict(data)

    return lookup


SOURCES = Sources(
    config_map=_lookup(
        {
            "shop/app-config": {"LOG_LEVEL": "info", "SHARED": "from-configmap"},
            "shop/extra": {"SHARED": "from-extra"},
            # Another namespace: never read for a Pod in "shop".
            "other/app-config": {"LOG_LEVEL": "debug"},
            "other/elsewhere": {"LOG_LEVEL": "debug"},
        }
    ),
    secret=_lookup({"shop/db": {"PASSWORD": "s3cret", "RAW": "$(LOG_LEVEL)"}}),
)


async def _env(*env: dict[str, Any], env_from: list[dict[str, Any]] | None = None, **container: Any) -> dict[str, str]:
    spec: dict[str, Any] = {"name": "app", "env": list(env), "envFrom": env_from or [], **container}
    return await resolve_env(POD, spec, SOURCES)


async def test_env_from_reads_configmaps_with_prefix_and_secrets() -> None:
    env = await _env(
        env_from=[
            {"configMapRef": {"name": "app-config"}, "prefix": "CFG_"},
            {"secretRef": {"name": "db"}},
        ]
    )

    assert env == {"CFG_LOG_LEVEL": "info", "CFG_SHARED": "from-configmap", "PASSWORD": "s3cret", "RAW": "$(LOG_LEVEL)"}


async def test_a_later_env_from_source_overrides_an_earlier_one() -> None:
    env = await _env(env_from=[{"configMapRef": {"name": "app-config"}}, {"configMapRef": {"name": "extra"}}])

    assert env["SHARED"] == "from-extra"


async def test_an_optional_missing_env_from_source_is_skipped() -> None:
    env = await _env(
        env_from=[
            {"configMapRef": {"name": "absent", "optional": True}},
            {"secretRef": {"name": "absent", "optional": True}},
            {"configMapRef": {"name": "app-config"}},
        ]
    )

    assert env == {"LOG_LEVEL": "info", "SHARED": "from-configmap"}


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ({"configMapRef": {"name": "absent"}}, 'configmap "absent" not found'),
        ({"secretRef": {"name": "absent"}}, 'secret "absent" not found'),
        # Exists, but in another namespace only.
        ({"configMapRef": {"name": "elsewhere"}}, 'configmap "elsewhere" not found'),
    ],
)
async def test_a_required_missing_env_from_source_fails_the_container(reference: dict[str, Any], message: str) -> None:
    with pytest.raises(ContainerConfigError) as raised:
        await _env(env_from=[reference])

    assert str(raised.value) == message


async def test_values_expand_earlier_variables_and_keep_undefined_and_escaped_references() -> None:
    env = await _env(
        {"name": "A", "value": "1"},
        {"name": "B", "value": "$(A)-$(UNDEFINED)-$$(A)"},
        {"name": "C", "value": "$(LATER)"},
        {"name": "LATER", "value": "late"},
        {"name": "D", "value": "$(LOG_LEVEL)/$(B)"},
        env_from=[{"configMapRef": {"name": "app-config"}}],
    )

    assert env["B"] == "1-$(UNDEFINED)-$(A)"
    # Only variables defined before are expanded.
    assert env["C"] == "$(LATER)"
    assert env["D"] == "info/1-$(UNDEFINED)-$(A)"


def test_expand_reduces_a_double_dollar_to_one() -> None:
    assert expand("$$ $$$(A) $(A) $(A", {"A": "x"}) == "$ $x x $(A"


async def test_env_overrides_env_from_and_a_variable_defined_twice_keeps_the_last_value() -> None:
    env = await _env(
        {"name": "LOG_LEVEL", "value": "warning"},
        {"name": "X", "value": "1"},
        {"name": "X", "value": "2"},
        env_from=[{"configMapRef": {"name": "app-config"}}],
    )

    assert env["LOG_LEVEL"] == "warning"
    assert env["X"] == "2"


async def test_value_from_reads_secret_and_configmap_keys_without_expanding_them() -> None:
    env = await _env(
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "PASSWORD"}}},
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "LOG_LEVEL"}}},
        {"name": "RAW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "RAW"}}},
    )

    assert env["DB_PASSWORD"] == "s3cret"
    assert env["LEVEL"] == "info"
    assert env["RAW"] == "$(LOG_LEVEL)"


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        ({"secretKeyRef": {"name": "db", "key": "MISSING"}}, "couldn't find key MISSING in secret shop/db"),
        (
            {"configMapKeyRef": {"name": "app-config", "key": "MISSING"}},
            "couldn't find key MISSING in configmap shop/app-config",
        ),
        ({"secretKeyRef": {"name": "absent", "key": "X"}}, 'secret "absent" not found'),
        ({"configMapKeyRef": {"name": "absent", "key": "X"}}, 'configmap "absent" not found'),
    ],
)
async def test_a_required_missing_key_or_object_fails_the_container(origin: dict[str, Any], message: str) -> None:
    with pytest.raises(ContainerConfigError) as raised:
        await _env({"name": "V", "valueFrom": origin})

    assert str(raised.value).lower() == message.lower()


@pytest.mark.parametrize(
    "origin",
    [
        {"secretKeyRef": {"name": "db", "key": "MISSING", "optional": True}},
        {"configMapKeyRef": {"name": "app-config", "key": "MISSING", "optional": True}},
        {"secretKeyRef": {"name": "absent", "key": "X", "optional": True}},
        {"configMapKeyRef": {"name": "absent", "key": "X", "optional": True}},
    ],
)
async def test_an_optional_missing_key_or_object_leaves_the_variable_unset(origin: dict[str, Any]) -> None:
    env = await _env({"name": "V", "value": "kept"}, {"name": "V", "valueFrom": origin})

    assert env == {"V": "kept"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "shop-cart-7d9f"),
        ("metadata.namespace", NAMESPACE),
        ("metadata.uid", "0b6c-uid"),
        ("metadata.labels['app.kubernetes.io/name']", "cart"),
        ("metadata.labels['absent']", ""),
        ("metadata.annotations['checkout.example.com/revision']", "7"),
        ("spec.nodeName", "kwok-node-0"),
        ("spec.serviceAccountName", "cart"),
        ("status.podIP", "127.0.0.1"),
        ("status.hostIP", "127.0.0.1"),
    ],
)
async def test_field_ref_reads_the_pod(path: str, value: str) -> None:
    env = await _env({"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}})

    assert env["V"] == value


async def test_an_unsupported_field_ref_fails_naming_the_path() -> None:
    with pytest.raises(ContainerConfigError, match=r"fieldRef 'status\.phase'"):
        await _env({"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}})


async def test_an_unknown_value_from_kind_fails_naming_the_variable() -> None:
    with pytest.raises(ContainerConfigError, match="env V: unsupported valueFrom"):
        await _env({"name": "V", "valueFrom": {"volumeRef": {"name": "x"}}})


async def test_resource_field_ref_reads_the_containers_limit() -> None:
    env = await _env(
        {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        resources={"limits": {"cpu": "2"}},
    )

    assert env["CPUS"] == "2"


async def test_resource_field_ref_to_an_unset_resource_fails_naming_it() -> None:
    with pytest.raises(ContainerConfigError, match=r"limits\.memory"):
        await _env(
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
            resources={"limits": {"cpu": "2"}},
        )


@pytest.mark.parametrize(
    ("resource", "limit", "value"), [("limits.cpu", "500m", "1"), ("limits.memory", "64Mi", "67108864")]
)
async def test_resource_field_ref_converts_the_quantity_like_the_kubelet(resource: str, limit: str, value: str) -> None:
    kind, _, name = resource.partition(".")
    env = await _env(
        {"name": "V", "valueFrom": {"resourceFieldRef": {"resource": resource}}},
        resources={kind: {name: limit}},
    )

    assert env["V"] == value


def test_command_line_expands_command_and_args() -> None:
    container = {"name": "app", "command": ["python", "-m", "$(MODULE)"], "args": ["--port", "$(PORT)", "$$(PORT)"]}

    argv = command_line(container, {"MODULE": "checkout_cart", "PORT": "8106"})

    assert argv == ["python", "-m", "checkout_cart", "--port", "8106", "$(PORT)"]


@pytest.mark.parametrize("container", [{"name": "app"}, {"name": "app", "command": [], "args": ["serve"]}])
def test_a_container_without_command_is_refused_naming_it(container: dict[str, Any]) -> None:
    with pytest.raises(ContainerConfigError, match="container 'app' has no command"):
        command_line(container, {})


ORCHESTRATOR = "127.0.0.1:41001"
CART = "127.0.0.1:41006"


def _network() -> Network:
    services = {
        **service_aliases("shop-checkout-orchestrator", NAMESPACE, 8101, ORCHESTRATOR, same_namespace=True),
        **service_aliases("shop-cart", "ns", 8106, CART, same_namespace=False),
    }
    return Network(ports={8100: 40001}, services=services)


def test_service_aliases_offer_the_short_name_only_within_the_namespace() -> None:
    assert set(service_aliases("cart", "ns", 80, "127.0.0.1:1", same_namespace=True)) == {
        "cart:80",
        "cart.ns:80",
        "cart.ns.svc:80",
        "cart.ns.svc.cluster.local:80",
    }
    assert "cart:80" not in service_aliases("cart", "ns", 80, "127.0.0.1:1", same_namespace=False)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("HTTP__PORT", "8100", "40001"),
        ("HTTP__PORT", "8200", "8200"),
        ("UPSTREAM_TIMEOUT", "8100", "8100"),
        ("HTTP__HOST", "0.0.0.0", "127.0.0.1"),  # noqa: S104 - the value localize replaces
        ("HTTP__HOST", "10.0.0.1", "10.0.0.1"),
        ("ORCHESTRATOR_URL", "http://shop-checkout-orchestrator:8101", f"http://{ORCHESTRATOR}"),
        ("ORCHESTRATOR_URL", "http://shop-checkout-orchestrator.shop.svc:8101/v1", f"http://{ORCHESTRATOR}/v1"),
        ("CART_URL", "http://shop-cart.ns.svc:8106/x", f"http://{CART}/x"),
        ("CART_ADDRESS", "shop-cart.ns.svc.cluster.local:8106", CART),
        ("CART_ADDRESS", "shop-cart.ns:8106", CART),
        ("PEERS", "shop-cart.ns:8106,shop-checkout-orchestrator:8101", f"{CART},{ORCHESTRATOR}"),
        # Another namespace: its short name is not ours to rewrite.
        ("CART_ADDRESS", "shop-cart:8106", "shop-cart:8106"),
        ("CART_ADDRESS", "shop-cart.ns:81060", "shop-cart.ns:81060"),
        ("CART_ADDRESS", "shop-cart.ns:8107", "shop-cart.ns:8107"),
        ("CART_ADDRESS", "xshop-cart.ns:8106", "xshop-cart.ns:8106"),
        ("CART_ADDRESS", "shop-cart.ns.other:8106", "shop-cart.ns.other:8106"),
        (
            "ORCHESTRATOR_URL",
            "http://shop-checkout-orchestrator.other:8101",
            "http://shop-checkout-orchestrator.other:8101",
        ),
        ("ORCHESTRATOR_URL", "http://xshop-checkout-orchestrator:8101", "http://xshop-checkout-orchestrator:8101"),
        ("ORCHESTRATOR_URL", "http://shop-checkout-orchestrator:81010", "http://shop-checkout-orchestrator:81010"),
    ],
)
def test_localize_rewrites_ports_wildcard_binds_and_service_addresses(key: str, value: str, expected: str) -> None:
    assert localize({key: value}, _network()) == {key: expected}


def test_localize_without_services_leaves_addresses_alone() -> None:
    env = {"URL": "http://shop-cart:8106", "HTTP__PORT": "8100"}

    assert localize(env, Network(ports={8100: 40001}, services={})) == {
        "URL": "http://shop-cart:8106",
        "HTTP__PORT": "40001",
    }


CONTAINER: dict[str, Any] = {
    "name": "app",
    "ports": [{"name": "http", "containerPort": 8100}, {"name": "metrics", "containerPort": 9100}],
}


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"httpGet": {"path": "/healthz", "port": "http"}}, ("/healthz", 40001)),
        ({"httpGet": {"path": "/ready", "port": 8100}}, ("/ready", 40001)),
        ({"httpGet": {"path": "/ready", "port": "8100"}}, ("/ready", 40001)),
        ({"httpGet": {"port": "http"}}, ("/", 40001)),
        # Declared but not remapped: the container port itself.
        ({"httpGet": {"path": "/metrics", "port": "metrics"}}, ("/metrics", 9100)),
    ],
)
def test_probe_port_resolves_named_and_numeric_ports_to_local_ones(
    probe: dict[str, Any], expected: tuple[str, int]
) -> None:
    assert probe_port(probe, CONTAINER, _network()) == expected


def test_a_probe_on_an_undeclared_named_port_is_refused() -> None:
    with pytest.raises(ContainerConfigError, match="probe port 'grpc'"):
        probe_port({"httpGet": {"port": "grpc"}}, CONTAINER, _network())


def test_container_ports_lists_every_declared_port() -> None:
    sidecar = {"name": "sidecar", "ports": [{"containerPort": 15000}]}

    assert container_ports([CONTAINER, sidecar, {"name": "no-ports"}]) == [8100, 9100, 15000]
