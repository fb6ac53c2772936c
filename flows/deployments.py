"""The deployments of prefect.yaml: read as ``prefect deploy`` reads them, and served without infrastructure."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pressroom.errors import ConfigError
from pressroom.settings import Settings

from flows.server import start_local_server

__all__ = ["PREFECT_FILE", "DeploymentSpec", "read_deployments", "serve_flows"]

REPO = Path(__file__).resolve().parent.parent
PREFECT_FILE = REPO / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of prefect.yaml, as both ``prefect deploy`` and ``serve-flows`` read it."""

    name: str
    entrypoint: str
    description: str = ""
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[dict[str, Any], ...] = ()
    concurrency_limit: int | None = None
    collision_strategy: str | None = None


def read_deployments(*, prefect_file: Path = PREFECT_FILE) -> list[DeploymentSpec]:
    """The deployments declared in ``prefect_file`` (YAML anchors and aliases resolved)."""
    try:
        data = yaml.safe_load(prefect_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{prefect_file}: {exc}", hint="prefect.yaml must be readable YAML") from None
    specs = []
    for raw in data.get("deployments") or []:
        limit = raw.get("concurrency_limit")
        specs.append(
            DeploymentSpec(
                name=raw["name"],
                entrypoint=raw["entrypoint"],
                description=raw.get("description", ""),
                tags=tuple(raw.get("tags") or ()),
                parameters=dict(raw.get("parameters") or {}),
                schedules=tuple(dict(s) for s in raw.get("schedules") or ()),
                concurrency_limit=limit.get("limit") if isinstance(limit, dict) else limit,
                collision_strategy=limit.get("collision_strategy") if isinstance(limit, dict) else None,
            )
        )
    return specs


def _schedule(raw: dict[str, Any]) -> Any:
    from prefect.schedules import Cron, Interval

    if "cron" in raw:
        return Cron(raw["cron"], timezone=raw.get("timezone"))
    if "interval" in raw:
        return Interval(raw["interval"], anchor_date=raw.get("anchor_date"), timezone=raw.get("timezone"))
    raise ConfigError(f"schedule {raw!r}: only cron and interval schedules are served", hint="use cron: or interval:")


def _runner_deployments(
    *, prefect_file: Path, settings_file: Path | None = None, publish_interval: int | None = None
) -> list[Any]:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.flows import load_flow_from_entrypoint
    from prefect.schedules import Interval

    deployments = []
    for spec in read_deployments(prefect_file=prefect_file):
        path, _, function = spec.entrypoint.partition(":")
        flow = load_flow_from_entrypoint(f"{prefect_file.parent / path}:{function}")
        limit: Any = spec.concurrency_limit
        if limit is not None and spec.collision_strategy:
            limit = ConcurrencyLimitConfig(limit=limit, collision_strategy=spec.collision_strategy)
        parameters = dict(spec.parameters)
        if settings_file is not None and "settings_file" in parameters:
            parameters["settings_file"] = str(settings_file)
        schedules = [_schedule(raw) for raw in spec.schedules]
        if publish_interval is not None and spec.name == "publish":
            schedules = [Interval(publish_interval)]
        deployments.append(
            flow.to_deployment(
                name=spec.name,
                description=spec.description or None,
                tags=list(spec.tags),
                parameters=parameters,
                schedules=schedules,
                concurrency_limit=limit,
            )
        )
    return deployments


def serve_flows(
    *,
    settings: Settings,
    prefect_file: Path = PREFECT_FILE,
    settings_file: Path | None = None,
    limit: int | None = None,
    publish_interval: int | None = None,
) -> None:
    """Serve every deployment of ``prefect_file`` from this process, with its schedules; blocks until stopped.

    Schedules need a scheduler, and Prefect's temporary server has none: the project's local
    server (:func:`start_local_server`, left running for the next command) is found or started
    first, unless ``PREFECT_API_URL`` names another. ``settings_file`` (absolute) replaces the
    deployments' ``settings_file`` parameter; ``publish_interval`` (seconds) replaces the publish
    schedule, for tests and demonstrations. The working directory becomes the project folder so
    relative ``settings_file`` parameters resolve as they do for a worker that ran prefect.yaml's
    pull step.
    """
    start_local_server(settings)
    from prefect import serve

    # Before loading the flows: Prefect records each entrypoint relative to the working directory.
    os.chdir(prefect_file.parent)
    serve(
        *_runner_deployments(prefect_file=prefect_file, settings_file=settings_file, publish_interval=publish_interval),
        limit=limit,
    )
