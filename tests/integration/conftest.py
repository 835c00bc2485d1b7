"""The real Kafka, PostgreSQL and Triton for the test session, each started on first use.

They run on free ports in a temporary run directory, through the same Python API
as ``loopline stack`` (loopline_cli.stack), and stop at the end of the session.
A part that cannot start fails the tests that need it, with its log tail;
nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopline_cli.stack import Stack, StackConfig, StackError, StartFailed, TritonEndpoints


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The session's stack (nothing started yet); ``.config`` holds its ports and paths."""
    stack = Stack(StackConfig.for_tests(tmp_path_factory.mktemp("stack")))
    yield stack
    stack.down()


def _ensure(stack: Stack, name: str) -> None:
    try:
        stack.ensure(name)
    except StartFailed as failure:
        pytest.fail(failure.detailed(), pytrace=False)
    except StackError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap(local_stack: Stack) -> str:
    """``127.0.0.1:<port>`` of a KRaft broker with every topic of the catalogue created."""
    _ensure(local_stack, "kafka")
    return local_stack.config.kafka_bootstrap


@pytest.fixture(scope="session")
def postgres_dsn(local_stack: Stack) -> str:
    """``postgresql://loopline@127.0.0.1:<port>/loopline`` (superuser role, fsync off)."""
    _ensure(local_stack, "postgres")
    return local_stack.config.postgres_dsn


@pytest.fixture(scope="session")
def triton(local_stack: Stack) -> TritonEndpoints:
    """Triton with explicit model control: ``http_url``, ``grpc_url`` (host:port) and ``model_repository``."""
    _ensure(local_stack, "triton")
    config = local_stack.config
    return TritonEndpoints(config.triton_http_url, config.triton_grpc_url, config.model_repository)
