"""Every handler bound to its dependencies: what the gRPC and REST edges call.

Wired explicitly with functools.partial, once, by bootstrap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from loopline_registry.service import (artifacts, audit, datasets, deployments, models, promotion, rollback, runs,
                                       versions)
from loopline_registry.service.auth import Authenticator, create_api_key, revoke_api_key
from loopline_registry.service.deps import Deps

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Handlers:
    deps: Deps
    auth: Authenticator
    create_model: Handler
    get_model: Handler
    list_models: Handler
    upload_artifact: Handler
    download_artifact: Handler
    get_artifact: Handler
    register_version: Handler
    get_version: Handler
    list_versions: Handler
    resolve_alias: Handler
    record_evaluation: Handler
    set_version_status: Handler
    promote: Handler
    rollback: Handler
    set_deployment: Handler
    retire_deployment: Handler
    get_deployment: Handler
    list_deployments: Handler
    create_dataset: Handler
    create_dataset_version: Handler
    get_dataset_version: Handler
    list_dataset_versions: Handler
    start_run: Handler
    log_metrics: Handler
    finish_run: Handler
    get_run: Handler
    get_lineage: Handler
    list_audit: Handler
    served_at: Handler
    create_api_key: Handler
    revoke_api_key: Handler


def bind(deps: Deps) -> Handlers:
    auth = Authenticator(deps)
    return Handlers(
        deps=deps,
        auth=auth,
        create_model=partial(models.create_model, deps),
        get_model=partial(models.get_model, deps),
        list_models=partial(models.list_models, deps),
        upload_artifact=partial(artifacts.upload_artifact, deps),
        download_artifact=partial(artifacts.download_artifact, deps),
        get_artifact=partial(artifacts.get_artifact, deps),
        register_version=partial(versions.register_version, deps),
        get_version=partial(versions.get_version, deps),
        list_versions=partial(versions.list_versions, deps),
        resolve_alias=partial(versions.resolve_alias, deps),
        record_evaluation=partial(versions.record_evaluation, deps),
        set_version_status=partial(versions.set_version_status, deps),
        promote=partial(promotion.promote, deps),
        rollback=partial(rollback.rollback, deps),
        set_deployment=partial(deployments.set_deployment, deps),
        retire_deployment=partial(deployments.retire_deployment, deps),
        get_deployment=partial(deployments.get_deployment, deps),
        list_deployments=partial(deployments.list_deployments, deps),
        create_dataset=partial(datasets.create_dataset, deps),
        create_dataset_version=partial(datasets.create_dataset_version, deps),
        get_dataset_version=partial(datasets.get_dataset_version, deps),
        list_dataset_versions=partial(datasets.list_dataset_versions, deps),
        start_run=partial(runs.start_run, deps),
        log_metrics=partial(runs.log_metrics, deps),
        finish_run=partial(runs.finish_run, deps),
        get_run=partial(runs.get_run, deps),
        get_lineage=partial(runs.get_lineage, deps),
        list_audit=partial(audit.list_audit, deps),
        served_at=partial(audit.served_at, deps),
        create_api_key=partial(create_api_key, deps),
        revoke_api_key=partial(revoke_api_key, deps, authenticator=auth),
    )
