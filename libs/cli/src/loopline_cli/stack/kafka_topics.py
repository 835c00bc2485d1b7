"""Creating topics explicitly with aiokafka's admin client (existing topics are fine)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from loopline_core.kafka.topics import TopicSpec, all_topics

from loopline_cli.stack.errors import StackError

_TOPIC_ALREADY_EXISTS = 36
T = TypeVar("T")


async def create_topics_async(bootstrap: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet; return the names created."""
    # Imported here: `loopline stack status|down|logs` should not pay for the Kafka driver.
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="loopline-stack")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        request = [NewTopic(s.name, s.partitions, 1, topic_configs=dict(s.config)) for s in missing]
        response = await admin.create_topics(request)
        failures = [
            f"{error[0]} (code {error[1]}{': ' + error[2] if len(error) > 2 and error[2] else ''})"
            for error in response.topic_errors
            if error[1] not in (0, _TOPIC_ALREADY_EXISTS)
        ]
        if failures:
            raise StackError("kafka: could not create topics " + ", ".join(failures))
        return [spec.name for spec in missing]
    finally:
        await admin.close()


def create_topics(bootstrap: str, specs: Iterable[TopicSpec] | None = None) -> list[str]:
    """Blocking form of :func:`create_topics_async` (the whole catalogue by default)."""
    return run_blocking(create_topics_async(bootstrap, list(all_topics() if specs is None else specs)))


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from code called inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
