"""Kafka topics: converge the platform's five topics on what the spec wants, and delete them.

A pass is level-based: compute the desired topics from the spec, observe Kafka, plan, apply, report.
Planning (:func:`plan_topic`, :func:`settle_topic`, :func:`summarise`) is pure, so every branch is
tested without a broker; the I/O around it only observes, applies the plan and classifies failures.

What the operator will not do, it reports instead: Kafka cannot remove partitions, and a replication
factor change needs a partition reassignment, so both leave the topic as it is with a precise message.
Configs are the operator's: every dynamic topic-level config must equal the spec's, and one set by hand
is reverted. Kafka's (non-incremental) AlterConfigs replaces a topic's whole dynamic set, which is what
reverting needs: the full desired set is sent, and keys the spec does not own fall back to the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    InvalidConfigurationError,
    InvalidRequestError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NoBrokersAvailable,
    NodeNotReadyError,
    PolicyViolationError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from checkout_operator.outcome import Notice, Outcome
from checkout_operator.settings import KafkaClientSettings
from checkout_operator.spec import DesiredTopic, KafkaSpec, desired_topics

log = logging.getLogger(__name__)

TopicState = Literal["Ready", "Created", "Updated", "ShrinkRefused", "ReplicationChangeRefused", "Error"]
Step = Literal["create", "grow", "configs"]

DYNAMIC_TOPIC_CONFIG: Final = 1
"""``ConfigSource`` of DescribeConfigs v1+ for a config set on the topic itself (not inherited)."""

_UNREACHABLE: Final = (OSError, KafkaConnectionError, NodeNotReadyError, NoBrokersAvailable, KafkaTimeoutError)
"""Failures meaning no broker answered (``TimeoutError`` is an ``OSError``), as opposed to a broker refusing."""

_CONFIG_REJECTED: Final = (InvalidConfigurationError, InvalidRequestError, PolicyViolationError)
"""Broker answers to create/alter meaning the spec's configs are wrong: retrying will not help."""

_PROBLEM_ORDER: Final = (
    "KafkaUnreachable",
    "KafkaError",
    "TopicConfigRejected",
    "PartitionShrinkRefused",
    "ReplicationFactorChangeRefused",
)
"""Which problem names the condition when several topics have one: the most fundamental first."""


@dataclass(frozen=True)
class ObservedTopic:
    """One topic as Kafka has it."""

    name: str
    partitions: int
    replication_factor: int
    dynamic_configs: dict[str, str]
    """Configs set on the topic itself (``DYNAMIC_TOPIC_CONFIG``); inherited ones are not listed."""


@dataclass(frozen=True)
class Problem:
    """Why a topic does not match the spec, as it will read in the condition."""

    reason: str
    message: str
    retry: bool


@dataclass(frozen=True)
class ConfigChange:
    """One dynamic topic config that differs from the spec; ``None`` means unset (Kafka's default applies)."""

    key: str
    old: str | None
    new: str | None

    def describe(self) -> str:
        """``retention.ms 1000 -> -1 (reverted to spec)``."""
        old = "default" if self.old is None else self.old
        new = "default" if self.new is None else self.new
        if self.new is None:
            why = "not in spec"
        elif self.old is None:
            why = "set from spec"
        else:
            why = "reverted to spec"
        return f"{self.key} {old} -> {new} ({why})"


@dataclass(frozen=True)
class TopicPlan:
    """What one pass does to one topic, and what it refuses to do."""

    desired: DesiredTopic
    observed: ObservedTopic | None
    create: bool = False
    grow_to: int | None = None
    config_changes: tuple[ConfigChange, ...] = ()
    refusals: tuple[Problem, ...] = ()

    @property
    def has_actions(self) -> bool:
        """Whether Kafka must be asked to change anything."""
        return self.create or self.grow_to is not None or bool(self.config_changes)


@dataclass(frozen=True)
class TopicReport:
    """The result of one topic's pass: its status entry, its Events and its problems."""

    detail: dict[str, Any]
    notices: tuple[Notice, ...] = ()
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class _Target:
    """Where the pass talks to, for messages and bounds."""

    servers: str
    timeout_s: float


def canonical_config_value(value: str) -> str:
    """The form Kafka stores a typed config value in, so a spec's ``"compact, delete"`` is no drift.

    Kafka parses values by type and describes them back normalised: lists without blanks
    (``compact,delete``), booleans lower-case, numbers without leading zeros or ``+``. Comparing raw
    strings would revert such a topic on every pass.
    """
    text = value.strip()
    if "," in text:
        return ",".join(canonical_config_value(part) for part in text.split(","))
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        return str(int(text))
    except ValueError:
        pass
    try:
        return repr(float(text))
    except ValueError:
        return text


