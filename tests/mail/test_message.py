"""The email contract: compose once, ``Composed.message(recipient)`` gives complete RFC 5322 bytes."""

from __future__ import annotations

import email
import email.policy
import quopri
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from pressroom.audience import AddressError
from pressroom.audience import clean_name as audience_clean_name
from pressroom.errors import PermanentError
from pressroom.mail import Composed, Recipient, compose_digest, compose_release, compose_transactional, digest_key
from pressroom.releases import load_releases

UNSUB = "https://press.example.org/unsubscribe?token=abc.DEF_123=&list=all"
PREFS = "https://press.example.org/preferences?token=abc.DEF_123="


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def body(msg: email.message.EmailMessage, kind: str) -> str:
    """The decoded text or HTML part; line ends as a mail client shows them."""
    return msg.get_body((kind,)).get_content().replace("\r\n", "\n")


def recipient(address: str = "ada@example.net", name: str = "Ada Lovelace") -> Recipient:
    return Recipient(address=address, name=name, unsubscribe_url=UNSUB, preferences_url=PREFS)


@pytest.fixture
def release_email(project) -> Composed:
    project.write_release(
        "battery-news",
        title="Recycled lithium: a first tonne from the pilot plant",
        extra="""\
        summary: The pilot line recovered its first tonne of battery-grade lithium.
        contacts:
          - {name: Jo Press, role: Spokesperson, email: jo@example.org, phone: "+32 2 123 45 67"}
        """,
        body="The plant in **Ghent** works. See [the report](/reports/lithium.pdf).\n\n- one\n- two\n",
    )
    settings = project.settings()
    (release,) = load_releases(settings).releases
    return compose_release(release=release, settings=settings)


def test_message_is_complete_rfc5322_with_every_header(release_email: Composed) -> None:
    data = release_email.message(recipient())
    assert b"\n" not in data.replace(b"\r\n", b""), "every line ends with CRLF"
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    msg = parse(data)
    assert msg["To"] == "Ada Lovelace <ada@example.net>"
    assert msg["From"] == "Test Hub <press@example.org>"
    assert msg["Subject"] == "Recycled lithium: a first tonne from the pilot plant"
    assert msg["Date"].datetime.tzinfo is not None
    assert re.fullmatch(r"<battery-news\.[0-9a-f]{20}@example\.org>", msg["Message-ID"])
    assert msg["List-Id"] == "Test Hub <releases.example.org>"
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>, <mailto:press@example.org?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in msg.iter_parts()] == ["text/plain", "text/html"]
    assert all(part["Content-Transfer-Encoding"] == "quoted-printable" for part in msg.iter_parts())
    # No header appears twice (a second To or MIME-Version would confuse clients).
    names = [name.lower() for name in msg]
    assert len(names) == len(set(names))


def test_personal_values_reach_both_parts_and_nothing_else_changes(release_email: Composed) -> None:
    ada, bob = recipient(), Recipient(address="bob@example.com", unsubscribe_url=UNSUB + "x", preferences_url=PREFS + "y")
    first, second = parse(release_email.message(ada)), parse(release_email.message(bob))
    text, html = body(first, "plain"), body(first, "html")
    assert "Hello Ada Lovelace," in text and "Hello Ada Lovelace," in html
    assert f"Unsubscribe: {UNSUB}" in text and f"Your preferences: {PREFS}" in text
    assert f'href="{UNSUB.replace("&", "&amp;")}"' in html
    assert f'href="{PREFS}"' in html
    assert "Hello," in body(second, "plain")
    assert UNSUB + "x" in body(second, "html").replace("&amp;", "&")
    # The un-personalised parts equal the message bodies once the personal values are put back.
    neutral = release_email.text.replace("Hello,", "Hello Ada Lovelace,")
    assert text.replace(UNSUB, "https://press.example.org/").replace(PREFS, "https://press.example.org/") == neutral


