"""Workloads: every enabled service rendered from ``charts/checkout-service`` and server-side applied.

The chart is the single source of truth for a service's manifests: this module only derives the chart's
values from the spec (:func:`chart_values`), runs ``helm template``, stamps each object with the
platform's owner reference and labels, and applies it with server-side apply under the operator's own
field manager. Objects it applied earlier that the spec no longer wants (a disabled service, a
ServiceMonitor turned off) are pruned — found by label, deleted only if the platform owns them.

The Kubernetes client is synchronous, so each service's round trip runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import os
import tempfile
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from checkout_operator.outcome import Notice, Outcome
from checkout_operator.settings import ServiceImage, WorkloadSettings
from checkout_operator.spec import PlatformSpec, service_database, workload_name

log = logging.getLogger(__name__)

PLATFORM_LABEL: Final = "checkout.platform.io/platform"
SERVICE_LABEL: Final = "checkout.platform.io/service"
MANAGED_BY: Final = "checkout-operator"
RESTART_ANNOTATION: Final = "checkout.platform.io/restarted-at"
RESTART_FIELD_MANAGER_SUFFIX: Final = "-restart"
RENDER_TIMEOUT_S: Final = 30.0
YAML_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML has it: parsing ``helm template``'s output with the pure-Python one was a fifth
of the operator's CPU with 100 platforms applied at once (bench/operator/run.py under py-spy)."""
# Every kind the chart can render; pruning looks at these only.
MANAGED_KINDS: Final = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
)


@dataclass(frozen=True)
class Owner:
    """The ``CheckoutPlatform`` object the workloads belong to."""

    name: str
    namespace: str
    uid: str
    api_version: str = "checkout.platform.io/v1alpha1"
    kind: str = "CheckoutPlatform"

    def reference(self) -> dict[str, Any]:
        """The owner reference stamped on every object (garbage collection follows it on deletion)."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


class RenderError(RuntimeError):
    """``helm template`` failed: the message carries helm's own explanation."""


def split_image(image: str) -> dict[str, str]:
    """``repo[:tag][@sha256:…]`` → the chart's ``image`` values (a port in the host is not a tag)."""
    values: dict[str, str] = {}
    if "@" in image:
        image, values["digest"] = image.split("@", 1)
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        image, values["tag"] = image[:colon], image[colon + 1 :]
    values["repository"] = image
    return values


ANYWHERE: Final = "0.0.0.0/0"
"""A NetworkPolicy holds addresses, not names: a host given by name may be at any address."""


