"""The supervisor and ``up``/``down``/``status`` with stand-in services (real processes, no infra)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from loopline_cli.stack import Stack, StackConfig, StartFailed, procs
from loopline_cli.stack.services import SERVICES, Service

STAND_IN = textwrap.dedent(
    """
    import http.server, os
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/readyz" else 404)
            self.end_headers()
            self.wfile.write(os.environ["LOOPLINE_KAFKA__BOOTSTRAP_SERVERS"].encode())
        def log_message(self, *args):
            pass
    print("stand-in", os.environ["LOOPLINE_SERVICE_NAME"], "listening", flush=True)
    http.server.HTTPServer(("127.0.0.1", int(os.environ["LOOPLINE_HTTP_PORT"])), Handler).serve_forever()
    """
)


def stand_in_stack(run_dir: Path, script: str = STAND_IN, timeout: float = 20.0) -> Stack:
    config = StackConfig.for_tests(run_dir)
    path = run_dir / "stand_in.py"
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    services = [Service(config, spec, command=[sys.executable, str(path)]) for spec in SERVICES[:2]]
    for service in services:
        service.start_timeout = timeout
    return Stack(config, services)


@pytest.fixture
def stack(tmp_path: Path):
    stack = stand_in_stack(tmp_path / "run")
    yield stack
    stack.down()


def test_up_starts_services_with_their_settings_and_reports_timing(stack: Stack) -> None:
    results = stack.up("services")
    assert [(r.name, r.outcome) for r in results] == [("registry", "started"), ("trainer", "started")]
    assert all(r.seconds is not None and r.pid for r in results)
    port = stack.config.port("registry-http")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as answer:
        assert answer.read().decode() == stack.config.kafka_bootstrap
    log = stack.config.layout.log_file("registry").read_text()
    assert "stand-in registry listening" in log


def test_up_twice_leaves_running_parts_alone(stack: Stack) -> None:
    first = {r.name: r.pid for r in stack.up("services")}
    again = stack.up("services")
    assert {r.name: (r.outcome, r.pid) for r in again} == {name: ("running", pid) for name, pid in first.items()}


def test_each_part_runs_in_its_own_process_group(stack: Stack) -> None:
    for result in stack.up("services"):
        assert os.getpgid(result.pid) == result.pid


def test_status_then_down_stops_exactly_what_was_started(stack: Stack) -> None:
    pids = {r.name: r.pid for r in stack.up("services")}
    rows = {row.name: row for row in stack.status()}
    assert all(rows[name].healthy and rows[name].pid == pid and rows[name].rss_mb for name, pid in pids.items())
    assert dict(stack.down()) == {"trainer": "stopped", "registry": "stopped"}
    assert not any(procs.is_alive(pid) for pid in pids.values())
    assert stack.supervisor.names() == []
    assert not any(row.healthy for row in stack.status())


def test_down_never_signals_a_process_that_is_not_the_recorded_one(stack: Stack) -> None:
    result = stack.up("registry")[0]
    state_file = stack.config.layout.state_file("registry")
    record = json.loads(state_file.read_text())
    # Pretend the pid was reused: same pid, another process (a different start time).
    state_file.write_text(json.dumps(record | {"start_ticks": record["start_ticks"] + 1}))
    try:
        assert dict(stack.down()) == {"registry": "not running", "trainer": "not running"}
        assert procs.is_alive(result.pid)
    finally:
        os.killpg(result.pid, signal.SIGKILL)
        os.waitpid(result.pid, 0)


def test_parts_outlive_the_command_that_started_them(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    starter = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_stack_supervisor import stand_in_stack
        results = stand_in_stack(Path({str(run_dir)!r})).up("registry")
        sys.exit(0 if results[0].outcome == "started" else 1)
        """
    )
    subprocess.run([sys.executable, "-c", starter], check=True, timeout=60)
    stack = Stack(StackConfig.resolve(run_dir), stand_in_stack(tmp_path / "other").parts.values())
    try:
        record = stack.supervisor.running("registry")
        assert record is not None and record.is_alive()
    finally:
        assert dict(stack.down())["registry"] == "stopped"


def test_a_part_that_exits_fails_fast_with_its_log_tail(tmp_path: Path) -> None:
    crashing = "import sys\nprint('cannot bind: broken on purpose', flush=True)\nsys.exit(3)\n"
    stack = stand_in_stack(tmp_path / "run", script=crashing, timeout=30)
    results = stack.up("registry")
    assert results[0].outcome == "failed"
    error = results[0].error
    assert isinstance(error, StartFailed)
    assert "exited with status 3" in str(error) and "broken on purpose" in error.log_tail
    assert stack.supervisor.names() == []


def test_a_part_that_never_gets_ready_is_stopped_after_its_timeout(tmp_path: Path) -> None:
    stack = stand_in_stack(tmp_path / "run", script="import time\nwhile True: time.sleep(1)\n", timeout=0.5)
    results = stack.up("registry")
    assert results[0].outcome == "failed" and "not ready after" in str(results[0].error)
    assert stack.supervisor.names() == []


def test_the_gateway_is_waited_for_longer_than_the_other_services(tmp_path: Path) -> None:
    """Its /readyz waits for every deployed model to load in Triton: a kept run directory has many."""
    config = StackConfig.for_tests(tmp_path)
    timeouts = {spec.name: Service(config, spec).start_timeout for spec in SERVICES}
    assert timeouts.pop("serving-gateway") == 300.0
    assert set(timeouts.values()) == {60.0}