def plan_topic(desired: DesiredTopic, observed: ObservedTopic | None) -> TopicPlan:
    """Compare one topic with the spec; missing → create, fewer partitions → grow, drift → revert."""
    if observed is None:
        # Created with its configs, so there is nothing to revert.
        return TopicPlan(desired=desired, observed=None, create=True)
    refusals: list[Problem] = []
    grow_to = None
    if observed.partitions < desired.partitions:
        grow_to = desired.partitions
    elif observed.partitions > desired.partitions:
        refusals.append(
            Problem(
                reason="PartitionShrinkRefused",
                message=(
                    f"{desired.name} has {observed.partitions} partitions but the spec wants {desired.partitions}: "
                    f"Kafka cannot reduce partitions; raise the spec back to {observed.partitions} "
                    "or recreate the topic by hand"
                ),
                retry=False,
            )
        )
    if observed.replication_factor != desired.replication_factor:
        refusals.append(
            Problem(
                reason="ReplicationFactorChangeRefused",
                message=(
                    f"{desired.name} has replication factor {observed.replication_factor} but the spec wants "
                    f"{desired.replication_factor}: changing it needs a partition reassignment, which the operator "
                    f"does not do; set the spec back to {observed.replication_factor} or reassign the partitions "
                    "by hand (kafka-reassign-partitions)"
                ),
                retry=False,
            )
        )
    return TopicPlan(
        desired=desired,
        observed=observed,
        grow_to=grow_to,
        config_changes=config_drift(desired.configs, observed.dynamic_configs),
        refusals=tuple(refusals),
    )


def config_drift(desired: Mapping[str, str], dynamic: Mapping[str, str]) -> tuple[ConfigChange, ...]:
    """Spec keys whose value differs or is unset, then dynamic keys the spec does not own (each sorted)."""
    changes = [
        ConfigChange(key, dynamic.get(key), value)
        for key, value in sorted(desired.items())
        if key not in dynamic or canonical_config_value(dynamic[key]) != canonical_config_value(value)
    ]
    changes += [ConfigChange(key, dynamic[key], None) for key in sorted(dynamic) if key not in desired]
    return tuple(changes)


def settle_topic(plan: TopicPlan, done: frozenset[Step], failure: Problem | None = None) -> TopicReport:
    """The status entry and Events of a topic, given which steps of its plan Kafka accepted."""
    desired, observed = plan.desired, plan.observed
    if "create" in done:
        partitions, replication = desired.partitions, desired.replication_factor
    elif observed is None:
        partitions, replication = 0, 0
    else:
        partitions = plan.grow_to if "grow" in done and plan.grow_to is not None else observed.partitions
        replication = observed.replication_factor

    notices: list[Notice] = []
    updates: list[str] = []
    if "create" in done:
        notices.append(
            Notice(
                "Normal",
                "TopicCreated",
                f"created missing topic {desired.name} with {_plural(desired.partitions, 'partition')} "
                f"and replication factor {desired.replication_factor}",
            )
        )
    if "grow" in done and observed is not None:
        notices.append(
            Notice(
                "Normal",
                "TopicPartitionsIncreased",
                f"increased partitions of {desired.name} from {observed.partitions} to {plan.grow_to}",
            )
        )
        updates.append(f"partitions {observed.partitions} -> {plan.grow_to}")
    if "configs" in done:
        changes = "; ".join(change.describe() for change in plan.config_changes)
        notices.append(Notice("Warning", "TopicConfigReverted", f"{desired.name}: {changes}"))
        updates.append(f"configs reverted: {', '.join(change.key for change in plan.config_changes)}")
    notices += [Notice("Warning", refusal.reason, refusal.message) for refusal in plan.refusals]
    problems = [*plan.refusals]
    if failure is not None:
        problems.insert(0, failure)
        if failure.reason == "TopicConfigRejected":
            notices.append(Notice("Warning", failure.reason, failure.message))

    state: TopicState
    if failure is not None:
        state, message = "Error", failure.message
    elif any(refusal.reason == "PartitionShrinkRefused" for refusal in plan.refusals):
        state, message = "ShrinkRefused", "; ".join(refusal.message for refusal in plan.refusals)
    elif plan.refusals:
        state, message = "ReplicationChangeRefused", "; ".join(refusal.message for refusal in plan.refusals)
    elif "create" in done:
        state, message = "Created", f"created with {_plural(partitions, 'partition')}"
    elif updates:
        state, message = "Updated", "; ".join(updates)
    else:
        state, message = "Ready", ""

    detail: dict[str, Any] = {
        "name": desired.name,
        "partitions": partitions,
        "replicationFactor": replication,
        "state": state,
        "ready": state in ("Ready", "Created", "Updated"),
    }
    if message:
        detail["message"] = message
    return TopicReport(detail=detail, notices=tuple(notices), problems=tuple(problems))


