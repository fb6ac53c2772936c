"""What every output shows of a release beyond its own text: media contacts, the co-issuers' About texts,
the EU acknowledgement. The page, the emails, the feeds and the press kit take them from here.
"""

from __future__ import annotations

from pressroom import i18n
from pressroom.i18n import N_
from pressroom.organisations import EuFunding, Organisation
from pressroom.records import Contact
from pressroom.releases.model import Release
from pressroom.settings import Settings
from pressroom.text import render_about

__all__ = ["about_blocks", "eu_acknowledgement", "media_contacts"]


def about_blocks(*, release: Release, site_language: str) -> list[tuple[Organisation, str]]:
    """Each issuer's About as sanitised HTML, in the release's language (else the site's), after the
    release's own; one that says what the release's own About already says is not repeated."""
    blocks = []
    seen = {" ".join(release.about_html.split()), ""}  # compared as words: YAML and TOML fold lines differently
    for issuer in release.issuers:
        text = issuer.about_for(release.language, site_language)
        html = render_about(text, base_url=release.url) if text.strip() else ""
        if " ".join(html.split()) not in seen:
            seen.add(" ".join(html.split()))
            blocks.append((issuer, html))
    return blocks


def media_contacts(*, release: Release) -> list[Contact]:
    """The release's media contacts, then each issuer's, each person once.

    Two entries are one person when they have the same name or the same address. The first (the release's
    own before an issuer's) keeps what it says, its address included, and takes from the other only what it
    lacks: a phone number, a role, an organisation, an address."""
    merged: list[Contact] = []
    for contact in (*release.contacts, *(issuer.contact for issuer in release.issuers if issuer.contact)):
        same = next((index for index, seen in enumerate(merged) if _same_person(seen, contact)), None)
        if same is None:
            merged.append(contact)
        else:
            missing = {name: value for name, value in contact if value and not getattr(merged[same], name)}
            if missing:
                merged[same] = merged[same].model_copy(update=missing)
    return merged


def _same_person(one: Contact, other: Contact) -> bool:
    if one.email and one.email.casefold() == other.email.casefold():
        return True
    return " ".join(one.name.split()).casefold() == " ".join(other.name.split()).casefold()


_FUNDED = N_("Funded by the European Union")
# The grant agreements' other standard wording: the catalogues translate it like the first.
N_("Co-funded by the European Union")


def eu_acknowledgement(
    *, release: Release, settings: Settings | None
) -> list[tuple[str, list[tuple[Organisation, EuFunding]]]]:
    """What the EU acknowledgement of a release lists (nothing when no issuer is EU-funded): each
    funding statement in the release's language with the EU-funded issuers and grants it covers, in
    the order of ``issuers``. A project's statement in that language is used as written; otherwise
    the catalogue translates its wording (the standard ones it knows), else the standard statement.
    Without ``settings``: the shipped catalogues, and English as the site language."""
    gettext = i18n.translations(language=release.language, settings=settings).gettext
    site_language = settings.site.language if settings is not None else "en"
    groups: dict[str, list[tuple[Organisation, EuFunding]]] = {}
    for issuer in release.issuers:
        funding = issuer.eu_funding
        if funding is not None:
            statement = gettext(funding.statement_in(release.language, site_language) or _FUNDED)
            groups.setdefault(statement, []).append((issuer, funding))
    return list(groups.items())