def test_what_a_server_reads_from_the_data_form_is_the_message(project) -> None:
    """RFC 5321 4.5.2: the server drops the first dot of a line and stops at the lone dot; what it keeps is the message."""
    project.write_release("dots", title="Dots", body=".leading dot\n\n..two dots\n\n.\n\nlast line\n")
    settings = project.settings()
    (release,) = load_releases(settings).releases
    composed = compose_release(release=release, settings=settings)
    for name in ("Ada Lovelace", ".Ada"):
        message, make_data = composed.message_and_data(recipient(name=name))
        data = make_data()
        assert message == composed.message(recipient(name=name))
        assert b"\r\n.leading dot" in message
        assert data.endswith(b"\r\n.\r\n") and b"\n.\r\n" not in data[:-3]
        assert re.sub(rb"(?m)^\.", b"", data[:-3]) == message


def test_message_id_is_deterministic_per_release_and_address(project, release_email: Composed) -> None:
    settings = project.settings()
    (release,) = load_releases(settings).releases
    again = compose_release(release=release, settings=settings)
    assert parse(again.message(recipient()))["Message-ID"] == parse(release_email.message(recipient()))["Message-ID"]
    # Address case does not make a second Message-ID; another person gets another one.
    assert parse(release_email.message(recipient("ADA@Example.NET")))["Message-ID"] == parse(
        release_email.message(recipient())
    )["Message-ID"]
    assert parse(release_email.message(recipient("bob@example.net")))["Message-ID"] != parse(
        release_email.message(recipient())
    )["Message-ID"]


def test_email_subject_override_and_non_ascii_subject(project) -> None:
    project.write_release(
        "umlaut",
        title="Füße & Ölpreise – 100 % recycelt",
        extra="email: {subject: \"Kurz: Ölpreise ✓ 💡 über alles\"}\nlanguage: de\n",
    )
    settings = project.settings()
    (release,) = load_releases(settings).releases
    data = compose_release(release=release, settings=settings).message(recipient())
    assert data.isascii(), "headers and bodies are 7-bit: RFC 2047 and quoted-printable"
    assert b"=?utf-8?" in data.split(b"\r\n\r\n")[0]
    msg = parse(data)
    assert msg["Subject"] == "Kurz: Ölpreise ✓ 💡 über alles"
    assert "Füße &amp; Ölpreise – 100 % recycelt" in body(msg, "html")
    assert '<html lang="de"' in body(msg, "html")


def test_quoted_printable_lines_stay_within_76_characters(release_email: Composed) -> None:
    long_url = "https://press.example.org/u?" + "t=" + "x" * 500
    data = release_email.message(Recipient(address="a@example.org", name="Ä" * 100, unsubscribe_url=long_url))
    encoded = data.split(b"\r\n\r\n", 1)[1]
    for line in encoded.split(b"\r\n"):
        assert len(line) <= 76, line
    assert long_url in body(parse(data), "plain")


@pytest.mark.parametrize(
    "name",
    [
        "Eve\r\nBcc: victim@example.com",
        "Eve\nSubject: pwned",
        "Eve\u2028Bcc: victim@example.com",
        'Eve "the boss" <evil@example.com>, other@example.com',
        "Évé\r\n\r\n<h1>body</h1>",
        "Eve\x00\x1b[31m",
    ],
)
def test_no_header_injection_through_names(release_email: Composed, name: str) -> None:
    msg = parse(release_email.message(recipient(name=name)))
    assert msg["Bcc"] is None and msg["Subject"] == release_email.subject
    assert len(msg["To"].addresses) == 1
    assert msg["To"].addresses[0].addr_spec == "ada@example.net"
    assert "\n" not in msg["To"].addresses[0].display_name
    assert "<h1>body</h1>" not in body(msg, "html")


@pytest.mark.parametrize(
    "address",
    ["ada@example.net\r\nBcc: victim@example.com", "ada@example.net>, x@y.z", "no-at-sign", "a b@example.net", "ada@-bad-.net", ""],
)
def test_unusable_addresses_are_refused_for_that_recipient_only(release_email: Composed, address: str) -> None:
    with pytest.raises(PermanentError, match="not valid"):
        release_email.message(recipient(address=address))
    assert parse(release_email.message(recipient()))["To"] == "Ada Lovelace <ada@example.net>"