def summarise(reports: Iterable[TopicReport]) -> Outcome:
    """One condition for all topics: ready, or named after the most fundamental problem."""
    reports = list(reports)
    detail = [report.detail for report in reports]
    notices = [notice for report in reports for notice in report.notices]
    # dict.fromkeys: topics skipped after a lost connection share one problem, reported once.
    problems = sorted(
        dict.fromkeys(problem for report in reports for problem in report.problems),
        key=lambda problem: _PROBLEM_ORDER.index(problem.reason) if problem.reason in _PROBLEM_ORDER else 0,
    )
    if not problems:
        sizes = ", ".join(f"{entry['name']} {entry['partitions']}" for entry in detail)
        return Outcome(
            ready=True,
            reason="TopicsReady",
            message=f"{len(detail)} topics ready (partitions: {sizes})",
            detail=detail,
            notices=notices,
        )
    first = problems[0]
    message = first.message
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s), see the topics in the status)"
    return Outcome(
        ready=False,
        reason=first.reason,
        message=message,
        detail=detail,
        notices=notices,
        retry=any(problem.retry for problem in problems),
    )


def dynamic_configs(resource: Mapping[str, Any]) -> dict[str, str]:
    """The configs set on the topic itself, from one resource of a DescribeConfigs response.

    v1+ responses carry ``config_source``; v0 only ``is_default``, which also counts broker-level
    overrides as set (aiokafka negotiates the highest version, and Kafka 4 no longer serves v0).
    """
    configs = {}
    for entry in resource["config_entries"]:
        if "config_source" in entry:
            dynamic = entry["config_source"] == DYNAMIC_TOPIC_CONFIG
        else:
            dynamic = not entry["is_default"]
        if dynamic:
            value = entry["config_value"]
            configs[str(entry["config_names"])] = "" if value is None else str(value)
    return configs


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _servers(kafka: KafkaSpec) -> str:
    return ",".join(kafka.bootstrap_servers)


