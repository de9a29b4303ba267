"""A container of a Pod spec → the command line and environment of a local process.

Kubernetes semantics, as the kubelet applies them: ``envFrom`` first (ConfigMaps and Secrets, with
an optional prefix), then ``env`` in order, each ``value`` expanded for ``$(NAME)`` references to
variables defined before it (``$$`` escapes); ``valueFrom`` reads a Secret or ConfigMap key, a Pod
field, or a resource limit; a missing object or key fails the container with a clear message unless
the reference is ``optional``. ``command``/``args`` are expanded the same way.

Then the node-local rewrites (see the package docstring), and only those: :func:`localize`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

ObjectData = Callable[[str, str], Awaitable[dict[str, str] | None]]
"""(namespace, name) → the decoded ``data`` of a ConfigMap or Secret, or None when it does not exist."""

REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ContainerConfigError(RuntimeError):
    """The container cannot be started as specified (what the kubelet calls CreateContainerConfigError)."""


@dataclass(frozen=True)
class Sources:
    """Where references in a Pod spec are resolved."""

    config_map: ObjectData
    secret: ObjectData


def expand(value: str, env: Mapping[str, str]) -> str:
    """``$(NAME)`` → its value if defined (left as is otherwise); ``$$`` → ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return REFERENCE.sub(replace, value)


def _field(pod: Mapping[str, Any], path: str) -> str:
    metadata = pod.get("metadata", {})
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": pod.get("spec", {}).get("nodeName"),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path] or "")
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if keyed:
        return str((metadata.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    raise ContainerConfigError(f"fieldRef {path!r} is not supported on this node")


_SUFFIXES = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12), "P": Fraction(10**15),
    "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}  # fmt: skip


def quantity(text: str) -> Fraction:
    """A Kubernetes quantity (``500m``, ``64Mi``, ``1.5``, ``2e3``) as an exact number."""
    match = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?", text.strip())
    if match is None:
        raise ContainerConfigError(f"{text!r} is not a Kubernetes quantity")
    return Fraction(match.group(1)) * _SUFFIXES[match.group(2) or ""]


def _resource(container: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """The value the kubelet gives: the quantity divided by ``divisor`` (default 1), rounded up."""
    resource = str(reference["resource"])
    kind, _, name = resource.partition(".")
    value = (container.get("resources") or {}).get(kind, {}).get(name)
    if value is None:
        raise ContainerConfigError(f"resourceFieldRef {resource!r}: the container sets no {resource}")
    divisor = quantity(str(reference.get("divisor", "1")))
    if divisor <= 0:
        raise ContainerConfigError(f"resourceFieldRef {resource!r}: divisor must be positive")
    return str(math.ceil(quantity(str(value)) / divisor))


async def _key(source: ObjectData, kind: str, namespace: str, reference: Mapping[str, Any]) -> str | None:
    data = await source(namespace, reference["name"])
    optional = bool(reference.get("optional", False))
    if data is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind} "{reference["name"]}" not found')
    if reference["key"] not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {reference['key']} in {kind} {namespace}/{reference['name']}")
    return data[reference["key"]]


async def resolve_env(pod: Mapping[str, Any], container: Mapping[str, Any], sources: Sources) -> dict[str, str]:
    """The container's environment as the kubelet would give it (before :func:`localize`)."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, lookup in (("configMapRef", sources.config_map), ("secretRef", sources.secret)):
            reference = source.get(kind)
            if reference is None:
                continue
            data = await lookup(namespace, reference["name"])
            if data is None:
                if reference.get("optional"):
                    continue
                label = "configmap" if kind == "configMapRef" else "secret"
                raise ContainerConfigError(f'{label} "{reference["name"]}" not found')
            env.update({f"{prefix}{key}": value for key, value in data.items()})
    for variable in container.get("env") or []:
        name = variable["name"]
        if "valueFrom" not in variable:
            env[name] = expand(str(variable.get("value", "")), env)
            continue
        origin = variable["valueFrom"]
        value: str | None
        if "secretKeyRef" in origin:
            value = await _key(sources.secret, "secret", namespace, origin["secretKeyRef"])
        elif "configMapKeyRef" in origin:
            value = await _key(sources.config_map, "configmap", namespace, origin["configMapKeyRef"])
        elif "fieldRef" in origin:
            value = _field(pod, origin["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in origin:
            value = _resource(container, origin["resourceFieldRef"])
        else:
            raise ContainerConfigError(f"env {name}: unsupported valueFrom {sorted(origin)}")
        if value is not None:
            env[name] = value
    return env


def command_line(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` expanded; a container without ``command`` has no entry point we know of."""
    command = container.get("command")
    if not command:
        raise ContainerConfigError(
            f"container {container['name']!r} has no command: this node runs only containers that say what to run"
        )
    return [expand(str(word), env) for word in [*command, *(container.get("args") or [])]]


@dataclass(frozen=True)
class Network:
    """How addresses inside a Pod map onto this host."""

    ports: Mapping[int, int]
    """containerPort → the local port the process listens on instead."""
    services: Mapping[str, str]
    """``<service>[.<namespace>[.svc[.cluster.local]]]:<port>`` → ``127.0.0.1:<proxy port>``."""


def service_aliases(name: str, namespace: str, port: int, local: str, *, same_namespace: bool) -> dict[str, str]:
    """The DNS forms a Pod may use for a Service port, each → its local address."""
    forms = [f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
    if same_namespace:
        forms.append(name)
    return {f"{form}:{port}": local for form in forms}


def localize(env: Mapping[str, str], network: Network) -> dict[str, str]:
    """The node-local rewrites: container ports, wildcard binds and Service addresses."""
    aliases = sorted(network.services, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, aliases)) + r")(?![\w.-])") if aliases else None
    result = {}
    for key, value in env.items():
        if key.endswith("PORT") and value.isdigit() and int(value) in network.ports:
            value = str(network.ports[int(value)])
        elif key.endswith("HOST") and value == "0.0.0.0":  # noqa: S104 - the value we replace
            value = "127.0.0.1"
        elif pattern is not None:
            value = pattern.sub(lambda match: network.services[match.group(1)], value)
        result[key] = value
    return result


def probe_port(probe: Mapping[str, Any], container: Mapping[str, Any], network: Network) -> tuple[str, int]:
    """(path, local port) of an ``httpGet`` probe; a named port is looked up in the container's ports."""
    http = probe["httpGet"]
    port = http["port"]
    if isinstance(port, str) and not port.isdigit():
        named = {p.get("name"): int(p["containerPort"]) for p in container.get("ports") or []}
        if port not in named:
            raise ContainerConfigError(f"probe port {port!r} is not a port of container {container['name']!r}")
        port = named[port]
    container_port = int(port)
    return str(http.get("path", "/")), int(network.ports.get(container_port, container_port))


def container_ports(containers: Sequence[Mapping[str, Any]]) -> list[int]:
    """Every declared containerPort of a Pod."""
    return [int(p["containerPort"]) for c in containers for p in c.get("ports") or []]
