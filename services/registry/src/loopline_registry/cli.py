"""``loopline models list|show|versions|promote|rollback|retire|audit``, over the registry's gRPC API.

The lead hooks ``register_cli`` into the ``loopline`` command. The registry address
comes from ``--registry`` or $LOOPLINE_ENDPOINTS__REGISTRY, the key from
``--api-key`` or $LOOPLINE_API_KEY.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from loopline.registry.v1 import registry_pb2 as pb
from loopline.registry.v1 import registry_pb2_grpc

STATUS = {pb.VersionStatus.Name(v).removeprefix("VERSION_STATUS_").lower(): v for v in pb.VersionStatus.values()}


def register_cli(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models = commands.add_parser("models", help="models, versions, promotions and the audit log (registry)")
    models.add_argument("--registry", default=os.environ.get("LOOPLINE_ENDPOINTS__REGISTRY", "127.0.0.1:9081"))
    models.add_argument("--api-key", default=os.environ.get("LOOPLINE_API_KEY", ""))
    models.set_defaults(run=run)
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="registered models and their aliases")
    listing.add_argument("--prefix", default="")
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one model, its aliases and its deployment")
    show.add_argument("name")
    show.set_defaults(handler=_show)
    versions = actions.add_parser("versions", help="a model's versions")
    versions.add_argument("name")
    versions.add_argument("--status", choices=[s for s in STATUS if s != "unspecified"])
    versions.set_defaults(handler=_versions)
    promote = actions.add_parser("promote", help="move an alias (champion: behind the promotion gate)")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.add_argument("--alias", default="champion")
    promote.add_argument("--reason", default="")
    promote.add_argument("--override-gate", action="store_true", help="operators only; needs --reason")
    promote.set_defaults(handler=_promote)
    rollback = actions.add_parser("rollback", help="champion and live traffic back to an earlier champion")
    rollback.add_argument("name")
    rollback.add_argument("--reason", required=True)
    rollback.add_argument("--to-version", type=int, default=0)
    rollback.set_defaults(handler=_rollback)
    retire = actions.add_parser("retire", help="take a model out of service (gateways unload its versions)")
    retire.add_argument("name")
    retire.add_argument("--reason", required=True)
    retire.set_defaults(handler=_retire)
    audit = actions.add_parser("audit", help="the audit log, or with --at what served at that time")
    audit.add_argument("name", nargs="?", default="")
    audit.add_argument("--at", type=_moment, help="ISO 8601 time: which versions served then")
    audit.add_argument("--limit", type=int, default=50)
    audit.set_defaults(handler=_audit)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    """Dispatches to the action; registry errors become a message and exit status 1."""
    try:
        with grpc.insecure_channel(args.registry) as channel:
            args.stub = registry_pb2_grpc.RegistryServiceStub(channel)
            args.metadata = (("authorization", f"Bearer {args.api_key}"),) if args.api_key else ()
            return int(args.handler(args) or 0)
    except grpc.RpcError as error:
        print(f"loopline models: {error.code().name}: {error.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1


def table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    cells = [tuple(str(c) for c in row) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _aliases(model: pb.Model) -> str:
    return ", ".join(f"{a}={v}" for a, v in sorted(model.aliases.items())) or "-"


def _list(args: argparse.Namespace) -> None:
    rows, token = [], ""
    while True:
        page = args.stub.ListModels(pb.ListModelsRequest(name_prefix=args.prefix, page={"page_token": token}),
                                    metadata=args.metadata)
        rows += [(m.name, m.task, _aliases(m), m.created_at.ToDatetime().isoformat(timespec="seconds"))
                 for m in page.models]
        if not (token := page.next_page_token):
            break
    print(table(("MODEL", "TASK", "ALIASES", "CREATED"), rows))


def _split(deployment: pb.Deployment) -> str:
    if not deployment.splits:
        return "retired (serves nothing)"
    live = ", ".join(f"v{s.version}:{s.weight:g}" for s in deployment.splits)
    shadows = ", ".join(f"v{v}" for v in deployment.shadow_versions)
    fallback = deployment.fallback_version
    return live + (f" (shadow {shadows})" if shadows else "") + (f", fallback v{fallback}" if fallback else "")


def _show(args: argparse.Namespace) -> None:
    model = args.stub.GetModel(pb.GetModelRequest(name=args.name), metadata=args.metadata)
    print(f"model {model.name} ({model.task}): {model.description or '-'}\naliases: {_aliases(model)}")
    try:
        deployment = args.stub.GetDeployment(pb.GetDeploymentRequest(model=args.name), metadata=args.metadata)
        print(f"deployment revision {deployment.revision}: {_split(deployment)}")
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
            raise
        print("deployment: none")


def _versions(args: argparse.Namespace) -> None:
    rows, token = [], ""
    while True:
        page = args.stub.ListModelVersions(pb.ListModelVersionsRequest(
            model=args.name, status=STATUS.get(args.status or "unspecified", 0), page={"page_token": token}),
            metadata=args.metadata)
        rows += [(v.version, pb.VersionStatus.Name(v.status).removeprefix("VERSION_STATUS_").lower(),
                  v.artifact.sha256[:12], v.run_id or "-", ", ".join(f"{k}={x:g}" for k, x in v.metrics.items()))
                 for v in page.versions]
        if not (token := page.next_page_token):
            break
    print(table(("VERSION", "STATUS", "ARTIFACT", "RUN", "METRICS"), rows))


def _promote(args: argparse.Namespace) -> None:
    version = args.stub.PromoteModelVersion(pb.PromoteModelVersionRequest(
        model=args.name, version=args.version, alias=args.alias, reason=args.reason,
        override_gate=args.override_gate), metadata=args.metadata)
    print(f"{args.name}: {args.alias} -> version {version.version}")


def _rollback(args: argparse.Namespace) -> None:
    reply = args.stub.RollBack(pb.RollBackRequest(model=args.name, reason=args.reason, to_version=args.to_version),
                               metadata=args.metadata)
    traffic = f"; deployment revision {reply.deployment.revision}" if reply.HasField("deployment") else ""
    print(f"{args.name}: champion -> version {reply.champion.version}{traffic}")


def _retire(args: argparse.Namespace) -> None:
    current = args.stub.GetDeployment(pb.GetDeploymentRequest(model=args.name), metadata=args.metadata)
    retired = args.stub.RetireDeployment(pb.RetireDeploymentRequest(
        model=args.name, expected_revision=current.revision, reason=args.reason), metadata=args.metadata)
    print(f"{args.name}: retired at deployment revision {retired.revision}")


def _audit(args: argparse.Namespace) -> None:
    if args.at:
        at = Timestamp()
        at.FromDatetime(args.at)
        served = args.stub.GetServedAt(pb.GetServedAtRequest(model=args.name, at=at), metadata=args.metadata)
        live = ", ".join(f"v{v}" for v in served.serving_versions) or "nothing"
        print(f"{args.name} at {args.at.isoformat()}: {live} (champion {served.champion_version or '-'})")
        return
    reply = args.stub.ListAuditEntries(pb.ListAuditEntriesRequest(model=args.name, page={"page_size": args.limit}),
                                       metadata=args.metadata)
    print(table(("ID", "AT", "ACTOR", "ACTION", "TARGET", "REASON"), [
        (e.id, e.at.ToDatetime().isoformat(timespec="seconds"), e.actor, e.action, e.target, e.reason or "-")
        for e in reply.entries]))