def _cause(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "no answer in time"
    if isinstance(err, KafkaConnectionError) and "bootstrap" in str(err):
        # aiokafka logs the socket error and raises a message listing resolved addresses.
        return "no bootstrap server accepted a connection"
    return str(err) or type(err).__name__


def _unreachable(target: _Target, err: BaseException, doing: str = "") -> Problem:
    return Problem(
        reason="KafkaUnreachable",
        message=(
            f"cannot reach Kafka at {target.servers} within {target.timeout_s:g} s"
            f"{' while ' + doing if doing else ''}: {_cause(err)}; retrying"
        ),
        retry=True,
    )


@asynccontextmanager
async def _admin(kafka: KafkaSpec, client: KafkaClientSettings) -> AsyncIterator[Any]:
    """A started admin client, closed on the way out whatever happened."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=list(kafka.bootstrap_servers),
        client_id="checkout-operator",
        request_timeout_ms=int(client.timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), client.timeout_s)
        yield admin
    finally:
        with contextlib.suppress(KafkaError, OSError):
            await asyncio.wait_for(admin.close(), client.timeout_s)


async def _existing(admin: Any, names: Iterable[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Metadata of those of ``names`` that exist.

    Asks for every topic rather than for ``names``: aiokafka's Metadata request for named topics sets
    ``allow_auto_topic_creation``, which on a broker with auto-creation on would create a missing topic
    with the broker's defaults instead of the spec's.
    """
    wanted = set(names)
    existing = {}
    for topic in await asyncio.wait_for(admin.describe_topics(), timeout_s):
        if topic["topic"] not in wanted:
            continue
        if topic["error_code"] and not topic["partitions"]:
            raise for_code(topic["error_code"])(f"describing topic {topic['topic']}")
        existing[str(topic["topic"])] = topic
    return existing


METADATA_POLL_S: Final = 0.1


async def _await_metadata(admin: Any, reports: Iterable[TopicReport], timeout_s: float) -> None:
    """Wait (bounded) until the broker's metadata serves what this pass created or grew.

    CreateTopics and CreatePartitions answer once the controller has committed; the broker that
    answers Metadata applies the change a moment later (longer on a loaded machine). Without this
    wait the next pass could find a topic it just created "missing" and try to create it again.
    """
    wanted = {
        str(report.detail["name"]): int(report.detail.get("partitions") or 0)
        for report in reports
        if report.detail.get("state") in ("Created", "Updated") and not report.problems
    }
    if not wanted:
        return
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        existing = await _existing(admin, wanted, timeout_s)
        if all(name in existing and len(existing[name]["partitions"]) >= n for name, n in wanted.items()):
            return
        await asyncio.sleep(METADATA_POLL_S)


async def _observe(admin: Any, desired: list[DesiredTopic], timeout_s: float) -> dict[str, ObservedTopic]:
    existing = await _existing(admin, (topic.name for topic in desired), timeout_s)
    if not existing:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in existing]
    responses = await asyncio.wait_for(admin.describe_configs(resources), timeout_s)
    observed = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            name = str(resource["resource_name"])
            if resource["error_code"] == UnknownTopicOrPartitionError.errno:
                continue  # deleted since the metadata answer: missing, so it is created again
            if resource["error_code"]:
                raise for_code(resource["error_code"])(f"describing configs of {name}: {resource['error_message']}")
            partitions = existing[name]["partitions"]
            observed[name] = ObservedTopic(
                name=name,
                partitions=len(partitions),
                replication_factor=max((len(partition["replicas"]) for partition in partitions), default=0),
                dynamic_configs=dynamic_configs(resource),
            )
    return observed


def _rejected(desired: DesiredTopic, error_message: str | None, err: KafkaError) -> Problem:
    text = error_message or str(err)
    keys = [key for key in sorted(desired.configs) if key in text] or sorted(desired.configs)
    return Problem(
        reason="TopicConfigRejected",
        message=(
            f"Kafka rejected the config of {desired.name} ({', '.join(keys)}): {text}; "
            "correct spec.kafka (defaults or topics) to a value Kafka accepts"
        ),
        retry=False,
    )


async def _create(admin: Any, desired: DesiredTopic, target: _Target) -> Problem | None:
    new_topic = NewTopic(
        desired.name, desired.partitions, desired.replication_factor, topic_configs=dict(desired.configs)
    )
    response = await asyncio.wait_for(
        admin.create_topics([new_topic], timeout_ms=int(target.timeout_s * 1000)), target.timeout_s
    )
    for entry in response.to_object()["topic_errors"]:
        code, error_message = entry["error_code"], entry.get("error_message")
        if not code:
            continue
        err = for_code(code)(error_message)
        if isinstance(err, _CONFIG_REJECTED):
            return _rejected(desired, error_message, err)
        if isinstance(err, TopicAlreadyExistsError):
            return Problem(
                reason="KafkaError",
                message=(
                    f"{desired.name} is missing but Kafka says it already exists: it is most likely still being "
                    f"deleted, or was created a moment ago ({error_message}); retrying"
                ),
                retry=True,
            )
        return Problem(reason="KafkaError", message=f"creating {desired.name} failed: {err}; retrying", retry=True)
    return None


async def _alter(admin: Any, plan: TopicPlan, target: _Target) -> Problem | None:
    # The full desired set: AlterConfigs replaces the topic's dynamic configs, dropping keys set by hand.
    resource = ConfigResource(ConfigResourceType.TOPIC, plan.desired.name, dict(plan.desired.configs))
    responses = await asyncio.wait_for(admin.alter_configs([resource]), target.timeout_s)
    for response in responses:
        for entry in response.to_object()["resources"]:
            code, error_message = entry["error_code"], entry.get("error_message")
            if not code:
                continue
            err = for_code(code)(error_message)
            if isinstance(err, _CONFIG_REJECTED):
                return _rejected(plan.desired, error_message, err)
            return Problem(
                reason="KafkaError",
                message=f"reverting the configs of {plan.desired.name} failed: {err}; retrying",
                retry=True,
            )
    return None


