"""The stack's own behaviour around real parts: idempotent ``up``, status, memory."""

from __future__ import annotations

from loopline_cli.stack import Stack, TritonEndpoints


def test_up_again_leaves_running_parts_alone(
    local_stack: Stack, kafka_bootstrap: str, postgres_dsn: str, triton: TritonEndpoints
) -> None:
    before = {name: local_stack.supervisor.running(name).pid for name in ("kafka", "postgres", "triton")}
    results = local_stack.up("infra")
    assert {r.name: (r.outcome, r.pid) for r in results} == {n: ("running", pid) for n, pid in before.items()}


def test_status_reports_every_infra_part_healthy_and_kafka_small(
    local_stack: Stack, kafka_bootstrap: str, postgres_dsn: str, triton: TritonEndpoints
) -> None:
    rows = {row.name: row for row in local_stack.status("infra")}
    assert all(row.healthy and row.pid for row in rows.values()), rows
    assert rows["kafka"].rss_mb is not None and rows["kafka"].rss_mb < 600
