"""Prefect shell: thin flows and tasks around pressroom.* calls, with retries and artifacts."""

import os

# Prefect phones home unless told not to: the server's telemetry service and the SDK's usage
# events. Every way into Pressroom's Prefect code imports this package first (the pressroom CLI,
# serve-flows, a worker's flow-run process loading flows/*.py), so this is the one place that
# turns both off, before Prefect reads its settings or starts a server. An operator who wants
# them sets PREFECT_SERVER_ANALYTICS_ENABLED=true.
if os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false").strip().lower() in {"false", "0", "no", "off"}:
    os.environ.setdefault("DO_NOT_TRACK", "1")
