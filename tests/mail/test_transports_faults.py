"""The SMTP transport over STARTTLS and implicit TLS (SMTPS) with AUTH, against aiosmtpd on loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl

import pytest

from pressroom.errors import ConfigError
from tests._delivery import FaultyHandler, Received, SmtpServer
from tests.mail.test_transports import envelopes, send, statuses


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


def _authenticator(server, session, envelope, mechanism, auth_data):
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
                                    PRESSROOM_SMTP__USERNAME="press", PRESSROOM_SMTP__PASSWORD="s3cret")
        [results] = send(settings, envelopes("a@example.org", "b@example.org"))
    assert statuses(results) == ["sent", "sent"], results
    assert sorted(received.by_recipient()) == ["a@example.org", "b@example.org"]


def test_login_without_auth_offered_is_a_config_error(project) -> None:
    received = Received()
    with SmtpServer(FaultyHandler(received)) as server:
        settings = project.settings(**server.env(), PRESSROOM_SMTP__USERNAME="press", PRESSROOM_SMTP__PASSWORD="x")
        with pytest.raises(ConfigError, match="offers no AUTH") as error:
            send(settings, envelopes("a@example.org"))
    assert "smtp.security" in error.value.hint
    assert received.by_recipient() == {}


def test_starttls_not_offered_is_a_config_error_and_nothing_goes_out_in_clear(project) -> None:
    received = Received()
    with SmtpServer(FaultyHandler(received)) as server:
        settings = project.settings(**server.env(), PRESSROOM_SMTP__SECURITY="starttls")
        with pytest.raises(ConfigError, match="does not offer STARTTLS"):
            send(settings, envelopes("a@example.org"))
    assert received.by_recipient() == {}


def test_an_untrusted_certificate_is_not_sent_to(project, certificate) -> None:
    cert_file, key_file = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    received = Received()
    with SmtpServer(FaultyHandler(received), tls_context=context, require_starttls=True) as server:
        settings = project.settings(**server.env(), PRESSROOM_SMTP__SECURITY="starttls")
        [results] = send(settings, envelopes("a@example.org"))
        trusting = project.settings(**server.env(), PRESSROOM_SMTP__SECURITY="starttls", PRESSROOM_SMTP__VALIDATE_CERTS="false")
        [unchecked] = send(trusting, envelopes("b@example.org"))
    assert statuses(results) == ["held"] and "certificate" in results[0].response.lower()
    assert statuses(unchecked) == ["sent"], "validate_certs = false accepts the private certificate"
    assert list(received.by_recipient()) == ["b@example.org"]
