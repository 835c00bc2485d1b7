"""The local stack: Kafka, PostgreSQL, Triton and the five services as supervised processes.

Python API (the CLI and the test fixtures use the same)::

    config = StackConfig.resolve(Path(".run"))      # or StackConfig.for_tests(tmp_dir)
    stack = Stack(config)
    stack.up("infra")                                # or stack.ensure("kafka")
    stack.status(); stack.down()
"""

from loopline_cli.stack.config import StackConfig
from loopline_cli.stack.errors import PortInUse, PrerequisiteMissing, StackError, StartFailed
from loopline_cli.stack.kafka_topics import create_topics, create_topics_async
from loopline_cli.stack.stack import PartResult, PartStatus, Stack
from loopline_cli.stack.triton import TritonEndpoints

__all__ = [
    "PartResult",
    "PartStatus",
    "PortInUse",
    "PrerequisiteMissing",
    "Stack",
    "StackConfig",
    "StackError",
    "StartFailed",
    "TritonEndpoints",
    "create_topics",
    "create_topics_async",
]
