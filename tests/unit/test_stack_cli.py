"""``loopline stack``: one-line errors and exit statuses (nothing gets started here)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from loopline_cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_taken_port_is_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = str(listener.getsockname()[1])
        code, _, err = run(
            capsys, "--run-dir", str(tmp_path), "stack", "up", "--only", "postgres", "--postgres-port", taken
        )
    assert code == 1
    assert err.count("\n") == 1 and f"port {taken} (postgres) is already in use" in err


def test_a_missing_binary_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    code, _, err = run(capsys, "stack", "up", "--run-dir", str(tmp_path / "run"), "--only", "kafka")
    assert code == 1
    assert err.strip() == (
        "loopline stack: kafka: missing prerequisite binary `java` (Java 17+) on PATH "
        "(apt-get install openjdk-17-jre-headless)"
    )


def test_a_missing_postgres_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_PG_BIN", str(tmp_path / "nowhere"))
    code, _, err = run(capsys, "--run-dir", str(tmp_path), "stack", "up", "--only", "postgres")
    assert code == 1 and f"{tmp_path / 'nowhere' / 'initdb'}" in err


def test_status_of_an_empty_run_dir_lists_every_part_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--run-dir", str(tmp_path), "stack", "status")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["PART", "PID", "PORTS", "HEALTH"]
    assert {line.split()[0] for line in lines[1:]} >= {"kafka", "postgres", "triton", "registry", "serving-gateway"}
    assert all("stopped" in line for line in lines[1:])


def test_down_with_nothing_running_succeeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--run-dir", str(tmp_path), "stack", "down")
    assert code == 0 and "not running" in out


def test_logs_of_an_unknown_part_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--run-dir", str(tmp_path), "stack", "logs", "kafka")
    assert code == 1 and "no log for 'kafka'" in err


def test_logs_show_the_last_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "kafka.log").write_text("".join(f"line {i}\n" for i in range(100)))
    code, out, _ = run(capsys, "--run-dir", str(tmp_path), "stack", "logs", "kafka", "-n", "2")
    assert code == 0 and out == "line 98\nline 99\n"


def test_loopline_models_uses_the_local_stacks_admin_key_unless_given_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loopline_cli.main import build_parser, with_local_admin_key
    from loopline_cli.stack.secrets import admin_key_file

    monkeypatch.delenv("LOOPLINE_API_KEY", raising=False)

    def key_for(*argv: str) -> str:
        return with_local_admin_key(build_parser().parse_args(["--run-dir", str(tmp_path), *argv])).api_key

    assert key_for("models", "list") == ""  # no stack here: no key (the registry will say so)
    admin_key_file(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    admin_key_file(tmp_path).write_text("local-admin-key\n")
    assert key_for("models", "list") == "local-admin-key"
    assert key_for("models", "--api-key", "given", "list") == "given"
    monkeypatch.setenv("LOOPLINE_API_KEY", "from-env")
    assert key_for("models", "list") == "from-env"
