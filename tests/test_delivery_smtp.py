"""The SMTP transport over STARTTLS and implicit TLS (SMTPS) with AUTH, against aiosmtpd on loopback."""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import ssl

import pytest

from pressroom.audience import Audience

from pressroom.ledger import Ledger
from tests._delivery import FaultyHandler, Received, SmtpServer, drain, simple_render
from tests.conftest import NOW


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (cert file doubles as the CA bundle)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def _authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=(auth_data.login, auth_data.password) == (b"press", b"s3cret"), handled=False)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_and_login(project, certificate, security: str) -> None:
    cert_file, key_file = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    received = Received()
    # aiosmtpd offers AUTH over implicit TLS only when told TLS is not required (it only tracks STARTTLS).
    options = ({"tls_context": context, "require_starttls": True, "auth_require_tls": True} if security == "starttls"
               else {"ssl_context": context, "auth_require_tls": False})
    with SmtpServer(FaultyHandler(received), authenticator=_authenticator, **options) as server:
        settings = project.settings(**server.env(), PRESSROOM_SMTP__SECURITY=security, PRESSROOM_SMTP__CERT_BUNDLE=cert_file,
                                    PRESSROOM_EMAIL__RETRY_WINDOW_SECONDS="5",
                                    PRESSROOM_SMTP__USERNAME="press", PRESSROOM_SMTP__PASSWORD="s3cret")
        audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
        audience.import_csv(file=io.StringIO("address\na@example.org\nb@example.org\n"), now=NOW)
        ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
        drain(settings=settings, ledger=ledger, audience=audience, release="news", render=simple_render)
    assert sorted(received.by_recipient()) == ["a@example.org", "b@example.org"], ledger.report(release="news").problems
    assert ledger.report(release="news").sent == 2


def test_login_without_auth_offered_is_a_config_error(project) -> None:
    from pressroom.errors import ConfigError

    with SmtpServer(FaultyHandler(Received())) as server:
        settings = project.settings(**server.env(), PRESSROOM_SMTP__USERNAME="press", PRESSROOM_SMTP__PASSWORD="x")
        audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
        audience.import_csv(file=io.StringIO("address\na@example.org\n"), now=NOW)
        ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
        with pytest.raises(ConfigError, match="smtp.security"):
            drain(settings=settings, ledger=ledger, audience=audience, release="news", render=simple_render)
    assert ledger.report(release="news").ambiguous == 0


def test_an_untrusted_certificate_is_not_sent_to(project, certificate) -> None:
    cert_file, key_file = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    received = Received()
    with SmtpServer(FaultyHandler(received), tls_context=context, require_starttls=True) as server:
        settings = project.settings(**server.env(), PRESSROOM_SMTP__SECURITY="starttls",
                                    PRESSROOM_EMAIL__RETRY_WINDOW_SECONDS="0")
        audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
        audience.import_csv(file=io.StringIO("address\na@example.org\n"), now=NOW)
        ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
        drain(settings=settings, ledger=ledger, audience=audience, release="news", render=simple_render)
    report = ledger.report(release="news")
    assert received.by_recipient() == {} and report.deferred == 1
    assert "certificate" in report.problems[0][3].lower()
