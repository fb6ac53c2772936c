"""One typed Settings object: defaults here, then ``pressroom.toml``, then ``PRESSROOM_*`` variables.

An environment variable names a section and a key joined by a double underscore:
``PRESSROOM_EMAIL__TRANSPORT=smtp``, ``PRESSROOM_SMTP__PASSWORD=...``,
``PRESSROOM_DATABASE_URL=postgresql+psycopg://...``. Values are parsed as TOML when they
parse (numbers, booleans, arrays) and taken as strings otherwise.

Secrets are ``SecretStr``: they print as ``**********`` and are never written to outputs.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import tomllib
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from pressroom.errors import ConfigError

__all__ = ["Settings", "load_settings", "SETTINGS_FILE"]

SETTINGS_FILE = "pressroom.toml"
ENV_PREFIX = "PRESSROOM_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSettings(_Section):
    name: str = "Pressroom"
    base_url: str = "http://localhost:8000"
    language: str = "en"
    timezone: str = "UTC"
    description: str | dict[str, str] = Field("", description="one sentence about the site; or a {language: text} table")
    about: str | dict[str, str] = Field(
        "", description="Markdown 'About' boilerplate appended to every release; or a {language: text} table"
    )
    logo: str | None = None
    brand_color: str = "#0b5d7a"
    postal_address: str = ""
    page_size: int = Field(20, ge=1, le=500)
    feed_items: int = Field(50, ge=1, le=10_000)

    @field_validator("base_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL such as https://example.org")
        return value.rstrip("/")

    @field_validator("brand_color")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        # The one home of the colour rule: pages and emails use it as it is, with no fallback of their own.
        text = value.strip()
        if re.fullmatch(r"#[0-9a-fA-F]{3}", text):
            text = "#" + "".join(ch * 2 for ch in text[1:])
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", text):
            raise ValueError(f"{value!r} is not a colour; write six hex digits such as #0b5d7a")
        return text.lower()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Brussels") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    withdrawn_days: int = Field(30, ge=0, le=3650, description="days a withdrawn release's notice stays in the feeds")

    languages: list[str] = Field(
        default_factory=list, description="the languages releases are published in; default: only `language`"
    )
    require_translations: bool = Field(False, description="check: every release needs a version in every language")
    locale_dir: str = Field("", description="the project's own catalogues, <lang>/LC_MESSAGES/messages.po, over the shipped ones")

    @property
    def all_languages(self) -> tuple[str, ...]:
        """The site language first, then the other published languages."""
        return tuple(dict.fromkeys((self.language, *self.languages)))

    def description_in(self, language: str) -> str:
        """The site's description for ``language``: its own entry of the table, else the site language's."""
        return _in_language(self.description, language, self.language)

    def about_in(self, language: str) -> str:
        """The About text for ``language``: its own entry of the table, else the site language's."""
        return _in_language(self.about, language, self.language)


def _in_language(text: str | dict[str, str], language: str, site_language: str) -> str:
    if isinstance(text, str):
        return text
    for code in (language, language.split("-")[0], site_language):
        if code in text:
            return text[code]
    return ""


class PathSettings(_Section):
    """Folders, relative to the folder that holds pressroom.toml."""

    content: Path = Path("content")
    public: Path = Path("public")
    var: Path = Path("var")
    templates: Path = Path("templates")


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    timeout: float = 30.0
    connections: int = Field(4, ge=1, le=64, description="SMTP connections each sender process opens")
    window: int = Field(
        2, ge=1, le=100,
        description="messages handed to one connection at a time (pipeline depth); a crash leaves at most "
        "connections x window of them ambiguous",
    )
    rate_per_second: float = Field(0.0, ge=0.0, description="0 means no limit")
    validate_certs: bool = True
    cert_bundle: Path | None = Field(None, description="CA bundle (PEM) for a server with a private certificate")


