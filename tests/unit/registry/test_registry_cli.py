"""`loopline models ...` against a running registry (memory backend), as the lead will hook it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io

from registry_edge_host import KEYS, running_registry
from registry_fakes import sha, torchscript_bytes

from loopline_registry.cli import register_cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loopline")
    register_cli(parser.add_subparsers(dest="command", required=True))
    return parser


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = _parser().parse_args(["models", *argv])
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = args.run(args)
    return code, out.getvalue(), err.getvalue()


async def test_models_commands_over_grpc() -> None:
    import httpx

    async with running_registry() as registry:
        trainer = {"Authorization": f"Bearer {KEYS['trainer']}"}
        async with httpx.AsyncClient(base_url=registry.http, headers=trainer) as http:
            await http.post("/v1/models", json={"name": "cli-model", "description": "for the cli"})
            for tag in ("a", "b"):
                data = torchscript_bytes(tag)
                digest = (await http.post("/v1/artifacts", content=data, headers={
                    "X-Artifact-Format": "torchscript", "X-Artifact-Sha256": sha(data)})).json()["sha256"]
                await http.post("/v1/models/cli-model/versions", json={"artifact_sha256": digest,
                                                                       "metrics": {"accuracy": 0.9}})
        common = ("--registry", registry.grpc, "--api-key", KEYS["operator"])

        async def run(*argv: str) -> tuple[int, str, str]:
            return await asyncio.to_thread(cli, *common, *argv)

        code, out, _ = await run("promote", "cli-model", "1")
        assert code == 0 and "champion -> version 1" in out
        code, _, err = await run("promote", "cli-model", "2")
        assert code == 1 and "FAILED_PRECONDITION: version: promotion gate refused" in err
        assert (await run("promote", "cli-model", "2", "--override-gate", "--reason", "cli test"))[0] == 0
        code, out, _ = await run("rollback", "cli-model", "--reason", "cli rollback")
        assert code == 0 and "champion -> version 1" in out
        code, out, _ = await run("list")
        assert "cli-model" in out and "champion=1" in out
        code, out, _ = await run("versions", "cli-model", "--status", "production")
        assert out.splitlines()[1].split()[:2] == ["1", "production"]
        code, out, _ = await run("show", "cli-model")
        assert "aliases: champion=1" in out and "deployment: none" in out
        code, out, _ = await run("audit", "cli-model")
        assert "model.rolled_back" in out and "cli rollback" in out
        code, out, _ = await run("audit", "cli-model", "--at", "2099-01-01T00:00:00+00:00")
        assert "v1 (champion 1)" in out
        code, _, err = await asyncio.to_thread(cli, "--registry", registry.grpc, "list")
        assert code == 1 and "UNAUTHENTICATED" in err
