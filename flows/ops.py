"""Operations shell: the deployments of prefect.yaml served without infrastructure, secrets from
Prefect Secret blocks, operator notifications on failure, and the quick local loop.

Core code never sees Prefect: :func:`resolve_secrets` returns a plain ``Settings`` with the secret
values filled in, and :func:`notify_failure` sends an ordinary email through the configured transport.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pressroom.errors import ConfigError
from pressroom.settings import ENV_PREFIX, Settings

__all__ = [
    "DeploymentSpec",
    "read_deployments",
    "serve_flows",
    "resolve_secrets",
    "secret_block_names",
    "notify_failure",
    "send_to_people",
    "use_local_server",
    "start_local_server",
    "stop_local_server",
]

REPO = Path(__file__).resolve().parent.parent
PREFECT_FILE = REPO / "prefect.yaml"


# --------------------------------------------------------------------------- deployments


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


def _runner_deployments(*, prefect_file: Path) -> list[Any]:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.flows import load_flow_from_entrypoint

    deployments = []
    for spec in read_deployments(prefect_file=prefect_file):
        path, _, function = spec.entrypoint.partition(":")
        flow = load_flow_from_entrypoint(f"{prefect_file.parent / path}:{function}")
        limit: Any = spec.concurrency_limit
        if limit is not None and spec.collision_strategy:
            limit = ConcurrencyLimitConfig(limit=limit, collision_strategy=spec.collision_strategy)
        deployments.append(
            flow.to_deployment(
                name=spec.name,
                description=spec.description or None,
                tags=list(spec.tags),
                parameters=spec.parameters,
                schedules=[_schedule(raw) for raw in spec.schedules],
                concurrency_limit=limit,
            )
        )
    return deployments


def serve_flows(*, prefect_file: Path = PREFECT_FILE, limit: int | None = None) -> None:
    """Serve every deployment of ``prefect_file`` from this process, with its schedules; blocks until stopped.

    The working directory becomes the project folder so relative ``settings_file`` parameters
    resolve as they do for a worker that ran prefect.yaml's pull step.
    """
    from prefect import serve

    os.chdir(prefect_file.parent)
    serve(*_runner_deployments(prefect_file=prefect_file), limit=limit)


# --------------------------------------------------------------------------- secrets


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def secret_block_names(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Secret block name -> the setting it fills (a path into Settings), for these settings."""
    names: dict[str, tuple[str, ...]] = {
        "pressroom-secret-key": ("secret_key",),
        "pressroom-database-url": ("database_url",),
        "pressroom-smtp-password": ("smtp", "password"),
        "pressroom-dkim-key": ("dkim", "key"),
    }
    for index, account in enumerate(settings.social):
        stem = f"pressroom-social-{_slug(account.network)}-{_slug(account.account)}"
        names[f"{stem}-token"] = ("social", str(index), "token")
        names[f"{stem}-password"] = ("social", str(index), "password")
    return names