class DkimSettings(_Section):
    domain: str | None = None
    selector: str | None = None
    key_file: Path | None = None
    key: SecretStr | None = Field(None, description="PEM private key; alternative to key_file")


class EmailSettings(_Section):
    enabled: bool = True
    transport: str = "outbox"
    sender: str = "press@example.org"
    sender_name: str = ""
    return_path: str | None = Field(None, description="envelope sender for bounces (default: sender)")
    reply_to: str | None = None
    list_id: str | None = None
    unsubscribe_mailto: str | None = None
    utm: bool = False
    utm_source: str = "newsletter"
    utm_medium: str = "email"
    batch_size: int = Field(500, ge=1, le=100_000)
    max_attempts: int = Field(5, ge=1, le=50)
    max_age_days: float | None = Field(
        None, description="never email a release whose publication time is older than this when first seen"
    )
    approval_required: bool = False
    editors: list[str] = Field(default_factory=list)
    workers: int = Field(2, ge=1, le=32, description="sender tasks running at once (each opens smtp.connections)")
    processes: bool = Field(False, description="run sender tasks in worker processes instead of threads (uses every core)")
    retry_backoff_seconds: float = Field(30.0, gt=0, description="first wait after a 4xx; doubles per attempt")
    retry_window_seconds: float = Field(120.0, ge=0, description="how long one run waits for deferred retries")
    give_up_after: timedelta = Field(
        timedelta(hours=72), gt=timedelta(0),
        description="how long mail waits for a server that is down or refusing the session (\"72h\", \"3d\", \"90m\");"
                    " after that it is expired, and pressroom deliveries retry --expired sends it again",
    )
    claim_lease_seconds: float = Field(60.0, gt=0, description="a claimed batch left unsent is taken over after this")
    send_corrections: bool = Field(False, description="email each new correction note to those who received the release")
    complaints_address: str | None = Field(
        None, description="where providers send spam complaints (ARF) about bulk mail: the CFBL-Address header (RFC 9477)"
    )
    feedback_id: str | None = Field(
        None, description="the sender id ending every Feedback-ID header (Gmail's complaint statistics); default: the list id"
    )

    @field_validator("give_up_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value) if isinstance(value, str) else None
        if found is None:
            return value  # a number of seconds or an ISO 8601 duration, as pydantic reads them
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
        return timedelta(**{unit: float(found.group(1))})

    @field_validator("complaints_address")
    @classmethod
    def _plain_address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s<>;,\"\x00-\x1f\x7f]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+", value):
            raise ValueError(f"{value!r} is not a plain address such as fbl@example.org")
        return value

    @field_validator("feedback_id")
    @classmethod
    def _feedback_field(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
            raise ValueError(f"{value!r}: use letters, digits, '.', '_' and '-' only (at most 64)")
        return value


class AudienceSettings(_Section):
    seed_csv: Path | None = Field(
        None, description="imported while there are no subscribers at all (the sample list of a fresh clone)"
    )

    @field_validator("seed_csv", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # PRESSROOM_AUDIENCE__SEED_CSV="" turns the sample list off.
        return None if value == "" else value


class DigestSettings(_Section):
    enabled: bool = True
    subject: str = "This week's press releases"


class SocialAccount(_Section):
    network: str
    account: str = "default"
    enabled: bool = True
    base_url: str | None = None
    handle: str | None = None
    token: SecretStr | None = None
    password: SecretStr | None = None
    author_urn: str | None = None
    # Added for social networks: request timeout (seconds), LinkedIn's API version (YYYYMM),
    # Bluesky's embed ("card": link card with the hero as thumb; "image": the hero with its alt text).
    timeout: float = Field(20.0, gt=0, le=300)
    api_version: str = "202510"
    embed: Literal["card", "image"] = "card"
    max_age_days: float | None = Field(
        None, gt=0, description="never post a release older than this on an account that has not posted it yet"
    )
    language: str | None = Field(None, description="which translation this account posts (default: the release as written)")

    @field_validator("token", "password", mode="before")
    @classmethod
    def _secret_as_text(cls, value: Any) -> Any:
        # An all-digit secret from the environment parses as a TOML number; it is still text.
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8000
    confirm_token_hours: float = 48.0
    pending_expiry_days: float = 7.0
    # Abuse limits of the web app, counted in the server process (one `pressroom serve` per site).
    posts_per_ip_per_minute: int = Field(20, ge=1, description="form POSTs per client address per minute")
    confirmations_per_ip_per_hour: int = Field(10, ge=1, description="confirmation emails per client per hour")
    confirmations_per_address_per_day: int = Field(3, ge=1, description="confirmation emails per address per day")
    confirmations_per_hour: int = Field(500, ge=1, description="confirmation emails per hour from the whole site")
    forwarded_allow_ips: str = Field(
        "", description="proxies whose X-Forwarded-For is trusted for the client address (comma-separated); none by default"
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="the largest request body any endpoint reads")
    previous_secret_keys: list[SecretStr] = Field(
        default_factory=list, description="older secret keys: links they signed still verify; they never sign"
    )
    consent_text: str | dict[str, str] = Field(
        "I want to receive press releases from {site} by email, on the topics and at the pace I chose. "
        "I can change this or unsubscribe at any time with the links in every email.",
        description="the sentence a subscriber agrees to ({site}: the site name), or a {language: sentence} table. "
        "Stored with each consent.",
    )

    def consent(self, site_name: str, language: str = "") -> str:
        """The consent sentence exactly as the subscribe forms show it, in ``language`` when the table has it.

        The default sentence is translated by the catalogues instead (``pressroom.i18n.consent``).
        """
        text = self.consent_text
        if isinstance(text, dict):
            first = next(iter(text.values()), "")
            text = text.get(language) or text.get(language.split("-")[0]) or first
        return text.replace("{site}", site_name)


class AnalyticsSettings(_Section):
    """Aggregate link counts: how often each link of a release was followed, never by whom."""

    links: bool = Field(
        False,
        description="send links in emails and posts through the site's /r/ redirect, which counts them; "
        "only where `pressroom serve` answers at [site] base_url (a static-only host would break them)",
    )
    burst_seconds: float = Field(
        10.0, gt=0, description="a client that follows several links of one message within this is a scanner, not a reader"
    )


class DoctorSettings(_Section):
    """What `pressroom doctor --dns` asks, and of whom."""

    nameserver: str | None = Field(
        None, description="the resolver doctor asks, as an address with an optional port (9.9.9.9, 127.0.0.1:5353); "
        "default: the system's"
    )
    relay_addresses: list[str] = Field(
        default_factory=list,
        description="the public IP addresses your mail leaves from, as receivers see them (SPF and reverse DNS are "
        "checked for each); default: smtp.host when it is a public IP address",
    )
    timeout: float = Field(5.0, gt=0, le=60, description="seconds to wait for one DNS answer")

    @field_validator("nameserver")
    @classmethod
    def _address_and_port(cls, value: str | None) -> str | None:
        import ipaddress

        if value is None or not value.strip():
            return None
        host, port = _split_port(value.strip())
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (with an optional :port)") from None
        if not 0 < port < 65536:
            raise ValueError(f"{value!r}: the port must be between 1 and 65535")
        return value.strip()

    @field_validator("relay_addresses")
    @classmethod
    def _ip_addresses(cls, values: list[str]) -> list[str]:
        import ipaddress

        for value in values:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address") from None
        return values

    @property
    def resolver_address(self) -> tuple[str, int] | None:
        """(address, port) of the configured nameserver, or None for the system's."""
        return None if self.nameserver is None else _split_port(self.nameserver)


def _split_port(value: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:53``, ``::1``, ``[::1]:53`` -> (address, port)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 53
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port) if port.isdigit() else -1
    return value, 53


class OpsSettings(_Section):
    """Running Pressroom as a service: who hears about failures, how long an approval may wait."""

    notify: list[str] = Field(default_factory=list, description="operators emailed when a run fails (default: the editors)")
    notify_block: str | None = Field(None, description="a Prefect notification block as <block-type>/<name>")
    approval_timeout_minutes: float = Field(1440.0, gt=0, description="an email not approved within this is not sent")
    send_helpers: int = Field(1, ge=0, le=32, description="extra runs (other workers) sharing one big email send")


class PrefectSettings(_Section):
    """The project's local Prefect server (``pressroom prefect-server``) and Prefect's temporary one."""

    port: int | None = Field(None, ge=1, le=65535, description="the local server's port (default: a free one at each start)")
    start_timeout: float = Field(
        180.0, gt=0, le=3600, description="seconds a Prefect server may take to start; a busy machine needs more than idle"
    )


# The secret that shipped in the source of earlier versions: public, so it signs nothing.
PUBLIC_SECRET = "pressroom-development-secret-change-me"
_SECRET_HINT = (
    "set PRESSROOM_SECRET_KEY (or the Prefect Secret block pressroom-secret-key) to a long random value, "
    "e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or remove it to use a generated one"
)


def _refuse_public(value: SecretStr | None, where: str) -> None:
    if value is not None and value.get_secret_value().strip() in (PUBLIC_SECRET, ""):
        raise ConfigError(f"{where} is the public development secret (or empty): anyone could forge links with it", hint=_SECRET_HINT)


@functools.lru_cache(maxsize=64)  # asked for on every page and press kit of a build; resolving means a syscall per part
def _resolved(folder: Path) -> Path:
    return folder.resolve()


class Settings(_Section):
    """Everything Pressroom is told. Build it with :func:`load_settings`."""

    root: Path = Path(".")
    database_url: str | None = None
    secret_key: SecretStr | None = Field(
        None, description="signs links and keys the address hashes; unset: a random key kept in var/secret_key"
    )
    site: SiteSettings = SiteSettings()
    paths: PathSettings = PathSettings()
    email: EmailSettings = EmailSettings()
    smtp: SmtpSettings = SmtpSettings()
    dkim: DkimSettings = DkimSettings()
    digest: DigestSettings = DigestSettings()
    social: list[SocialAccount] = Field(default_factory=lambda: [SocialAccount(network="outbox")])
    web: WebSettings = WebSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    ops: OpsSettings = OpsSettings()
    audience: AudienceSettings = AudienceSettings()
    doctor: DoctorSettings = DoctorSettings()
    prefect: PrefectSettings = PrefectSettings()

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    def path(self, name: Literal["content", "public", "var", "templates"]) -> Path:
        """An absolute folder from [paths], resolved against the project root."""
        folder = getattr(self.paths, name)
        return folder if folder.is_absolute() else _resolved(self.root / folder)

    @property
    def releases_dir(self) -> Path:
        return self.path("content") / "releases"

    @property
    def db_url(self) -> str:
        """SQLAlchemy URL; the embedded default is a SQLite file under var/."""
        return self.database_url or f"sqlite:///{self.embedded_database}"

    @property
    def embedded_database(self) -> Path:
        """The SQLite file used when no ``database_url`` is set."""
        return self.path("var") / "pressroom.db"

    @field_validator("secret_key", mode="before")
    @classmethod
    def _secret_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    def signing_keys(self) -> tuple[bytes, ...]:
        """The key that signs (first), then the previous keys that still verify.

        With no ``secret_key`` configured, a random one is created on first use in
        ``var/secret_key`` (mode 0600) and used from then on. The old public development
        string is refused wherever it comes from (file, environment, Secret block).
        """
        return _signing_keys(
            self.secret_key.get_secret_value() if self.secret_key is not None else None,
            tuple(old.get_secret_value() for old in self.web.previous_secret_keys),
            self.root, self.paths.var,
        )

    @cached_property
    def fingerprint(self) -> str:
        """A digest of every setting that changes what is rendered; secrets excluded."""
        import hashlib

        data = self.model_dump_json(exclude={"secret_key", "smtp", "dkim", "social", "database_url", "ops", "doctor", "prefect"})
        return hashlib.blake2b(data.encode(), digest_size=16).hexdigest()


@functools.lru_cache(maxsize=64)  # a fan-out signs two links per recipient
def _signing_keys(secret: str | None, previous: tuple[str, ...], root: Path, var: Path) -> tuple[bytes, ...]:
    # Keyed by the values, not cached on the Settings object: a copy with another secret_key
    # (a Secret block applied with model_copy) must never sign with the old one.
    _refuse_public(None if secret is None else SecretStr(secret), "secret_key")
    for index, old in enumerate(previous):
        _refuse_public(SecretStr(old), f"web.previous_secret_keys[{index}]")
    current = secret.encode() if secret is not None else _generated_secret(var if var.is_absolute() else (root / var).resolve())
    return (current, *(old.encode() for old in previous))


@functools.lru_cache(maxsize=16)  # read once per process
def _generated_secret(var: Path) -> bytes:
    """The secret in ``var/secret_key``, created (0600, atomically: concurrent first uses agree) when absent."""
    path = var / "secret_key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    var.mkdir(parents=True, exist_ok=True)
    temporary = var / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(temporary, path)  # fails if another process won the race: theirs is used
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_bytes().strip()


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "PRESSROOM_SETTINGS":
            continue
        keys = name[len(ENV_PREFIX):].lower().split("__")
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = overrides
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {'.'.join(keys)} is not a section", hint="remove or rename the variable")
        node[keys[-1]] = value
    return overrides


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif isinstance(value, dict) and key == "social":
            merged[key] = _merge_accounts(merged.get(key) or [], value)
        else:
            merged[key] = value
    return merged


def _merge_accounts(accounts: list[dict[str, Any]], top: dict[str, Any]) -> list[dict[str, Any]]:
    """``PRESSROOM_SOCIAL__BLUESKY__PASSWORD`` (or ``__BLUESKY_PRESS__`` for account "press") sets a
    key of that [[social]] account, adding the account when pressroom.toml has none, so secrets
    never need to be in the file."""
    merged = [dict(account) for account in accounts]
    for name, values in top.items():
        if not isinstance(values, dict):
            raise ConfigError(
                f"PRESSROOM_SOCIAL__{name.upper()}: name a key too",
                hint="write PRESSROOM_SOCIAL__<NETWORK>__<KEY>, e.g. PRESSROOM_SOCIAL__BLUESKY__PASSWORD",
            )
        network, _, account = name.partition("_")
        account = account or "default"
        for existing in merged:
            if existing.get("network") == network and existing.get("account", "default") == account:
                existing.update(values)
                break
        else:
            merged.append({"network": network, "account": account, **values})
    return merged


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"{where}: {message}"


def load_settings(path: Path | str | None = None, *, environ: dict[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (default: ``$PRESSROOM_SETTINGS`` or ./pressroom.toml), then the environment.

    A missing file is fine (every setting has a default); an invalid one raises
    :class:`ConfigError` naming the file and every wrong key at once.
    """
    environ = dict(os.environ if environ is None else environ)
    file = Path(path or environ.get("PRESSROOM_SETTINGS") or SETTINGS_FILE)
    data: dict[str, Any] = {}
    if file.is_dir():
        file = file / SETTINGS_FILE
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: {exc}", hint="pressroom.toml must be valid UTF-8 TOML") from None
    elif path is not None:
        raise ConfigError(f"{file}: no such settings file", hint="pass the path of pressroom.toml or leave it out")
    data = _merge(data, _env_overrides(environ))
    data.setdefault("root", str(file.resolve().parent))
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"{file}: {problems}") from None
    _refuse_public(settings.secret_key, f"{file}: secret_key")
    return settings
