"""Apache Kafka in KRaft combined mode: one JVM that is both broker and controller, on 127.0.0.1.

The broker's jars come from Maven Central: ``stack/kafka/pom.xml`` names ``kafka_2.13`` at
``versions.KAFKA`` plus the log4j2 binding the release tarball ships, and Maven copies them and
their runtime dependencies into a cache entry. Storage is formatted once (``kafka.tools.StorageTool
format --standalone``, the node being the quorum's only voter) with a cluster id generated on first
start and kept in the run directory, so a restart finds its topics and offsets again.
Topic auto-creation is off: every topic is created on purpose (by the operator or a test).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient

from checkout_stack import versions
from checkout_stack.cache import CacheEntry, recipe_digest
from checkout_stack.components.base import ProcessComponent, Status, port_open
from checkout_stack.console import info
from checkout_stack.processes import ManagedProcess, ProcessError, tail
from checkout_stack.settings import HOST, REPO_ROOT, StackSettings

POM = REPO_ROOT / "stack" / "kafka" / "pom.xml"
"""The Maven project that lists the broker's classpath."""

MIN_JAVA = 17
"""Kafka 4.x brokers need Java 17 or newer."""

HEALTH_TIMEOUT_S = 2.0
"""Upper bound of one health probe (the port check fails faster when nothing listens)."""

LOG4J2_YAML = """\
# Written by checkout_stack.components.kafka: the broker logs to stdout, which the stack
# sends to <run_dir>/logs/kafka.log. INFO by default (startup, topic creation, group
# rebalances); per-request, per-partition and state-change chatter is turned down to
# warnings: creating __consumer_offsets alone would log some 300 lines. log4j2's own shutdown
# hook is off so the broker's controlled shutdown (also run from a JVM shutdown hook) is
# logged to the end.
Configuration:
  name: checkout-stack-kafka
  shutdownHook: disable
  Appenders:
    Console:
      name: STDOUT
      target: SYSTEM_OUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: kafka.network.RequestChannel$
        level: WARN
      - name: state.change.logger
        level: WARN
      - name: kafka.log.LogCleaner
        level: WARN
      - name: kafka.authorizer.logger
        level: WARN
      - name: org.apache.kafka.storage.internals.log
        level: WARN
      - name: kafka.cluster.Partition
        level: WARN
      - name: kafka.log.LogManager
        level: WARN
      - name: kafka.server.ReplicaFetcherManager
        level: WARN
      - name: kafka.server.ReplicaAlterLogDirsManager
        level: WARN
      - name: org.apache.kafka.controller.ReplicationControlManager
        level: WARN
      - name: org.apache.kafka.coordinator.common.runtime.CoordinatorRuntime
        level: WARN
      - name: org.apache.kafka.image.loader.MetadataLoader
        level: WARN
      - name: org.apache.kafka.server.purgatory
        level: WARN
      - name: org.apache.kafka.server.util.timer
        level: WARN
      - name: kafka.server.ClientQuotaManager$ThrottledChannelReaper
        level: WARN
      - name: org.apache.kafka.common.config.AbstractConfig
        level: WARN
      - name: org.apache.kafka.common.utils.AppInfoParser
        level: WARN
      - name: org.apache.kafka.common.metrics
        level: WARN
"""
"""log4j2 configuration of the broker and of the storage tool (console only)."""

T = TypeVar("T")


class KafkaError(RuntimeError):
    """Kafka could not be installed, formatted or started."""


def _run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion, also when the caller is inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _new_cluster_id() -> str:
    """Return a cluster id as Kafka writes them: 16 random bytes, URL-safe base64, no padding.

    Ids starting with ``-`` are skipped (as Kafka's ``Uuid.randomUuid`` does) since the storage
    tool would read one as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _pom_kafka_version(pom: Path) -> str | None:
    """The ``kafka.version`` property's default in the POM."""
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text())
    return match.group(1) if match else None


