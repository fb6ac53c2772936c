"""Secrets from Prefect Secret blocks, filled into plain settings before anything else runs.

Core code never sees Prefect: :func:`resolve_secrets` returns a plain ``Settings`` with the secret
values filled in. A ``PRESSROOM_*`` environment variable for the same setting wins over a block.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pressroom.releases import slugify
from pressroom.settings import ENV_PREFIX, Settings, load_settings

__all__ = ["resolve_secrets", "secret_block_names", "settings_from"]


def settings_from(settings_file: str | None) -> Settings:
    """A flow run's settings: ``settings_file`` (default ./pressroom.toml), with secrets from Prefect Secret blocks."""
    return resolve_secrets(load_settings(Path(settings_file) if settings_file else None))


def secret_block_names(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Secret block name -> the setting it fills (a path into Settings), for these settings."""
    names: dict[str, tuple[str, ...]] = {
        "pressroom-secret-key": ("secret_key",),
        "pressroom-database-url": ("database_url",),
        "pressroom-smtp-password": ("smtp", "password"),
        "pressroom-dkim-key": ("dkim", "key"),
    }
    for index, account in enumerate(settings.social):
        stem = f"pressroom-social-{slugify(account.network)}-{slugify(account.account)}"
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