@pytest.mark.parametrize(
    "url",
    ["https://x.org/u\r\nBcc: v@example.com", "javascript:alert(1)", "https://x.org/<a>", "https://x.org/u " , "https://x.org/" + "a" * 1000],
)
def test_unusable_unsubscribe_urls_are_refused(release_email: Composed, url: str) -> None:
    with pytest.raises(PermanentError, match="unsubscribe URL"):
        release_email.message(Recipient(address="a@example.org", unsubscribe_url=url))


def test_newsletter_without_unsubscribe_url_is_refused(release_email: Composed) -> None:
    with pytest.raises(PermanentError, match="unsubscribe"):
        release_email.message(Recipient(address="a@example.org"))


def test_idn_domain_is_converted_to_ascii(release_email: Composed) -> None:
    msg = parse(release_email.message(recipient(address="ada@bücher.example")))
    assert msg["To"].addresses[0].domain == "xn--bcher-kva.example"


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(max_size=120),
    token=st.text(alphabet=st.sampled_from("abcXYZ019-._~=%&?/+"), min_size=1, max_size=300),
)
def test_any_name_and_url_round_trip(release_email: Composed, name: str, token: str) -> None:
    url = f"https://press.example.org/u/{token}"
    data = release_email.message(Recipient(address="ada@example.net", name=name, unsubscribe_url=url, preferences_url=PREFS))
    msg = parse(data)
    assert set(msg.keys()) >= {"To", "From", "Subject", "Message-ID", "List-Unsubscribe"}
    assert msg["To"].addresses[0].addr_spec == "ada@example.net"
    try:  # the audience's one name rule; a name that reads as a link is left out
        expected = audience_clean_name(name)
    except AddressError:
        expected = ""
    assert msg["To"].addresses[0].display_name == expected
    assert msg["List-Unsubscribe"].startswith(f"<{url}>")
    text = body(msg, "plain")
    assert f"Unsubscribe: {url}\n" in text
    encoded = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in encoded.split(b"\r\n")) <= 76
    # The HTML part decodes to exactly the neutral HTML with this recipient's values in it.
    html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
    raw = quopri.decodestring(html_part.get_payload().encode()).decode("utf-8")
    assert raw.count(f'href="{url.replace("&", "&amp;")}"') == 1


def test_transactional_emails(project) -> None:
    settings = project.settings()
    confirm = compose_transactional(kind="confirm", settings=settings, action_url="https://press.example.org/confirm/tok123")
    msg = parse(confirm.message(Recipient(address="new@example.org")))
    assert msg["List-Unsubscribe"] is None and msg["List-Id"] is None
    assert "https://press.example.org/confirm/tok123" in body(msg, "plain")
    assert 'href="https://press.example.org/confirm/tok123"' in body(msg, "html")
    assert msg["Subject"] == "Confirm your subscription to Test Hub press releases"
    # Composed without a link, a confirm email takes each recipient's own and goes to no one without one.
    shared = compose_transactional(kind="confirm", settings=settings)
    with pytest.raises(PermanentError, match="no action link"):
        shared.message(Recipient(address="new@example.org"))
    with pytest.raises(PermanentError, match="action link"):
        shared.message(Recipient(address="new@example.org", action_url="javascript:alert(1)"))
    own = parse(shared.message(Recipient(address="new@example.org", action_url="https://press.example.org/confirm/t?a=1&b=2")))
    assert "https://press.example.org/confirm/t?a=1&b=2" in body(own, "plain")
    assert 'href="https://press.example.org/confirm/t?a=1&amp;b=2"' in body(own, "html")
    welcome = compose_transactional(kind="welcome", settings=settings)
    msg = parse(welcome.message(recipient()))
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>, <mailto:press@example.org?subject=unsubscribe>"
    assert PREFS in body(msg, "plain")
    gone = compose_transactional(kind="unsubscribed", settings=settings, action_url="https://press.example.org/subscribe")
    text = body(parse(gone.message(Recipient(address="old@example.org"))), "plain")
    assert "no longer receive" in text and "https://press.example.org/subscribe" in text
    assert "Unsubscribe:" not in text