def _cidr(host: str) -> str:
    """``host`` as a one-address CIDR when it is an IP literal, else :data:`ANYWHERE`."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ANYWHERE
    return f"{address}/{address.max_prefixlen}"


def _port_of(server: str, default: int) -> int:
    """The port of ``host:port`` (``[v6]:port`` too); ``default`` when none is given."""
    head, _, tail = server.rpartition(":")
    return int(tail) if head and tail.isdigit() and not head.endswith(":") else default


def network_policy_values(owner: Owner, spec: PlatformSpec) -> dict[str, Any]:
    """The chart's NetworkPolicy narrowed to this platform: its peers by platform label, its endpoints' ports.

    Egress goes to the PostgreSQL host (one address when the spec gives an IP) and OTLP endpoint on their
    ports, and to the Kafka bootstrap ports at any address: a client then connects to whatever addresses the
    brokers advertise, which the spec does not say. The chart keeps its default deny for everything else.
    """
    egress: dict[str, Any] = {
        "kafka": {
            "cidrs": [ANYWHERE],
            "ports": sorted({_port_of(server, 9092) for server in spec.kafka.bootstrap_servers}),
        },
        "postgres": {"cidrs": [_cidr(spec.postgres.host)], "ports": [spec.postgres.port]},
    }
    if spec.tracing.otlp_endpoint:
        host = urlsplit(spec.tracing.otlp_endpoint).hostname or ""
        egress["otlp"] = {"cidrs": [_cidr(host)]}
    return {"enabled": True, "peerLabels": {PLATFORM_LABEL: owner.name}, "egress": egress}


def chart_values(
    owner: Owner, spec: PlatformSpec, service: str, default_images: Mapping[str, ServiceImage] | None = None
) -> dict[str, Any]:
    """The checkout-service chart's values for one service of the platform.

    The image: the spec's, else the operator's default for the service (``WORKLOADS__IMAGES``), else the
    chart's own.
    """
    settings = spec.service(service)
    database = service_database(owner.name, spec, service)
    values: dict[str, Any] = {
        "fullnameOverride": workload_name(owner.name, service),
        "service": {"name": service},
        "replicaCount": settings.replicas,
        "kafka": {"bootstrapServers": ",".join(spec.kafka.bootstrap_servers), "topicPrefix": spec.kafka.topic_prefix},
        "database": {"secretRef": {"name": database.secret_name, "key": "url"}, "schema": database.schema},
        "tracing": {"endpoint": spec.tracing.otlp_endpoint or "", "samplerRatio": spec.tracing.sampling_ratio},
        "extraEnv": [{"name": env.name, "value": env.value} for env in settings.env],
        "resources": settings.resources,
        "serviceMonitor": {"enabled": spec.metrics.service_monitor},
        "podLabels": {PLATFORM_LABEL: owner.name, SERVICE_LABEL: service},
        "networkPolicy": network_policy_values(owner, spec),
    }
    if service == "gateway-bff":
        # The gateway reads sagas from the orchestrator and proxies carts, through their Services.
        values["upstreams"] = {
            f"{key}Service": workload_name(owner.name, upstream)
            for key, upstream in (("orchestrator", "checkout-orchestrator"), ("cart", "cart"))
            if spec.service(upstream).enabled
        }
    if settings.image:
        values["image"] = split_image(settings.image)
    elif default_images and service in default_images:
        values["image"] = default_images[service].model_dump(exclude_defaults=True)
    return values


class ChartRenderer:
    """Runs ``helm template`` for a set of values; identical values are rendered once per process."""

    def __init__(self, settings: WorkloadSettings) -> None:
        self._settings = settings
        self._cache: dict[str, list[dict[str, Any]]] = {}
        self._home = tempfile.mkdtemp(prefix="checkout-operator-helm-")

    async def render(self, release: str, namespace: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The chart's objects for these values (deep copies: callers may stamp them)."""
        key = hashlib.sha256(json.dumps([release, namespace, values], sort_keys=True).encode()).hexdigest()
        if key not in self._cache:
            self._cache[key] = await self._helm_template(release, namespace, values)
        return json.loads(json.dumps(self._cache[key]))  # type: ignore[no-any-return]

    async def _helm_template(self, release: str, namespace: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        settings = self._settings
        args = [
            settings.helm_binary,
            "template",
            release,
            str(settings.chart_dir),
            "--namespace",
            namespace,
            "--kube-version",
            settings.kube_version,
            "--values",
            "-",
        ]
        # helm wants writable cache/config/data homes; the operator's root filesystem is read-only.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HELM_CACHE_HOME": f"{self._home}/cache",
            "HELM_CONFIG_HOME": f"{self._home}/config",
            "HELM_DATA_HOME": f"{self._home}/data",
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise RenderError(f"cannot run {settings.helm_binary!r}: {exc}") from exc
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(json.dumps(values).encode()), timeout=RENDER_TIMEOUT_S
            )
        except TimeoutError as exc:
            process.kill()
            await process.wait()
            raise RenderError(f"helm template did not finish within {RENDER_TIMEOUT_S:.0f} s") from exc
        if process.returncode != 0:
            raise RenderError(stderr.decode(errors="replace").strip() or f"helm exited with {process.returncode}")
        return [doc for doc in yaml.load_all(stdout, Loader=YAML_LOADER) if doc]


def stamp(objects: list[dict[str, Any]], owner: Owner, service: str) -> list[dict[str, Any]]:
    """Owner reference, platform labels and our managed-by on every object."""
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        labels = metadata.setdefault("labels", {})
        labels[PLATFORM_LABEL] = owner.name
        labels[SERVICE_LABEL] = service
        labels["app.kubernetes.io/managed-by"] = MANAGED_BY
        metadata["namespace"] = owner.namespace
        metadata["ownerReferences"] = [owner.reference()]
    return objects


@dataclass
class _ServiceResult:
    service: str
    replicas: int
    ready_replicas: int
    ready: bool
    message: str | None
    notices: list[Notice]