class Kafka(ProcessComponent):
    """A single-node Kafka cluster (KRaft, broker and controller in one process)."""

    name = "kafka"
    version = versions.KAFKA
    health_description = "Kafka to answer metadata requests"

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self.home = settings.run_dir / "kafka"
        self.entry = CacheEntry(settings.cache_dir, self.name, versions.KAFKA, recipe_digest([POM], LOG4J2_YAML))

    @property
    def libs(self) -> Path:
        """The broker's classpath: every jar Maven copied."""
        return self.entry.path / "libs"

    @property
    def log4j2_config(self) -> Path:
        """The log4j2 configuration inside the cache entry."""
        return self.entry.path / "log4j2.yaml"

    @property
    def data_dir(self) -> Path:
        """``log.dirs``: partitions and the KRaft metadata log."""
        return self.home / "data"

    @property
    def config_path(self) -> Path:
        """The generated ``server.properties``."""
        return self.home / "server.properties"

    @property
    def cluster_id_path(self) -> Path:
        """The cluster id generated on first start."""
        return self.home / "cluster-id"

    def bootstrap_servers(self) -> str:
        """``host:port`` of the PLAINTEXT listener, as clients want it."""
        return f"{HOST}:{self.settings.kafka.port}"

    # --- install ------------------------------------------------------------------------------

    def installed(self) -> bool:
        """Whether the broker's jars and logging configuration are in the cache."""
        return self.entry.complete

    def install(self) -> None:
        """Copy the broker's jars with Maven into the cache entry (once per version and POM)."""
        if self.entry.complete:
            return
        pom_version = _pom_kafka_version(POM)
        if pom_version != versions.KAFKA:
            raise KafkaError(
                f"{POM} defaults kafka.version to {pom_version} but versions.KAFKA is "
                f"{versions.KAFKA}: make them equal (versions.py is the source of truth)"
            )
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaError("Maven (mvn) is not installed: `apt-get install maven` and retry")
        log = self.settings.logs_dir / "setup-kafka.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.entry.begin()
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            f"-Dkafka.version={versions.KAFKA}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={self.libs}",
        ]
        with log.open("ab") as out:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
            result = subprocess.run(argv, cwd=POM.parent, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise KafkaError(
                f"Maven could not copy Kafka {versions.KAFKA}'s jars (exit {result.returncode}); "
                f"see {log}:\n{tail(log, 30)}"
            )
        if not (self.libs / f"kafka_2.13-{versions.KAFKA}.jar").exists():
            raise KafkaError(f"Maven finished but {self.libs} has no kafka_2.13 jar; see {log}")
        self.log4j2_config.write_text(LOG4J2_YAML)
        self.entry.finish()
        info(f"Kafka {versions.KAFKA}: {len(list(self.libs.glob('*.jar')))} jars in {self.libs}")

    # --- java ---------------------------------------------------------------------------------

    @staticmethod
    def _java() -> str:
        """The ``java`` of ``JAVA_HOME`` if set, else the one on PATH."""
        java_home = os.environ.get("JAVA_HOME")
        if java_home:
            candidate = Path(java_home) / "bin" / "java"
            if not candidate.exists():
                raise KafkaError(f"JAVA_HOME={java_home} has no bin/java: fix or unset JAVA_HOME")
            return str(candidate)
        java = shutil.which("java")
        if java is None:
            raise KafkaError(
                f"no `java` on PATH: Kafka {versions.KAFKA} needs Java {MIN_JAVA} or newer "
                "(`apt-get install openjdk-17-jre-headless`, or set JAVA_HOME)"
            )
        return java

    def _check_java(self, java: str) -> None:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
        match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
        if match is None:
            raise KafkaError(f"`{java} -version` did not report a version:\n{result.stderr}")
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0" style
            major = int(match.group(2))
        if major < MIN_JAVA:
            raise KafkaError(
                f"{java} is Java {major}; Kafka {versions.KAFKA} needs Java {MIN_JAVA} or newer: "
                "install it and point JAVA_HOME at it"
            )

    def _classpath(self) -> str:
        return f"{self.libs}/*"  # expanded by the JVM itself

    # --- configuration ------------------------------------------------------------------------

    def server_properties(self) -> dict[str, str]:
        """The broker's configuration (KRaft combined mode, one node, loopback only)."""
        cfg = self.settings.kafka
        plain, controller = f"PLAINTEXT://{HOST}:{cfg.port}", f"CONTROLLER://{HOST}:{cfg.controller_port}"
        # PROXIED listens on its own port but advertises the toxiproxy proxy's (see KafkaPorts.proxied_port).
        proxied, advertised = f"PROXIED://{HOST}:{cfg.proxied_port}", f"PROXIED://{HOST}:{cfg.proxied_advertised_port}"
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{cfg.controller_port}",
            "listeners": f"{plain},{controller},{proxied}",
            "advertised.listeners": f"{plain},{controller},{advertised}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PROXIED:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # One node: every internal topic has one replica, and one in-sync replica is enough.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            # Consumers in tests join at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": "0",
        }

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        lines = ["# Written by checkout_stack.components.kafka on every start; edits are lost."]
        lines += [f"{key}={value}" for key, value in self.server_properties().items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _cluster_id(self) -> str:
        if not self.cluster_id_path.exists():
            self.cluster_id_path.write_text(_new_cluster_id() + "\n")
        return self.cluster_id_path.read_text().strip()

    def _jvm_options(self) -> list[str]:
        heap = self.settings.kafka.heap
        return [
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j2_config}",
        ]

    def _format(self, java: str) -> None:
        """Format the log directory once; a formatted one carries meta.properties."""
        if (self.data_dir / "meta.properties").exists():
            return
        log = self.settings.logs_dir / "kafka-format.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            java,
            f"-Dlog4j2.configurationFile={self.log4j2_config}",
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            self._cluster_id(),
            "-c",
            str(self.config_path),
        ]
        with log.open("ab") as out:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise KafkaError(f"formatting Kafka storage failed; see {log}:\n{tail(log, 30)}")

    # --- lifecycle ----------------------------------------------------------------------------

    def process(self, java: str = "java") -> ManagedProcess:
        """The broker process; ``java`` matters only to start it (status and stop use the pid).

        SIGTERM runs the broker's controlled shutdown, so stopping waits up to a minute.
        """
        return ManagedProcess(
            name=self.name,
            argv=[
                java,
                *self._jvm_options(),
                "-cp",
                self._classpath(),
                "kafka.Kafka",
                str(self.config_path),
            ],
            run_dir=self.settings.run_dir,
            cwd=self.home,
            stop_timeout_s=60.0,  # SIGTERM runs the controlled shutdown; give it time
        )

    def prepare(self, java: str | None = None) -> None:
        """Refuse ports taken by others, check Java, write the configuration, format storage once.

        ``java`` is the executable the broker will run with (default: the one :meth:`_java` finds).
        """
        cfg = self.settings.kafka
        for port in (cfg.port, cfg.controller_port, cfg.proxied_port):
            if port_open(port):
                raise KafkaError(
                    f"{HOST}:{port} is already taken by another process: stop it or choose other "
                    "ports (CHECKOUT_STACK_KAFKA__PORT / __CONTROLLER_PORT / __PROXIED_PORT)"
                )
        java = java or self._java()
        self._check_java(java)
        self._write_config()
        self._format(java)

    def start(self) -> None:
        """Wait for a running broker; else prepare, start it and wait until it serves metadata.

        Unlike the other components, a broker that fails to become healthy is stopped again.
        """
        if not self.entry.complete:
            raise KafkaError(f"Kafka {versions.KAFKA} is not installed: run `make setup` first")
        process = self.process(self._java())
        if process.running():
            self._wait_healthy(process)
            return
        self.prepare(process.argv[0])
        process.start()
        try:
            self._wait_healthy(process)
        except ProcessError:
            process.stop()
            raise

    async def _describe_cluster(self) -> dict[str, Any]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers(),
            client_id="checkout-stack-health",
            request_timeout_ms=int(HEALTH_TIMEOUT_S * 1000),
        )
        try:
            await admin.start()
            cluster: dict[str, Any] = await admin.describe_cluster()
            return cluster
        finally:
            await admin.close()

    def healthy(self) -> bool:
        """Whether the broker answers a metadata request and lists itself as a live broker."""
        if not port_open(self.settings.kafka.port):
            return False
        try:
            cluster = _run_coroutine(asyncio.wait_for(self._describe_cluster(), HEALTH_TIMEOUT_S))
        except Exception:  # any failure to answer is "not healthy"
            return False
        return any(broker.get("port") == self.settings.kafka.port for broker in cluster["brokers"])

    def status(self) -> Status:
        """Version, address, health."""
        path = self.cluster_id_path
        cluster_id = path.read_text().strip() if path.exists() else ""
        return self._status_row(
            f"Kafka {self.version} (KRaft)",
            self.bootstrap_servers(),
            f"cluster {cluster_id}" if cluster_id else "",
        )

    def env(self) -> dict[str, str]:
        """KAFKA_BOOTSTRAP_SERVERS: the PLAINTEXT listener."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers()}
