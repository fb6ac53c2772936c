"""Compose: a release, a digest or a transactional email rendered ONCE (MJML -> HTML, text twin).

Each ``compose_*`` gathers what its email says and renders it once (:mod:`pressroom.mail.render`);
the personal values are slot tokens at this stage; :class:`~pressroom.mail.message.Composed`
fills them per recipient.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from markupsafe import Markup, escape

from pressroom import i18n, images
from pressroom.i18n import N_
from pressroom.mail.links import counted_links, utm_html, with_utm
from pressroom.mail.message import Composed, build_composed, new_tokens
from pressroom.mail.render import both
from pressroom.mail.style import contrast_ratio, palette, style_body
from pressroom.releases.blocks import about_blocks, eu_acknowledgement, media_contacts
from pressroom.releases.model import PRESS_KIT, Release
from pressroom.settings import Settings
from pressroom.text import html_to_text

__all__ = ["compose_digest", "compose_embargo", "compose_follow_up", "compose_release", "compose_transactional",
           "compose_withdrawn", "contrast_ratio", "digest_key", "embargo_until"]

TransactionalKind = Literal["confirm", "welcome", "unsubscribed"]


def _absolute(url: str | None, settings: Settings) -> str:
    return urljoin(settings.site.base_url + "/", url) if url else ""


def _clean_line(text: str) -> str:
    return " ".join(text.split())


def _base_context(settings: Settings, *, language: str, subject: str, preheader: str, tokens: dict) -> dict[str, Any]:
    site = settings.site
    t = i18n.translations(language=language, settings=settings)
    return {
        "site": {
            "name": site.name,
            "base_url": site.base_url,
            "host": urlsplit(site.base_url).netloc,
            "logo": _absolute(site.logo, settings),
            "postal_address": site.postal_address,
        },
        "colors": palette(site.brand_color),
        "language": language,
        "subject": subject,
        "preheader": preheader,
        "sender": settings.email.sender,
        "reason": t.gettext("You receive this email because you subscribed to press releases from %(site)s at %(host)s.")
        % {"site": site.name, "host": urlsplit(site.base_url).netloc},
        "footer_links": True,
        "files": "links",  # how the downloads block shows the release's files: links, preview or none
        "proof": [],  # the links of an editors' proof (compose_release)
        "slot": {slot: token for (part, slot), token in tokens.items() if part == "html"},
        "text_slot": {slot: token for (part, slot), token in tokens.items() if part == "text"},
    }


def _greeting(settings: Settings, language: str) -> tuple[str, str]:
    t = i18n.translations(language=language, settings=settings)
    return t.gettext("Hello %(name)s,") % {"name": "{name}"}, t.gettext("Hello,")


def _release_context(
    release: Release, settings: Settings, campaign: str, colors: dict[str, str], language: str
) -> dict[str, Any]:
    def utm(url: str) -> str:
        return with_utm(url, settings=settings, campaign=campaign)

    sized = images.sized_html(release.body_html, base_url=release.url, files=release.images, width=images.EMAIL_WIDTH)
    body = style_body(utm_html(sized, settings=settings, campaign=campaign), colors)
    about = style_body(utm_html(release.about_html, settings=settings, campaign=campaign), colors)
    return {
        "slug": release.slug,
        "title": release.title,
        "summary": release.summary,
        "date": i18n.format_date(moment=release.date, language=language, settings=settings),
        "date_iso": release.date.isoformat(),
        "url": utm(release.url),
        "link": utm(release.url),  # where the hero leads: the public page (none before it exists)
        "plain_url": release.url,
        "hero": {"src": _email_hero(release), "alt": release.hero.alt} if release.hero else None,
        "body_html": body,
        "body_text": html_to_text(release.body_html),
        "about_html": about,
        "about_text": html_to_text(release.about_html),
        "contacts": [contact.model_dump() for contact in media_contacts(release=release)],
        "tags": list(release.tags),
        "downloads": [
            {"title": d.title, "url": utm(urljoin(release.url, d.name)), "kind": d.kind, "size": d.size_in(release.language)}
            for d in release.downloads
        ],
        "press_kit": utm(urljoin(release.url, PRESS_KIT)),
        **_issuers_context(release, settings, campaign, colors),
    }


def _issuers_context(release: Release, settings: Settings, campaign: str, colors: dict[str, str]) -> dict[str, Any]:
    """Co-issuers for the email: logos as absolute PNG URLs on the site (the build copies them there, and
    draws an SVG logo's PNG twin); an organisation without a logo is named in text."""
    base = settings.site.base_url
    eu = eu_acknowledgement(release=release, settings=settings)

    def logo_url(path: str | None) -> str | None:
        return f"{base}/{images.email_logo_name(path)}" if path else None

    return {
        "issuers": [
            {"name": issuer.name, "alt": issuer.alt, "website": issuer.website, "logo_url": logo_url(issuer.logo_path),
             "logo_dark_url": logo_url(issuer.logo_dark_path),
             "logo_width": images.width_at(issuer.logo, images.LOGO_HEIGHT) if issuer.logo else 0,
             "logo_height": images.LOGO_HEIGHT}
            for issuer in release.issuers
        ],
        "issuer_about": [
            {"html": style_body(utm_html(html, settings=settings, campaign=campaign), colors), "text": html_to_text(html)}
            for _, html in about_blocks(release=release, site_language=settings.site.language)
        ],
        "eu": eu and {
            "emblem_url": f"{base}/static/eu-emblem.png",
            "groups": [
                (statement, [{"project": issuer.label, "programme": g.programme, "grant": g.grant} for issuer, g in grants])
                for statement, grants in eu
            ],
        },
    }


_NO_BLOCKS: dict[str, Any] = {"contacts": [], "issuers": [], "issuer_about": [], "eu": None, "about_html": "",
                              "about_text": "", "downloads": []}  # a withdrawn release whose file is gone


def _email_hero(release: Release) -> str:
    """The hero's URL at most EMAIL_WIDTH wide: the copy the site build publishes beside the page, if one is needed."""
    assert release.hero is not None
    file = release.hero.file
    if file is not None and images.variant(file, images.EMAIL_WIDTH):
        return release.url + images.sized_name(release.local_name(file), images.EMAIL_WIDTH)
    return release.hero.src


def compose_release(
    *, release: Release, settings: Settings, proof: Mapping[str, str] | None = None, language: str = ""
) -> Composed:
    """Render the email for one release, once; personalise it with ``Composed.message(recipient)``.

    ``language`` picks the release's version in that language (else the site language's); every
    fixed word is in the language of the version.

    The subject is the release's ``email.subject`` override when set, else its title.
    ``proof`` (label -> URL, e.g. Approve and Reject) makes the editors' proof instead: "[PROOF]"
    before the subject, a band on top with those links, no subscriber footer, no list headers.
    """
    tokens = new_tokens()
    release = release.version(language)
    language = release.language
    t = i18n.translations(language=language, settings=settings)
    subject = _clean_line(release.channel("email").subject or release.title)
    if proof is not None:
        subject = t.gettext("[PROOF] %(subject)s") % {"subject": subject}
    context = _base_context(settings, language=language, subject=subject, preheader=release.summary, tokens=tokens)
    context["release"] = _release_context(release, settings, release.slug, context["colors"], language)
    context["view_url"] = context["release"]["url"]
    key = release.slug
    if proof is not None:
        context["proof"] = [{"label": label, "url": url} for label, url in proof.items()]
        context["reason"] = t.gettext("This proof went to the editors of %(site)s only.") % {"site": settings.site.name}
        context["footer_links"] = False
        key = f"proof-{release.slug}-{release.digest[:8]}"  # never the Message-ID of the real email
    html, text = both(settings, "release", context)
    if proof is None:  # an editor's clicks on a proof are not readers'
        html, text = counted_links(html, text, settings=settings, release=release.slug, channel="email", language=language)
    return build_composed(
        key=key, subject=subject, html_body=html, text_body=text, tokens=tokens, settings=settings, bulk=proof is None,
        greeting=_greeting(settings, language),
    )


def digest_key(*, period_start: datetime, settings: Settings) -> str:
    """``digest-<ISO year>-W<week>`` of ``period_start`` in the site time zone: the digest's
    Message-ID root and ledger key, without rendering anything."""
    year, week, _ = period_start.astimezone(settings.site.tz).isocalendar()
    return f"digest-{year}-W{week:02d}"


def compose_digest(
    *, releases: Sequence[Release], settings: Settings, period_start: datetime, period_end: datetime, language: str = ""
) -> Composed:
    """Render the digest of ``releases`` (shown newest first) for the period, once, in ``language``
    (default: the site's).

    The key is ``digest-<ISO year>-W<week>`` of ``period_start`` in the site time zone.
    Raises ``ValueError`` when there is nothing to send or the period is not aware.
    """
    if not releases:
        raise ValueError("a digest needs at least one release; skip the digest when the period had none")
    if period_start.tzinfo is None or period_end.tzinfo is None or period_end <= period_start:
        raise ValueError("period_start and period_end must be timezone-aware, with the end after the start")
    key = digest_key(period_start=period_start, settings=settings)
    tokens = new_tokens()
    first = period_start.astimezone(settings.site.tz)
    # The end is exclusive (next Monday 00:00), so the last day shown is the day before it when at midnight.
    last = period_end.astimezone(settings.site.tz)
    if (last.hour, last.minute, last.second, last.microsecond) == (0, 0, 0, 0):
        last = last.fromordinal(last.toordinal() - 1).replace(tzinfo=last.tzinfo)
    language = language or settings.site.language
    period = i18n.format_period(first=first, last=last, language=language, settings=settings)
    heading = i18n.digest_subject(language=language, settings=settings)
    subject = _clean_line(f"{heading}, {period}")
    ordered = sorted(releases, key=lambda r: (r.date, r.slug), reverse=True)
    titles = "; ".join(r.title for r in ordered[:3])
    context = _base_context(settings, language=language, subject=subject, preheader=titles, tokens=tokens)
    context["period"] = period
    context["heading"] = _clean_line(heading)
    context["releases"] = [_release_context(r, settings, key, context["colors"], language) for r in ordered]
    context["view_url"] = with_utm(settings.site.base_url + "/", settings=settings, campaign=key)
    html, text = both(settings, "digest", context)
    html, text = counted_links(html, text, settings=settings, release=key, channel="digest", language=language,
                               owners=[(r.url, r.slug) for r in ordered])
    return build_composed(
        key=key, subject=subject, html_body=html, text_body=text, tokens=tokens, settings=settings, bulk=True,
        greeting=_greeting(settings, language),
    )


_TRANSACTIONAL_SUBJECTS = {
    "confirm": N_("Confirm your subscription to %(site)s press releases"),
    "welcome": N_("Welcome: you now receive %(site)s press releases"),
    "unsubscribed": N_("You are unsubscribed from %(site)s press releases"),
}


def compose_transactional(
    *,
    kind: TransactionalKind,
    settings: Settings,
    action_url: str = "",
    cadence: str | None = None,
    topics: Sequence[str] = (),
    language: str = "",
    lang: str = "",
) -> Composed:
    """Render a subscription-flow email once: ``confirm``, ``welcome`` or ``unsubscribed``.

    Its button link is a personal slot: each recipient's ``Recipient.action_url`` (the signed
    confirm link; for ``unsubscribed``, where to subscribe again), else ``action_url`` here,
    else the site (a confirm email goes to no one without a link). So one composition serves
    every reader with the same choices; ``Recipient.message_key`` gives each email its own Message-ID.

    The welcome email says what the reader chose: ``cadence`` (``per-release`` or ``weekly``;
    without it the email makes no claim about it), ``topics`` (their names; none means every
    topic) and ``language`` (its label). ``lang`` is the language the email is written in
    (default: the site's).
    """
    if kind not in _TRANSACTIONAL_SUBJECTS:
        raise ValueError(f"unknown transactional email {kind!r}; use confirm, welcome or unsubscribed")
    if action_url and not re.fullmatch(r"https?://[^\s<>\"']+", action_url):
        raise ValueError(f"action_url {action_url[:80]!r} is not an absolute http(s) URL")
    now = datetime.now(UTC)
    # Unique per composition: the Message-ID root of emails that bring no message_key of their own.
    nonce = hashlib.blake2b(f"{action_url}\n{now.isoformat()}".encode(), digest_size=4).hexdigest()
    key = f"{kind}-{now:%Y%m%dT%H%M%S}-{nonce}"
    tokens = new_tokens()
    lang = lang or settings.site.language
    t = i18n.translations(language=lang, settings=settings)
    site = settings.site.name
    subject = t.gettext(_TRANSACTIONAL_SUBJECTS[kind]) % {"site": _clean_line(site)}
    context = _base_context(settings, language=lang, subject=subject, preheader="", tokens=tokens)
    context["kind"] = kind
    context["footer_links"] = kind == "welcome"
    context["chosen"] = {"cadence": cadence, "topics": [_clean_line(t) for t in topics], "language": _clean_line(language)}
    context["reason"] = {
        "confirm": t.gettext(
            "You receive this email because someone asked to subscribe this address to press releases"
            " from %(site)s. If it was not you, ignore it: nothing will be sent without your confirmation."
        ) % {"site": site},
        "welcome": context["reason"],
        "unsubscribed": t.gettext(
            "You receive this email to confirm that this address was removed from the"
            " %(site)s press list. We will not email it again unless you subscribe again."
        ) % {"site": site},
    }[kind]
    context["view_url"] = ""  # nothing to view online: these emails exist only in the inbox
    preheader = {
        "confirm": N_("One click and you will receive our press releases."),
        "welcome": N_("Your subscription is confirmed."),
        "unsubscribed": N_("You will not receive further press releases from us."),
    }[kind]
    context["preheader"] = t.gettext(preheader)
    html, text = both(settings, kind, context)
    return build_composed(
        key=key, subject=subject, html_body=html, text_body=text, tokens=tokens, settings=settings,
        bulk=kind == "welcome", action_url=action_url or ("" if kind == "confirm" else settings.site.base_url + "/"),
        greeting=_greeting(settings, lang),
    )


def embargo_until(moment: datetime, settings: Settings, language: str = "") -> str:
    """``2 December 2026, 09:00 CET (08:00 UTC)``: the instant in the site time zone, then UTC, in
    ``language`` (default: the site's)."""
    language = language or settings.site.language
    t = i18n.translations(language=language, settings=settings)
    local, utc = moment.astimezone(settings.site.tz), moment.astimezone(UTC)
    values = {"date": i18n.format_date(moment=local, language=language, settings=settings),
              "time": f"{local:%H:%M %Z}", "utc": f"{utc:%H:%M}"}
    if utc.date() == local.date():
        return t.gettext("%(date)s, %(time)s (%(utc)s UTC)") % values
    day = i18n.format_date(moment=utc, language=language, settings=settings, year=False, zone=UTC)
    return t.gettext("%(date)s, %(time)s (%(utc)s UTC on %(day)s)") % (values | {"day": day})


def _media_email(*, settings: Settings, kind: str, headline: str, subject: str, paragraph: str, release: dict[str, Any],
                 language: str, key: str, proof: Mapping[str, str] | None, until: str = "") -> Composed:
    t = i18n.translations(language=language, settings=settings)
    tokens = new_tokens()
    subject = _clean_line(subject)
    if proof is not None:
        subject = t.gettext("[PROOF] %(subject)s") % {"subject": subject}
    context = _base_context(settings, language=language, subject=subject, preheader=headline, tokens=tokens)
    context["release"] = release
    context["embargo"] = {"kind": kind, "headline": headline, "paragraphs": [paragraph],
                          "headline_html": _whole_parts(headline, until)}
    # Before the date the files are on the journalist's preview page; a withdrawn release has none to fetch.
    context["files"] = "none" if kind == "withdrawn" else "preview"
    context["view_url"] = ""  # the public page does not exist yet
    context["footer_links"] = False  # a journalist has no preferences page: the opt-out link is in the email
    context["reason"] = t.gettext(
        "You receive this email because you are on the media list of %(site)s. One click on the link above takes you off it."
    ) % {"site": settings.site.name}
    if proof is not None:
        context["proof"] = [{"label": label, "url": url} for label, url in proof.items()]
        context["reason"] = t.gettext("This proof went to the editors of %(site)s only.") % {"site": settings.site.name}
        key = f"proof-{key}"
    html, text = both(settings, "embargo", context)
    # An editor has no preview link of their own: the proof's button shows where the journalists' goes.
    return build_composed(key=key, subject=subject, html_body=html, text_body=text, tokens=tokens, settings=settings,
                          bulk=proof is None, action_url="" if proof is None else f"{settings.site.base_url}/preview/",
                          greeting=_greeting(settings, language))


def _whole_parts(headline: str, until: str) -> Markup:
    """``headline`` as HTML whose instant ``until`` breaks only between its parts (date, time), never inside one."""
    if not until or until not in headline:
        return escape(headline)
    parts = Markup(", ").join(Markup('<span style="white-space:nowrap;">%s</span>') % part for part in until.split(", "))
    before, after = headline.split(until, 1)
    return escape(before) + parts + escape(after)


def compose_embargo(*, release: Release, settings: Settings, moved: bool = False,
                    proof: Mapping[str, str] | None = None, language: str = "") -> Composed:
    """The media list's email of ``release`` before its date, rendered once: embargoed until
    its date, or (``moved``) the embargo moved to its new date. Each journalist's preview link
    is the action slot (``Recipient.action_url``), their opt-out the unsubscribe slot
    (one-click, RFC 8058). ``proof`` (label -> URL) makes the editors' proof of it.
    ``language`` picks the release's version in it (else the site language's) and its words.
    """
    release = release.version(language)
    language = release.language
    t = i18n.translations(language=language, settings=settings)
    until = embargo_until(release.date, settings, language)
    if moved:
        headline = t.gettext("EMBARGO MOVED TO %(until)s") % {"until": until}
        paragraph = t.gettext(
            "The embargo of this release now ends at %(until)s. Please do not publish anything of it before then."
        ) % {"until": until}
    else:
        headline = t.gettext("EMBARGOED UNTIL %(until)s") % {"until": until}
        paragraph = t.gettext(
            "This release is under embargo: please do not publish or share anything of it before %(until)s."
            " Your personal preview link below, with the photos, is for you alone."
        ) % {"until": until}
    key = f"{'moved' if moved else 'embargo'}-{release.slug}-{int(release.date.timestamp())}"
    if proof is not None:
        key += f"-{release.digest[:8]}"
    colors = palette(settings.site.brand_color)
    context = _release_context(release, settings, f"embargo-{release.slug}", colors, language)
    context["link"] = ""  # the public page does not exist yet; the photos are on the preview page
    return _media_email(
        settings=settings, kind="moved" if moved else "embargo", headline=headline, subject=f"{headline}: {release.title}",
        paragraph=paragraph, release=context, language=language, key=key, proof=proof, until=until,
    )


def compose_withdrawn(*, slug: str, title: str, settings: Settings, language: str = "", release: Release | None = None) -> Composed:
    """"Withdrawn: please do not publish", to the journalists who had the embargoed release, in ``language``
    (default: the site's). Its file may be gone: only its slug and title are needed; with ``release`` (its
    file still there) the email carries its contacts, co-issuers and EU acknowledgement too."""
    if release is not None:
        release = release.version(language)
    language = release.language if release is not None else language or settings.site.language
    t = i18n.translations(language=language, settings=settings)
    blocks = _release_context(release, settings, f"embargo-{slug}", palette(settings.site.brand_color), language) \
        if release is not None else _NO_BLOCKS
    return _media_email(
        settings=settings, kind="withdrawn", headline=t.gettext("WITHDRAWN: PLEASE DO NOT PUBLISH"),
        subject=t.gettext("WITHDRAWN: please do not publish: %(title)s") % {"title": title},
        paragraph=t.gettext(
            "We have withdrawn this release. Please do not publish anything of it, and delete what we sent you."
        ),
        release=blocks | {"title": title, "slug": slug}, language=language, key=f"withdrawn-{slug}", proof=None,
    )


def compose_follow_up(*, release: Release, settings: Settings, kind: Literal["correction", "withdrawal"], note: str,
                      date: datetime, number: int = 0, language: str = "") -> Composed:
    """A short email after publication to the readers of ``release``: one correction note, or its withdrawal,
    in ``language`` (the release's version in it, else the site language's).

    Its Message-ID root is its own (``<slug>-correction-<number>``, ``<slug>-withdrawal``), the same on every rerun.
    """
    tokens = new_tokens()
    release = release.version(language)
    language = release.language
    t = i18n.translations(language=language, settings=settings)
    title = _clean_line(release.title)
    subject = (t.gettext("Correction: %(title)s") if kind == "correction" else t.gettext("Withdrawn: %(title)s")) % {"title": title}
    context = _base_context(settings, language=language, subject=subject, preheader=_clean_line(note), tokens=tokens)
    context["notice"] = {"title": title, "note": _clean_line(note),
                         "date": i18n.format_date(moment=date, language=language, settings=settings), "url": release.url,
                         "published": i18n.format_date(moment=release.date, language=language, settings=settings)}
    context["view_url"] = release.url if kind == "correction" else ""
    context["release"] = _release_context(release, settings, f"{release.slug}-{kind}", context["colors"], language)
    html, text = both(settings, kind, context)
    html, text = counted_links(html, text, settings=settings, release=release.slug, channel=kind, language=language)
    key = f"{release.slug}-correction-{number}" if kind == "correction" else f"{release.slug}-withdrawal"
    return build_composed(key=key, subject=subject, html_body=html, text_body=text, tokens=tokens, settings=settings, bulk=True,
                          greeting=_greeting(settings, language))