class WorkloadsReconciler:
    """Applies, prunes and observes the workloads of platforms (one instance per operator process)."""

    def __init__(self, dynamic: DynamicClient, settings: WorkloadSettings) -> None:
        self._dynamic = dynamic
        self._settings = settings
        self._renderer = ChartRenderer(settings)
        # The client's discovery cache is not thread-safe: a miss (a kind without a CRD) rebuilds it while
        # another platform's pass, in another worker thread, reads it — KeyError: 'resources'. Found by
        # bench/operator/run.py: 10 platforms applied at once failed passes and backed off for a minute.
        self._discovery = threading.Lock()

    def _resource(self, api_version: str, kind: str) -> Any:
        """The API resource of a kind (discovery, serialised across threads)."""
        with self._discovery:
            return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def _forget_discovery(self) -> None:
        with self._discovery:
            self._dynamic.resources.invalidate_cache()

    async def reconcile(
        self,
        owner: Owner,
        spec: PlatformSpec,
        known_services: Collection[str] = (),
        restart: Mapping[str, str] | None = None,
    ) -> Outcome:
        """Converge every enabled service; prune the rest.

        ``known_services``: services that had a workload in an earlier pass (from the status), so a
        missing Deployment of one of them is reported as repaired drift. ``restart``: service →
        timestamp, to roll a Deployment (e.g. after its schema was recreated, so migrations run).
        """
        enabled = spec.enabled_services()
        rendered: dict[str, list[dict[str, Any]]] = {}
        try:
            for service in enabled:
                objects = await self._renderer.render(
                    workload_name(owner.name, service),
                    owner.namespace,
                    chart_values(owner, spec, service, self._settings.images),
                )
                rendered[service] = stamp(objects, owner, service)
        except RenderError as exc:
            return Outcome(False, "RenderFailed", f"rendering charts/checkout-service failed: {exc}", retry=True)

        results: list[_ServiceResult] = []
        notices: list[Notice] = []
        failures: list[str] = []
        try:
            existing = await asyncio.to_thread(self._list_managed, owner)
        except ApiException as exc:
            message = f"could not list the platform's objects: {_api_error(exc)}"
            return Outcome(False, "ApplyFailed", message, retry=True)
        for service in enabled:
            try:
                result = await asyncio.to_thread(
                    self._apply_service,
                    owner,
                    service,
                    rendered[service],
                    service in known_services,
                    (restart or {}).get(service),
                    existing,
                )
            except ApiException as exc:
                failures.append(f"{service}: {_api_error(exc)}")
                results.append(_ServiceResult(service, spec.service(service).replicas, 0, False, _api_error(exc), []))
                continue
            except ResourceNotFoundError as exc:
                reason = "ServiceMonitorCRDMissing" if "ServiceMonitor" in str(exc) else "ApplyFailed"
                message = (
                    "spec.metrics.serviceMonitor is true but the ServiceMonitor CRD (monitoring.coreos.com/v1) "
                    "is not installed; install the Prometheus Operator CRDs or set it to false"
                    if reason == "ServiceMonitorCRDMissing"
                    else str(exc)
                )
                return Outcome(False, reason, message, retry=True)
            results.append(result)
            notices.extend(result.notices)

        try:
            pruned = await asyncio.to_thread(self._prune, owner, rendered, existing)
        except ApiException as exc:
            failures.append(f"pruning: {_api_error(exc)}")
            pruned = []
        notices.extend(pruned)

        detail = [
            {
                "service": r.service,
                "replicas": r.replicas,
                "readyReplicas": r.ready_replicas,
                "ready": r.ready,
                **({"message": r.message} if r.message else {}),
            }
            for r in results
        ]
        if failures:
            return Outcome(
                False,
                "ApplyFailed",
                "could not apply: " + "; ".join(failures),
                detail=detail,
                notices=notices,
                retry=True,
            )
        waiting = [r for r in results if not r.ready]
        if waiting:
            message = "waiting for " + ", ".join(
                f"{r.service} ({r.ready_replicas}/{r.replicas} ready{': ' + r.message if r.message else ''})"
                for r in waiting
            )
            return Outcome(False, "WorkloadsProgressing", message, detail=detail, notices=notices, requeue_s=3.0)
        names = ", ".join(f"{r.service} {r.ready_replicas}/{r.replicas}" for r in results)
        return Outcome(True, "WorkloadsReady", f"{len(results)} services ready ({names})", detail, notices)

    def _apply_service(
        self,
        owner: Owner,
        service: str,
        objects: list[dict[str, Any]],
        known: bool,
        restart_stamp: str | None,
        listed: Mapping[tuple[str, str], Any],
    ) -> _ServiceResult:
        """Apply one service's objects; ``listed`` (from :meth:`_list_managed`) says which exist already."""
        notices: list[Notice] = []
        deployment: Any = None
        for obj in objects:
            resource = self._resource(obj["apiVersion"], obj["kind"])
            name = obj["metadata"]["name"]
            existing = listed.get((obj["kind"], name))
            if existing is None and known:
                notices.append(
                    Notice("Warning", "WorkloadRecreated", f"{obj['kind']} {name} was missing and was recreated")
                )
            elif existing is None and obj["kind"] == "Deployment":
                notices.append(Notice("Normal", "WorkloadCreated", f"created Deployment {name} for {service}"))
            elif existing is not None and obj["kind"] == "Deployment":
                wanted, actual = obj["spec"].get("replicas"), existing.spec.replicas
                if wanted is not None and actual != wanted:
                    notices.append(
                        Notice(
                            "Warning",
                            "WorkloadDriftReverted",
                            f"Deployment {name}: replicas {actual} -> {wanted} (reverted to spec)",
                        )
                    )
            applied = self._dynamic.server_side_apply(
                resource,
                body=obj,
                name=name,
                namespace=owner.namespace,
                field_manager=self._settings.field_manager,
                force_conflicts=True,
            )
            if obj["kind"] == "Deployment":
                deployment = applied
        if deployment is not None and restart_stamp:
            deployment = self._restart(deployment, owner.namespace, restart_stamp, service, notices)
        if deployment is None:
            return _ServiceResult(service, 0, 0, False, "the chart rendered no Deployment", notices)
        return _deployment_result(service, deployment, notices)

    def _restart(self, deployment: Any, namespace: str, stamp_: str, service: str, notices: list[Notice]) -> Any:
        """Roll the Deployment by a pod-template annotation owned by a separate field manager.

        A separate manager keeps the annotation out of the main apply's field set, so the next regular
        apply neither removes it (which would roll again) nor has to remember it.
        """
        current = (deployment.spec.template.metadata.annotations or {}).get(RESTART_ANNOTATION)
        if current == stamp_:
            return deployment
        resource = self._resource("apps/v1", "Deployment")
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": deployment.metadata.name, "namespace": namespace},
            "spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: stamp_}}}},
        }
        notices.append(
            Notice("Normal", "WorkloadRestarted", f"restarting Deployment {deployment.metadata.name} ({service})")
        )
        return self._dynamic.server_side_apply(
            resource,
            body=body,
            name=deployment.metadata.name,
            namespace=namespace,
            field_manager=self._settings.field_manager + RESTART_FIELD_MANAGER_SUFFIX,
            force_conflicts=True,
        )

    def _list_managed(self, owner: Owner) -> dict[tuple[str, str], Any]:
        """Every object of a managed kind labelled as this platform's and ours: ``(kind, name)`` -> object.

        One list per kind (by label) instead of a GET per object before each apply: 100 platforms applied at once
        made the per-object GETs a tenth of the operator's CPU. Kinds the cluster does not serve are skipped.
        """
        selector = f"{PLATFORM_LABEL}={owner.name},app.kubernetes.io/managed-by={MANAGED_BY}"
        found: dict[tuple[str, str], Any] = {}
        for api_version, kind in MANAGED_KINDS:
            try:
                resource = self._resource(api_version, kind)
            except ResourceNotFoundError:
                continue  # e.g. no ServiceMonitor CRD: nothing of that kind can exist
            try:
                items = self._dynamic.get(resource, namespace=owner.namespace, label_selector=selector).items
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._forget_discovery()  # the kind went away (a CRD was removed)
                continue
            for item in items:
                found[(kind, item.metadata.name)] = item
        return found

    def _prune(
        self,
        owner: Owner,
        rendered: Mapping[str, list[dict[str, Any]]],
        listed: Mapping[tuple[str, str], Any] | None = None,
    ) -> list[Notice]:
        """Delete the platform's objects no enabled service renders any more (``listed``: as listed this pass)."""
        wanted = {(obj["kind"], obj["metadata"]["name"]) for objects in rendered.values() for obj in objects}
        if listed is None:
            listed = self._list_managed(owner)
        api_versions = dict((kind, api_version) for api_version, kind in MANAGED_KINDS)
        notices = []
        for (kind, name), item in listed.items():
            refs = item.metadata.ownerReferences or []
            if (kind, name) in wanted or not any(ref.uid == owner.uid for ref in refs):
                continue
            try:
                self._dynamic.delete(self._resource(api_versions[kind], kind), name=name, namespace=owner.namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
            service = (item.metadata.labels or {}).get(SERVICE_LABEL, "?")
            notices.append(Notice("Normal", "WorkloadPruned", f"deleted {kind} {name} ({service} no longer wants it)"))
        return notices

    async def delete_all(self, owner: Owner) -> None:
        """Delete every object applied for the platform (garbage collection would, but not at once)."""
        await asyncio.to_thread(self._prune, owner, {})


def _deployment_result(service: str, deployment: Any, notices: list[Notice]) -> _ServiceResult:
    """Ready when the controller has seen the latest generation and every replica is updated and ready."""
    spec_replicas = int(deployment.spec.replicas or 0)
    status = deployment.status or {}
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    observed = int(status.get("observedGeneration") or 0)
    message = None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            message = f"rollout stalled: {cond.get('message')}"
    is_ready = (
        observed >= int(deployment.metadata.generation or 0)
        and updated >= spec_replicas
        and ready >= spec_replicas
        and available >= spec_replicas
    )
    if not is_ready and message is None and observed < int(deployment.metadata.generation or 0):
        message = "rollout not yet observed by the Deployment controller"
    return _ServiceResult(service, spec_replicas, ready, is_ready, message, notices)


def _api_error(exc: ApiException) -> str:
    """The API server's own message (``Status.message``) rather than the whole HTTP dump."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return f"{exc.status} {body.get('reason') or exc.reason}: {body.get('message') or exc.body}"