async def _converge(admin: Any, plan: TopicPlan, target: _Target) -> TopicReport:
    """Apply one topic's plan; a broker's refusal or a lost connection becomes the topic's problem."""
    done: set[Step] = set()
    failure: Problem | None = None
    doing = ""
    try:
        if plan.create:
            doing = f"creating {plan.desired.name}"
            failure = await _create(admin, plan.desired, target)
            if failure is None:
                done.add("create")
        if plan.grow_to is not None:
            doing = f"adding partitions to {plan.desired.name}"
            # create_partitions raises (rather than returning) the broker's error.
            await asyncio.wait_for(
                admin.create_partitions(
                    {plan.desired.name: NewPartitions(plan.grow_to)}, timeout_ms=int(target.timeout_s * 1000)
                ),
                target.timeout_s,
            )
            done.add("grow")
        if plan.config_changes:
            doing = f"reverting the configs of {plan.desired.name}"
            failure = await _alter(admin, plan, target)
            if failure is None:
                done.add("configs")
    except _UNREACHABLE as err:
        failure = _unreachable(target, err, doing)
    except KafkaError as err:
        failure = Problem(reason="KafkaError", message=f"{doing} failed: {err}; retrying", retry=True)
    return settle_topic(plan, frozenset(done), failure)


async def reconcile_topics(kafka: KafkaSpec, client: KafkaClientSettings) -> Outcome:
    """Converge the five topics of ``kafka.topic_prefix`` on the spec; never raises for Kafka's problems.

    The detail is empty when Kafka could not be observed at all (nothing is known about the topics).
    """
    target = _Target(servers=_servers(kafka), timeout_s=client.timeout_s)
    desired = desired_topics(kafka)
    try:
        async with _admin(kafka, client) as admin:
            observed = await _observe(admin, desired, client.timeout_s)
            reports = []
            lost: Problem | None = None
            for plan in (plan_topic(topic, observed.get(topic.name)) for topic in desired):
                if lost is not None and plan.has_actions:
                    # The broker went away: do not wait out the timeout once per remaining topic.
                    reports.append(settle_topic(plan, frozenset(), lost))
                    continue
                report = await _converge(admin, plan, target)
                lost = next((p for p in report.problems if p.reason == "KafkaUnreachable"), lost)
                reports.append(report)
            if lost is None:
                await _await_metadata(admin, reports, client.timeout_s)
    except _UNREACHABLE as err:
        return Outcome(ready=False, reason="KafkaUnreachable", message=_unreachable(target, err).message, retry=True)
    except KafkaError as err:
        return Outcome(
            ready=False,
            reason="KafkaError",
            message=f"Kafka at {target.servers} failed to describe the topics: {err}; retrying",
            retry=True,
        )
    return summarise(reports)


async def delete_topics(kafka: KafkaSpec, client: KafkaClientSettings) -> Outcome:
    """Delete those of the five topics of ``kafka.topic_prefix`` that exist (``deletionPolicy: Delete``)."""
    target = _Target(servers=_servers(kafka), timeout_s=client.timeout_s)
    names = [topic.name for topic in desired_topics(kafka)]
    try:
        async with _admin(kafka, client) as admin:
            found = await _existing(admin, names, client.timeout_s)
            existing = [name for name in names if name in found]
            if not existing:
                return Outcome(
                    ready=True,
                    reason="TopicsDeleted",
                    message=f"no topic of prefix {kafka.topic_prefix!r} exists any more",
                )
            response = await asyncio.wait_for(
                admin.delete_topics(existing, timeout_ms=int(client.timeout_s * 1000)), client.timeout_s
            )
    except _UNREACHABLE as err:
        return Outcome(ready=False, reason="KafkaUnreachable", message=_unreachable(target, err).message, retry=True)
    except KafkaError as err:
        return Outcome(
            ready=False,
            reason="KafkaError",
            message=f"deleting the topics at {target.servers} failed: {err}; retrying",
            retry=True,
        )
    failures = [
        f"{entry['topic']}: {for_code(entry['error_code']).__name__}"
        for entry in response.to_object()["topic_error_codes"]
        if entry["error_code"] not in (0, UnknownTopicOrPartitionError.errno)
    ]
    if failures:
        return Outcome(
            ready=False,
            reason="KafkaError",
            message=f"Kafka refused to delete {'; '.join(failures)}; retrying",
            retry=True,
        )
    message = f"deleted {len(existing)} topic(s): {', '.join(existing)}"
    return Outcome(
        ready=True,
        reason="TopicsDeleted",
        message=message,
        notices=[Notice("Normal", "TopicsDeleted", message)],
    )