def test_digest_lists_releases_newest_first(project) -> None:
    project.write_release("older", title="Older news", date="2024-07-29 10:00")
    project.write_release("newer", title="Newer news", date="2024-07-31 10:00")
    settings = project.settings()
    releases = load_releases(settings).releases
    start = datetime(2024, 7, 28, 22, 0, tzinfo=UTC)  # Monday 00:00 in Brussels
    digest = compose_digest(releases=releases, settings=settings, period_start=start, period_end=start + timedelta(days=7))
    assert digest.key == "digest-2024-W31" == digest_key(period_start=start, settings=settings)
    assert digest.subject == "This week's press releases, 29 July – 4 August 2024"
    text = body(parse(digest.message(recipient())), "plain")
    assert text.index("Newer news") < text.index("Older news")
    assert "https://press.example.org/releases/newer/" in text
    with pytest.raises(ValueError, match="at least one release"):
        compose_digest(releases=[], settings=settings, period_start=start, period_end=start + timedelta(days=7))


def test_two_confirmations_share_one_composition_with_their_own_links_and_message_ids(project, monkeypatch) -> None:
    """Through the ledger and the outbox, as the web app's sender sends them."""
    import pressroom.mail.render as render
    from pressroom.audience import Audience
    from pressroom.dispatch import enqueue_transactional, send_email, transactional_email
    from pressroom.ledger import Ledger

    mjml_runs: list[str] = []
    real_mjml = render.mjml2html
    monkeypatch.setattr(render, "mjml2html", lambda source, **kw: mjml_runs.append(source) or real_mjml(source, **kw))
    settings = project.settings()
    audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
    now = datetime(2024, 8, 1, 12, 0, tzinfo=UTC)
    typed = "Ada <b>Typed</b> Name"
    ada = audience.add(address="ada@example.net", name=typed, status="pending", now=now, source="test")
    bob = audience.add(address="bob@example.net", status="pending", now=now, source="test")
    rows = {  # key -> (subscriber, link); Ada asked twice
        "confirm-1": (ada, "https://press.example.org/confirm/first?t=1"),
        "confirm-2": (bob, "https://press.example.org/confirm/second?t=2"),
        "confirm-3": (ada, "https://press.example.org/confirm/third?t=3"),
    }
    for key, (subscriber, link) in rows.items():
        assert enqueue_transactional(settings=settings, kind="confirm", subscriber_id=subscriber.id,
                                     address=subscriber.address, action_url=link, key=key, now=now, ledger=ledger)
    channel = transactional_email(settings=settings)
    send_email(channel=channel, ledger=ledger, release=None, wait=False)

    outbox = settings.path("var") / "outbox" / "email"
    sent = {path.stem: parse(path.read_bytes()) for path in outbox.rglob("*.eml")}
    assert sorted(sent) == sorted(rows)
    assert len(mjml_runs) == 1  # one composition for the three emails
    for key, (subscriber, link) in rows.items():
        msg = sent[key]
        assert msg["To"].addresses[0].addr_spec == subscriber.address
        assert link in body(msg, "plain") and f'href="{link}"' in body(msg, "html")
        assert [other for _, other in rows.values() if other != link and other in msg.as_string()] == []
        # Nothing the requester typed reaches an address that has not confirmed it.
        assert "Typed" not in msg.as_string() and msg["To"].addresses[0].display_name == ""
    ids = {key: msg["Message-ID"] for key, msg in sent.items()}
    assert len(set(ids.values())) == 3, ids  # even Ada's two confirmations never share one
    assert all(ids[key].startswith(f"<{key}.") for key in rows)  # so a bounce finds its ledger row

    # A rerun of a row (a new process, a new composition) keeps its Message-ID.
    again = compose_transactional(kind="confirm", settings=settings)
    rerun = parse(again.message(Recipient(address=ada.address, action_url=rows["confirm-1"][1], message_key="confirm-1")))
    assert rerun["Message-ID"] == ids["confirm-1"]
    with pytest.raises(PermanentError, match="message key"):
        again.message(Recipient(address=ada.address, action_url=rows["confirm-1"][1], message_key="a b>"))


def test_a_composition_dates_each_message_when_it_is_made(project, monkeypatch) -> None:
    import pressroom.mail.message as message

    composed = compose_transactional(kind="welcome", settings=project.settings())
    later = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return later

    monkeypatch.setattr(message, "datetime", Clock)
    msg = parse(composed.message(recipient()))
    assert msg["Date"].datetime == later
