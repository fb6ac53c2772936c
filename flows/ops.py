"""The operations shell under its earlier name: each concern has its own module now.

    deployments.py  the deployments of prefect.yaml, served without infrastructure
    secrets.py      secrets from Prefect Secret blocks
    alerts.py       failed runs alert the operators
    server.py       the project's local Prefect server
"""

from flows.alerts import notify_failure
from flows.deployments import PREFECT_FILE, DeploymentSpec, read_deployments, serve_flows
from flows.secrets import resolve_secrets, secret_block_names, settings_from
from flows.server import start_local_server, stop_local_server, use_local_server

__all__ = [
    "PREFECT_FILE",
    "DeploymentSpec",
    "notify_failure",
    "read_deployments",
    "resolve_secrets",
    "secret_block_names",
    "serve_flows",
    "settings_from",
    "start_local_server",
    "stop_local_server",
    "use_local_server",
]
