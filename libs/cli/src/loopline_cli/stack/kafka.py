"""Kafka 3.9 in KRaft mode, one combined broker+controller node, sized for a small machine."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path

from loopline_cli.stack import kafka_runtime
from loopline_cli.stack.component import Component
from loopline_cli.stack.config import StackConfig
from loopline_cli.stack.errors import StackError
from loopline_cli.stack.kafka_topics import create_topics
from loopline_cli.stack.ports import HOST, accepts_connections
from loopline_cli.stack.supervisor import Launch

#: Everything to stdout, which the supervisor appends to <run>/logs/kafka.log.
LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
"""


def render_server_properties(port: int, controller_port: int, data_dir: Path, auto_create_topics: bool) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        # One node: replication factor and min ISR 1 everywhere, or the offsets topic never appears.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # Defaults of 50 partitions slow the first consumer-group join.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        "auto.create.topics.enable": str(auto_create_topics).lower(),
        # The 128 MiB default dedupe buffer is allocated on the heap at start; compaction stays on.
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        "log.cleaner.threads": "1",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "num.replica.fetchers": "1",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def new_cluster_id() -> str:
    """A random KRaft cluster id (22 URL-safe base64 characters). Like Kafka's own
    Uuid.randomUuid, never one that starts with '-': the storage tool would read it
    as an option (1 start in 64 failed before)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


class Kafka(Component):
    name = "kafka"
    start_timeout = 90.0
    heap_mb = 384

    def __init__(self, config: StackConfig, auto_create_topics: bool = False) -> None:
        super().__init__(config)
        self.auto_create_topics = auto_create_topics
        self.home = config.layout.part_dir("kafka")
        self.data_dir = self.home / "data"
        self.properties = self.home / "server.properties"
        self.log4j = self.home / "log4j.properties"

    @property
    def port_keys(self) -> tuple[str, ...]:
        return ("kafka", "kafka-controller")

    def check_prerequisites(self) -> None:
        kafka_runtime.java_binary()
        if not kafka_runtime.jars_present(self.config.cache_dir):
            kafka_runtime.maven_binary()

    def prepare(self) -> None:
        kafka_runtime.ensure_jars(self.config.cache_dir)
        self.home.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(
            render_server_properties(
                self.config.port("kafka"), self.config.port("kafka-controller"), self.data_dir, self.auto_create_topics
            )
        )
        self.log4j.write_text(LOG4J_PROPERTIES)
        if not (self.data_dir / "meta.properties").exists():
            self._format()

    def _java(self, heap_mb: int, *args: str, short_lived: bool = False) -> list[str]:
        classpath = str(kafka_runtime.lib_dir(self.config.cache_dir) / "*")
        # A one-shot tool starts faster on the C1 compiler alone; the broker keeps C2.
        quick = ["-XX:TieredStopAtLevel=1"] if short_lived else []
        jvm = [
            *quick,
            f"-Xmx{heap_mb}m",
            # Bound what lives beside the heap too, so the broker stays well under 600 MB resident.
            "-XX:MaxMetaspaceSize=128m",
            "-XX:ReservedCodeCacheSize=96m",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.log4j}",
            f"-Dkafka.logs.dir={self.home}",
        ]
        return [kafka_runtime.java_binary(), *jvm, "-cp", classpath, *args]

    def _format(self) -> None:
        argv = self._java(
            128,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.properties),
            short_lived=True,
        )
        with self.config.layout.log_file(self.name).open("ab") as log:
            done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise StackError(f"kafka: formatting storage in {self.data_dir} failed (see {log.name})")

    def launch(self) -> Launch:
        argv = self._java(self.heap_mb, "kafka.Kafka", str(self.properties))
        return Launch(argv=argv, env=dict(os.environ), cwd=self.home, match="kafka.Kafka", stop_timeout=30.0)

    def is_ready(self) -> bool:
        # The PLAINTEXT listener opens only once the broker has started.
        return accepts_connections(self.config.port("kafka"))

    def after_ready(self) -> None:
        create_topics(self.config.kafka_bootstrap)