def _env_name(path: tuple[str, ...], settings: Settings) -> str:
    """The PRESSROOM_* variable that sets the same secret (social: PRESSROOM_SOCIAL__<NETWORK>[_<ACCOUNT>]__<KEY>)."""
    if path[0] == "social":
        account = settings.social[int(path[1])]
        suffix = "" if account.account == "default" else f"_{account.account}"
        path = ("social", f"{account.network}{suffix}", path[2])
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def _read_secret_blocks() -> dict[str, Any]:
    """Every Secret block on the Prefect API by name, in one request; none when there is no API."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            documents = client.read_block_documents_by_type("secret", include_secrets=True)
    except ObjectNotFound:
        return {}
    return {doc.name: doc.data.get("value") for doc in documents if doc.name}


def resolve_secrets(
    settings: Settings, *, environ: dict[str, str] | None = None, blocks: dict[str, Any] | None = None
) -> Settings:
    """``settings`` with secrets from Prefect Secret blocks named as :func:`secret_block_names` says.

    A ``PRESSROOM_*`` environment variable for the same setting wins over a block, so an operator
    can override one secret on one machine. The values never appear in logs: the names that were
    used are the only thing reported.
    """
    environ = dict(os.environ if environ is None else environ)
    blocks = _read_secret_blocks() if blocks is None else blocks
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    social: dict[int, dict[str, Any]] = {}
    for name, path in secret_block_names(settings).items():
        value = blocks.get(name)
        if value is None or _env_name(path, settings) in environ:
            continue
        value = value if isinstance(value, str) else json.dumps(value)
        if path[0] == "social":
            social.setdefault(int(path[1]), {})[path[2]] = value
        elif len(path) == 1:
            top[path[0]] = value
        else:
            sections.setdefault(path[0], {})[path[1]] = value
    if not (top or sections or social):
        return settings
    # Validate through the model so a SecretStr field gets a SecretStr, as if it came from the file.
    data = settings.model_dump()
    data.update(top)
    for section, values in sections.items():
        data[section] = {**data[section], **values}
    for index, values in social.items():
        data["social"][index] = {**data["social"][index], **values}
    return type(settings).model_validate(_reveal(data))


def _reveal(value: Any) -> Any:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {key: _reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_reveal(item) for item in value]
    return value


# --------------------------------------------------------------------------- email to people (proofs, alerts)


def send_to_people(*, settings: Settings, addresses: list[str], key: str, message: Any) -> list[str]:
    """Send one email per address, once per ``key``, through the staff channel of the ledger; returns who has it.

    ``message(address) -> bytes`` builds each message. A handful of emails to staff (proofs,
    failure alerts): one failing address never stops the others, each failure is logged.
    """
    from pressroom.dispatch import send_staff

    return send_staff(settings=settings, key=key, messages={address: message(address) for address in addresses})


def _plain_email(*, settings: Settings, to: str, subject: str, text: str) -> bytes:
    from email.message import EmailMessage
    from email.utils import formataddr, formatdate, make_msgid

    message = EmailMessage()
    message["From"] = formataddr((settings.email.sender_name or settings.site.name, settings.email.sender))
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.email.sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to an alert
    message.set_content(text)
    return bytes(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))


# --------------------------------------------------------------------------- failure notifications


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_failure``/``on_crashed`` hook: tell the operators that a run failed.

    By email through the configured transport to ``[ops] notify`` (the editors when empty), and
    through the Prefect notification block ``[ops] notify_block`` (``<block-type>/<name>``, e.g.
    ``slack-webhook/pressroom-operators``) when one is set. Settings come from the run's
    ``settings_file`` parameter. A failure to notify is logged; it never hides the run's own failure.
    """
    from prefect.logging import get_logger

    from pressroom.settings import load_settings

    logger = get_logger("pressroom.ops")
    subject = f"[pressroom] {flow.name} run {flow_run.name} {state.name.lower()}"
    body = _failure_text(flow_run=flow_run, state=state)
    try:
        settings_file = (flow_run.parameters or {}).get("settings_file")
        settings = resolve_secrets(load_settings(Path(settings_file) if settings_file else None))
    except Exception as exc:  # noqa: BLE001 - the settings may be what failed
        logger.warning("cannot notify operators about %s: settings: %s", flow_run.name, exc)
        return
    if settings.ops.notify_block:
        try:
            from prefect.blocks.core import Block

            Block.load(settings.ops.notify_block).notify(body=body, subject=subject)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - a broken webhook must not stop the email
            logger.warning("notification block %s failed: %s", settings.ops.notify_block, exc)
    operators = settings.ops.notify or settings.email.editors
    try:
        sent = send_to_people(
            settings=settings,
            addresses=list(operators),
            key=f"ops-failure-{flow_run.id}",
            message=lambda address: _plain_email(settings=settings, to=address, subject=subject, text=body),
        )
    except Exception as exc:  # noqa: BLE001
        logger.warning("could not email operators about %s: %s", flow_run.name, exc)
        return
    logger.info("failure of %s reported by email to %d of %d operator(s)", flow_run.name, len(sent), len(operators))


def _failure_text(*, flow_run: Any, state: Any) -> str:
    from prefect.settings import PREFECT_UI_URL

    lines = [f"Flow run {flow_run.name} ({flow_run.id}) ended {state.name}.", "", str(state.message or "")]
    if ui := PREFECT_UI_URL.value():
        lines += ["", f"Details: {ui}/runs/flow-run/{flow_run.id}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the quick local loop
# Without a server every process starts a temporary Prefect API (7-19 s). A server started once
# under var/prefect/ and found again by the next command cuts a run to about two seconds.
# These helpers import nothing from Prefect: they must run before Prefect reads its settings.


def _server_file(settings: Settings) -> Path:
    return settings.path("var") / "prefect" / "server.json"


def _healthy(url: str, timeout: float = 0.5) -> bool:
    from urllib.error import URLError
    from urllib.request import urlopen

    try:
        with urlopen(f"{url}/health", timeout=timeout) as response:  # noqa: S310 - loopback URL we wrote
            return response.status == 200
    except (URLError, OSError):
        return False


def use_local_server(settings: Settings) -> str | None:
    """Point this process at the project's running local Prefect server, if there is one.

    ``PREFECT_API_URL`` set by the operator always wins. Returns the API URL in use, or None
    when Prefect will start its temporary server. Call it before anything imports prefect.
    """
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    try:
        record = json.loads(_server_file(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = record.get("url", "")
    if not url or not _healthy(url):
        return None
    os.environ["PREFECT_API_URL"] = url
    return url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_local_server(settings: Settings, *, timeout: float = 90.0) -> str:
    """Start (or find) a Prefect server for this project on a free loopback port; returns its API URL.

    It runs detached with its database under ``var/prefect/``, so runs and artifacts survive
    between commands and show in its UI; :func:`stop_local_server` ends it.
    """
    if url := use_local_server(settings):
        return url
    home = _server_file(settings).parent
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(home)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    log = open(home / "server.log", "ab")  # noqa: SIM115 - handed to the detached process
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not _healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise ConfigError(
                f"the local Prefect server did not start (see {home / 'server.log'})",
                hint="set PREFECT_API_URL to a running server, or run without one",
            )
        time.sleep(0.25)
    _server_file(settings).write_text(json.dumps({"pid": process.pid, "url": url}), encoding="utf-8")
    return url


def stop_local_server(settings: Settings) -> bool:
    """Stop the server :func:`start_local_server` started; False when none was running."""
    file = _server_file(settings)
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    file.unlink(missing_ok=True)
    try:
        os.killpg(record["pid"], signal.SIGTERM)
    except (ProcessLookupError, PermissionError, KeyError):
        return False
    return True
