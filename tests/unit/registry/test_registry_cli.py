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
        code, _, err = await run("retire", "cli-model", "--reason", "cli retire")
        assert code == 1 and "NOT_FOUND" in err and "has no deployment yet" in err
        async with httpx.AsyncClient(base_url=registry.http,
                                     headers={"Authorization": f"Bearer {KEYS['operator']}"}) as http:
            assert (await http.put("/v1/models/cli-model/deployment", json={
                "expected_revision": 0, "splits": [{"version": 1, "weight": 1.0, "variant": "champion"}]})
                    ).status_code == 200
        code, out, _ = await run("retire", "cli-model", "--reason", "cli retire")
        assert code == 0 and "cli-model: retired at deployment revision 2" in out
        code, out, _ = await run("show", "cli-model")
        assert "deployment revision 2: retired (serves nothing)" in out
        code, out, _ = await run("audit", "cli-model")
        assert "model.rolled_back" in out and "cli rollback" in out
        code, out, _ = await run("audit", "cli-model", "--at", "2099-01-01T00:00:00+00:00")
        assert "nothing (champion 1)" in out  # retired: the champion alias stays, nothing serves
        code, _, err = await asyncio.to_thread(cli, "--registry", registry.grpc, "list")
        assert code == 1 and "UNAUTHENTICATED" in err


async def test_a_demo_run_retires_the_deployments_of_earlier_demo_models() -> None:
    import httpx

    from loopline_cli.loop.registry import Registry

    async with running_registry() as registry:
        admin = {"Authorization": f"Bearer {KEYS['admin']}"}
        async with httpx.AsyncClient(base_url=registry.http, headers=admin) as http:
            for name in ("demo-0a1b2c", "demo-3d4e5f", "fraud", "demo-777777"):
                await http.post("/v1/models", json={"name": name})
                data = torchscript_bytes(name)
                digest = (await http.post("/v1/artifacts", content=data, headers={
                    "X-Artifact-Format": "torchscript", "X-Artifact-Sha256": sha(data)})).json()["sha256"]
                await http.post(f"/v1/models/{name}/versions", json={"artifact_sha256": digest})
                await http.put(f"/v1/models/{name}/aliases/champion", json={"version": 1})
                if name != "demo-777777":  # registered, never deployed
                    assert (await http.put(f"/v1/models/{name}/deployment", json={
                        "expected_revision": 0, "splits": [{"version": 1, "weight": 1.0, "variant": "champion"}]})
                            ).status_code == 200
            async with Registry(registry.grpc, KEYS["admin"]) as client:
                assert await client.retire_earlier_demos(keep="demo-3d4e5f") == ["demo-0a1b2c"]
                assert await client.retire_earlier_demos(keep="demo-3d4e5f") == []  # already retired
            deployments = {d["model"]: d for d in (await http.get("/v1/deployments")).json()}
            assert deployments["demo-0a1b2c"]["splits"] == [] and deployments["demo-0a1b2c"]["revision"] == 2
            assert [len(deployments[name]["splits"]) for name in ("demo-3d4e5f", "fraud")] == [1, 1]
