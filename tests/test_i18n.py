"""Translations and catalogues: every fixed word in the reader's language, each reader their version, once.

The "no English left" checks compare against the catalogue itself: every message whose German
differs from its English is looked for, in English, in the German email and page. Only the
messages the English rendering of the same email or page shows are looked for (that is what
"used in that template" means), so a word of the release's own text never counts.
"""

from __future__ import annotations

import email
import email.policy
import html
import io
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import lxml.html
import pytest
from babel.messages.pofile import read_po
from lxml import etree

from pressroom import i18n
from pressroom.audience import Audience
from pressroom.errors import ConfigError
from pressroom.ledger import Ledger
from pressroom.releases import load_releases
from tests.conftest import DATA, NOW, REPO, SITE_TOML, Project
from tests.golden import assert_golden
from tests.mail_support import SAMPLE_SLUG
from tests.site_support import build

LOCALE = REPO / "pressroom" / "i18n" / "locale"
# The About text per language, as a project with readers in several languages writes it.
MULTILINGUAL = SITE_TOML.replace('language = "en"', 'language = "en"\nlanguages = ["en", "de", "fr"]').replace(
    'about = "**About us.** We test things."',
    'about = {en = "**About us.** We test things.", de = "**Über uns.** Wir testen.", fr = "**À propos.** Nous testons."}',
)
# Anna follows a topic of the German pages, which are index.md's tags: the German version inherits them.
READERS = """address,name,language,topics,cadence,status
anna@example.org,Anna Schmidt,de,battery-raw-materials,per-release,confirmed
ben@example.org,Ben Jones,en,,per-release,confirmed
chloe@example.org,Chloé Martin,fr,,per-release,confirmed
"""


@pytest.fixture
def multilingual(tmp_path: Path) -> Project:
    project = Project(tmp_path, MULTILINGUAL)
    shutil.copytree(REPO / "content" / "releases" / SAMPLE_SLUG, project.releases / SAMPLE_SLUG)
    shutil.copytree(REPO / "content" / "organisations", project.root / "content" / "organisations")  # its co-issuers
    return project


def _fragments(language: str) -> set[str]:
    """The English text of every message the catalogue of ``language`` translates differently,
    cut at its placeholders and tags (the pieces a reader would see)."""
    with (LOCALE / language / "LC_MESSAGES" / "messages.po").open("rb") as stream:
        catalogue = read_po(stream)
    pieces: set[str] = set()
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for english, translated in zip(ids, strings, strict=False):
            if translated and translated != english:
                for piece in re.split(r"%\(\w+\)[sd]|<[^>]+>|\{\w+\}", english):
                    piece = piece.strip(" .,:;()")
                    if len(piece) >= 4 and re.search(r"[A-Za-z]{3}", piece):
                        pieces.add(piece)
    return pieces


def _visible(markup: str) -> str:
    """The words of an HTML document or email part: tags, styles and comments out, entities decoded."""
    markup = re.sub(r"<(style|script)\b.*?</\1>|<!--.*?-->", " ", markup, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", markup))
    return " ".join(text.split())


def _english_left(*, english: str, translated: str, language: str) -> list[str]:
    english, translated = (re.sub(r"https?://\S+", " ", text) for text in (english, translated))  # links are no words
    return sorted(
        piece for piece in _fragments(language)
        if (piece in english or piece.upper() in english) and (piece in translated or piece.upper() in translated)
    )


def _parts(raw: bytes) -> tuple[str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    markup = message.get_body(("html",)).get_content()
    return f"{message['Subject']}\n{text}", _visible(markup)


def test_a_german_subscriber_receives_the_german_version_once_in_german_words(multilingual, email_step) -> None:
    Audience.from_settings(multilingual.settings()).import_csv(file=io.StringIO(READERS), now=NOW)
    settings_file = str(multilingual.root / "pressroom.toml")
    report = email_step(settings_file=settings_file, slug=SAMPLE_SLUG, now=NOW)
    again = email_step(settings_file=settings_file, slug=SAMPLE_SLUG, now=NOW + timedelta(minutes=5))
    assert (report.sent, report.sent_now, again.sent_now) == (3, 3, 0)
    outbox = multilingual.root / "var" / "outbox" / "email" / SAMPLE_SLUG
    sent = {path.stem: path.read_bytes() for path in outbox.glob("*.eml")}
    assert sorted(sent) == ["anna@example.org", "ben@example.org", "chloe@example.org"]
    german_text, german_html = _parts(sent["anna@example.org"])
    english_text, english_html = _parts(sent["ben@example.org"])
    # Her version: the German title, text and About, her greeting, the German page's link.
    assert "Subject: Der Cluster HUB feiert den Internationalen Tag der Freundschaft" in f"Subject: {german_text}"
    assert "Guten Tag Anna Schmidt," in german_text and "PRESSEKONTAKTE" in german_text
    assert "Über uns. Wir testen." in german_text and "30. Juli 2024" in german_text
    assert f"/de/releases/{SAMPLE_SLUG}/" in german_text
    assert "Hello Ben Jones," in english_text and "30 July 2024" in english_text
    assert _english_left(english=english_text, translated=german_text, language="de") == []
    assert _english_left(english=english_html, translated=german_html, language="de") == []
    # No French version yet: the release as written, and its fixed words in the same language.
    assert "Hello Chloé Martin," in _parts(sent["chloe@example.org"])[0]
    # One ledger row per reader for the release, whatever the language.
    rows = Ledger.from_settings(multilingual.settings()).states(release=SAMPLE_SLUG, channel="email")
    assert rows == {"anna@example.org": "sent", "ben@example.org": "sent", "chloe@example.org": "sent"}


def test_each_language_has_its_pages_with_reciprocal_hreflang_across_the_whole_site(multilingual) -> None:
    build(multilingual, NOW)
    public = multilingual.root / "public"
    base = "https://press.example.org/"
    alternates: dict[str, dict[str, str]] = {}
    for page in public.rglob("*.html"):
        url = base + page.relative_to(public).as_posix().removesuffix("index.html")
        links = re.findall(r'<link rel="alternate" hreflang="([^"]+)" href="([^"]+)">', page.read_text(encoding="utf-8"))
        if links:
            alternates[url] = dict(links)
    release, german = f"{base}releases/{SAMPLE_SLUG}/", f"{base}de/releases/{SAMPLE_SLUG}/"
    assert alternates[release] == {"en": release, "de": german, "x-default": release}
    assert alternates[german] == alternates[release]
    assert {base, f"{base}de/", f"{base}fr/", f"{base}tags/", f"{base}de/tags/"} <= set(alternates)
    for url, links in alternates.items():
        assert url in links.values(), f"{url} does not list itself among its alternates"
        for language, other in links.items():
            assert other in alternates, f"{url} names {other} ({language}), which has no alternates"
            assert alternates[other] == links, f"{url} and {other} disagree about their alternates"
    sitemap = (public / "sitemap.xml").read_text(encoding="utf-8")
    assert f'<xhtml:link rel="alternate" hreflang="de" href="{german}"/>' in sitemap
    assert f"<loc>{german}</loc>" in sitemap
    # Each language its own feeds, in its language.
    assert '<language>de</language>' in (public / "de" / "feed.xml").read_text(encoding="utf-8")
    assert 'xml:lang="de"' in (public / "de" / "atom.xml").read_text(encoding="utf-8")
    assert '"language":"de"' in (public / "de" / "feed.json").read_text(encoding="utf-8")
    assert "Internationaler Tag der Freundschaft" in (public / "de" / "feed.xml").read_text(encoding="utf-8")
    assert "Internationaler Tag" not in (public / "feed.xml").read_text(encoding="utf-8")


def test_the_german_page_has_no_english_fixed_text_and_a_language_switcher(multilingual) -> None:
    build(multilingual, NOW)
    public = multilingual.root / "public"
    english_page = (public / "releases" / SAMPLE_SLUG / "index.html").read_text(encoding="utf-8")
    german_page = (public / "de" / "releases" / SAMPLE_SLUG / "index.html").read_text(encoding="utf-8")
    assert '<html lang="de">' in german_page
    assert _english_left(english=_visible(english_page), translated=_visible(german_page), language="de") == []
    assert "30. Juli 2024" in german_page and "Pressekontakte" in german_page
    assert f'<a href="../../../releases/{SAMPLE_SLUG}/" hreflang="en" lang="en">English (en)</a>' in german_page
    assert '<a href="../../../fr/" hreflang="fr" lang="fr">Français (fr)</a>' in german_page
    # The subscribe form of a German page: German words, German consent, German preselected.
    assert "Ich möchte Pressemitteilungen von Test Hub per E-Mail erhalten" in german_page
    assert '<option value="de" selected>Deutsch (de)</option>' in german_page
    french_index = (public / "fr" / "index.html").read_text(encoding="utf-8")
    assert "Aucun communiqué de presse n’a encore été publié." in french_index
    # The German press kit speaks German too: its headings come from the same catalogue.
    import zipfile

    kit = zipfile.ZipFile(public / "de" / "releases" / SAMPLE_SLUG / "press-kit.zip")
    text = kit.read(f"{SAMPLE_SLUG}/{SAMPLE_SLUG}.txt").decode()
    assert "PRESSEKONTAKTE" in text and "BETEILIGTE PROJEKTE" in text and "FINANZIERT VON DER EUROPÄISCHEN UNION" in text


def test_a_withdrawal_is_one_edit_in_index_md_and_its_notice_stays_at_every_languages_url(multilingual) -> None:
    folder = multilingual.releases / SAMPLE_SLUG
    main = folder / "index.md"
    main.write_text(main.read_text(encoding="utf-8").replace(
        "status: approved", "status: withdrawn\nwithdrawn: {date: 2024-08-01 10:00, reason: Sent in error.}", 1), encoding="utf-8")
    build(multilingual, NOW)
    public = multilingual.root / "public"
    german = (public / "de" / "releases" / SAMPLE_SLUG / "index.html").read_text(encoding="utf-8")
    assert "Sent in error." in german and 'name="robots" content="noindex' in german and '<html lang="de">' in german
    assert "Der Cluster HUB feiert" in german and "Im Jahr 2022" not in german  # its title, none of its body
    english = (public / "releases" / SAMPLE_SLUG / "index.html").read_text(encoding="utf-8")
    assert "Sent in error." in english
    # The German reason is the German version's own words: the date still comes from index.md.
    german_file = folder / "index.de.md"
    german_file.write_text(german_file.read_text(encoding="utf-8").replace(
        "\nauthor:", "\nwithdrawn: {reason: Irrtümlich versandt.}\nauthor:", 1), encoding="utf-8")
    build(multilingual, NOW)
    german = (public / "de" / "releases" / SAMPLE_SLUG / "index.html").read_text(encoding="utf-8")
    assert "Irrtümlich versandt." in german and "1. August 2024" in german


def test_a_rebuild_rewrites_nothing_and_a_changed_translation_only_its_pages(multilingual) -> None:
    build(multilingual, NOW)
    again, _ = build(multilingual, NOW)
    assert again.written == []
    german = multilingual.releases / SAMPLE_SLUG / "index.de.md"
    german.write_text(german.read_text(encoding="utf-8").replace("## Kontakt", "## Schreiben Sie uns"), encoding="utf-8")
    changed, _ = build(multilingual, NOW)
    written = {path.relative_to(multilingual.root / "public").as_posix() for path in changed.written}
    assert f"de/releases/{SAMPLE_SLUG}/index.html" in written
    assert not any(not path.startswith("de/") and path != "sitemap.xml" for path in written), written


def test_check_reports_a_translation_that_disagrees_and_a_missing_one(multilingual) -> None:
    german = multilingual.releases / SAMPLE_SLUG / "index.de.md"
    german.write_text(german.read_text(encoding="utf-8").replace("\nauthor:", "\ndate: 2024-07-31 09:00\nauthor:", 1),
                      encoding="utf-8")
    settings = multilingual.settings()
    result = load_releases(settings)
    problem = next(p for p in result.problems if p.path == german)
    assert (problem.field, problem.line) == ("date", 7)
    assert problem.message == "2024-07-31 09:00+02:00 disagrees with index.md (2024-07-30 09:00+02:00): every language " \
        "version of a release shares it"
    # The release itself still publishes, without the bad translation.
    assert [r.slug for r in result.releases] == [SAMPLE_SLUG] and not result.releases[0].translations

    german.unlink()
    strict = multilingual.settings(PRESSROOM_SITE__REQUIRE_TRANSLATIONS="true")
    result = load_releases(strict)
    assert [(p.field, p.path.name) for p in result.problems] == [("translations", "index.md")]
    assert "index.de.md, index.fr.md" in result.problems[0].hint
    assert result.releases == []


def test_a_full_copy_of_the_release_in_another_language_still_works(multilingual) -> None:
    """A German version written before versions inherited (every field copied, tags and contact roles translated)
    loads as it did; ``check`` lists what it sets apart from index.md."""
    german = multilingual.releases / SAMPLE_SLUG / "index.de.md"
    shutil.copy(DATA / "site-translated" / "full-copy.de.md", german)
    result = load_releases(multilingual.settings())
    assert result.problems == []
    assert [(w.path, w.field, w.line) for w in result.warnings] == [(german, "tags", 9), (german, "contacts", 14)]
    (release,) = result.releases
    version = release.version("de")
    assert version.tags == ("Cluster HUB", "Batterierohstoffe", "Kreislaufwirtschaft", "Zusammenarbeit")
    assert version.contacts[0].role == "EU Business Operations Manager, Initiator des Cluster HUB"
    for name in ("date", "status", "issuers", "embargo"):
        assert getattr(version, name) == getattr(release, name)
    assert version.hero.src == release.hero.src and version.hero.alt.startswith("Titelbild")
    build(multilingual, NOW)
    page = (multilingual.root / "public" / "de" / "releases" / SAMPLE_SLUG / "index.html").read_text(encoding="utf-8")
    assert "/de/tags/batterierohstoffe/" in page and "Initiator des Cluster HUB" in page


def test_a_translation_may_not_claim_another_language_than_its_file_name(multilingual) -> None:
    french = multilingual.releases / SAMPLE_SLUG / "index.fr.md"
    french.write_text("---\ntitle: Bonjour\ndate: 2024-07-30 09:00\nstatus: approved\nlanguage: de\n---\n\nTexte.\n",
                      encoding="utf-8")
    result = load_releases(multilingual.settings())
    problem = next(p for p in result.problems if p.path == french)
    assert problem.field == "language" and "'fr'" in problem.message


def test_a_project_catalogue_overrides_a_shipped_message_and_a_bad_folder_is_named(multilingual) -> None:
    folder = multilingual.root / "locale" / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text('msgid "Media contacts"\nmsgstr "Ansprechpartner für die Presse"\n', encoding="utf-8")
    settings = multilingual.settings(PRESSROOM_SITE__LOCALE_DIR="locale")
    german = i18n.translations(language="de", settings=settings)
    assert german.gettext("Media contacts") == "Ansprechpartner für die Presse"
    assert german.gettext("Press release") == "Pressemitteilung"  # the shipped catalogue still answers the rest
    # An unknown language falls back to the site language, then English.
    assert i18n.translations(language="nl", settings=settings).gettext("Press release") == "Press release"
    with pytest.raises(ConfigError, match="locale_dir"):
        i18n.translations(language="de", settings=multilingual.settings(PRESSROOM_SITE__LOCALE_DIR="nowhere"))


def test_a_translators_edit_of_a_catalogue_is_seen_by_the_next_build(multilingual) -> None:
    folder = multilingual.root / "locale" / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    catalogue = folder / "messages.po"
    catalogue.write_text('msgid "Media contacts"\nmsgstr "Ansprechpartner"\n', encoding="utf-8")
    settings = multilingual.settings(PRESSROOM_SITE__LOCALE_DIR="locale")
    assert i18n.translations(language="de", settings=settings).gettext("Media contacts") == "Ansprechpartner"
    assert list((settings.path("var") / "cache" / "catalogues").glob("de.*.mo"))  # kept compiled for the next process
    catalogue.write_text('msgid "Media contacts"\nmsgstr "Pressestelle"\n', encoding="utf-8")
    i18n._translations.cache_clear()  # the next build is a process of its own
    assert i18n.translations(language="de", settings=settings).gettext("Media contacts") == "Pressestelle"
    kept = list((settings.path("var") / "cache" / "catalogues").glob("de.*.mo"))
    assert len(kept) == 1  # the edited one only
    kept[0].write_bytes(b"damaged")  # compiled again, not an error
    i18n._translations.cache_clear()
    assert i18n.translations(language="de", settings=settings).gettext("Media contacts") == "Pressestelle"


def test_dates_and_accept_language_follow_the_language(multilingual) -> None:
    settings = multilingual.settings()
    moment = NOW.replace(month=12, day=2)
    assert i18n.format_date(moment=moment, language="de", settings=settings) == "2. Dezember 2024"
    assert i18n.format_date(moment=moment, language="fr", settings=settings) == "2 décembre 2024"
    assert i18n.format_date(moment=moment, language="en", settings=settings) == "2 December 2024"
    assert i18n.negotiate("fr-CH, de;q=0.8, en;q=0.5", ["en", "de", "fr"]) == "fr"
    assert i18n.negotiate("es, *;q=0.1", ["en", "de"]) is None


def test_every_message_has_a_german_and_a_french_translation() -> None:
    for language in ("de", "fr"):
        with (LOCALE / language / "LC_MESSAGES" / "messages.po").open("rb") as stream:
            untranslated = [m.id for m in read_po(stream) if m.id and not all(
                m.string if isinstance(m.string, tuple) else (m.string,))]
        assert untranslated == [], f"{language}: untranslated messages (run scripts/extract-messages, then translate)"


def test_web_pages_speak_the_browsers_then_the_subscribers_language(tmp_path: Path) -> None:
    from tests.web.test_web import link_in, make_web

    for web in make_web(Project(tmp_path, MULTILINGUAL)):
        english = web.client.get("/subscribe").text
        page = web.client.get("/subscribe", headers={"Accept-Language": "de-AT,de;q=0.9,en;q=0.5"})
        assert '<html lang="de">' in page.text and "Unsere Pressemitteilungen per E-Mail" in page.text
        assert _english_left(english=_visible(english), translated=_visible(page.text), language="de") == []
        # The form offers the site's languages, the page's own chosen.
        assert re.findall(r'<option value="(\w+)"( selected)?>', page.text) == [("de", " selected"), ("en", ""), ("fr", "")]
        assert '<html lang="fr">' in web.client.get("/subscribe?lang=fr").text

        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        answer = web.client.post("/subscribe", data={
            "email": "anna@example.org", "csrf_token": token, "form": "subscribe-page", "cadence": "per-release",
            "language": "de", "lang": "de",
        })
        assert answer.status_code == 200 and "Sehen Sie in Ihrem Posteingang nach" in answer.text
        assert web.subscriber("anna@example.org").language == "de"
        (confirmation,) = web.new_mail()
        assert confirmation["Subject"] == "Bestätigen Sie Ihr Abonnement der Pressemitteilungen von Test Hub"
        # The link says which language its pages speak.
        link = re.search(r"https://press\.example\.org(/confirm\?token=\S+&lang=de)\s", confirmation.get_body(("plain",)).get_content())
        page = web.client.get(link.group(1))
        assert "Mein Abonnement bestätigen" in page.text
        confirmed = web.client.post(re.search(r'<form[^>]+action="([^"]+)"', page.text).group(1).replace("&amp;", "&"))
        assert "Sie sind angemeldet" in confirmed.text and '<html lang="de">' in confirmed.text
        (welcome,) = web.new_mail()
        assert welcome["Subject"] == "Willkommen: Sie erhalten jetzt die Pressemitteilungen von Test Hub"
        assert "Ihre Wahl: jede unserer Pressemitteilungen, sobald sie erscheint, zu allen Themen, auf Deutsch (de)." in " ".join(
            welcome.get_body(("plain",)).get_content().split())
        # What she agreed to is kept as she read it, in German.
        events = web.audience.events(address="anna@example.org")
        texts = {json.loads(event.detail).get("text") for event in events if event.kind in {"requested", "confirmed"}}
        assert texts == {"Ich möchte Pressemitteilungen von Test Hub per E-Mail erhalten, zu den Themen und in dem "
                         "Rhythmus, den ich gewählt habe. Ich kann das jederzeit mit den Links in jeder E-Mail ändern "
                         "oder mich abmelden."}
        # Her preferences page, opened from an email with no Accept-Language at all: German, her language.
        preferences = web.client.get(link_in(welcome, "/preferences"))
        assert "E-Mail-Einstellungen" in preferences.text and "Einstellungen speichern" in preferences.text


def test_a_two_language_release_matches_golden_files(multilingual) -> None:
    """The inheriting German version's page (head with hreflang and og:locale, main, language switcher), its feed
    items and its email text (its posts: tests/social/test_compose.py).

    ``REGEN_GOLDEN=1`` rewrites them (tests/data/site-translated/, tests/data/mail-release-de/).
    """
    from pressroom.mail import compose_release
    from tests.mail_support import check_golden

    build(multilingual, NOW)
    german = multilingual.root / "public" / "de"
    page = lxml.html.fromstring((german / "releases" / SAMPLE_SLUG / "index.html").read_bytes())
    head = [
        etree.tostring(element, encoding="unicode", with_tail=False)
        for element in page.head
        if element.tag in {"meta", "link", "title"} and element.get("rel") != "stylesheet"
    ]
    switcher = page.find_class("language-switcher")[0]
    main = page.find(".//main")
    actual = {
        "page-head.html": "\n".join(head) + "\n",
        # The German version writes only its words: the hero, contacts, issuers, EU acknowledgement and
        # tags on its page are index.md's.
        "page-main.html": lxml.html.tostring(main, encoding="unicode") + "\n",
        "language-switcher.html": etree.tostring(switcher, encoding="unicode", with_tail=False) + "\n",
        "rss-item.xml": etree.tostring(etree.fromstring((german / "feed.xml").read_bytes()).find("channel/item"),
                                       encoding="unicode", with_tail=False) + "\n",
        "atom-entry.xml": etree.tostring(
            etree.fromstring((german / "atom.xml").read_bytes()).find("{http://www.w3.org/2005/Atom}entry"),
            encoding="unicode", with_tail=False) + "\n",
        "json-item.json": json.dumps(json.loads((german / "feed.json").read_bytes())["items"][0], ensure_ascii=False, indent=1) + "\n",
    }
    assert_golden(DATA / "site-translated", actual)
    release = next(r for r in load_releases(multilingual.settings()).releases if r.slug == SAMPLE_SLUG)
    check_golden("mail-release-de", compose_release(release=release, settings=multilingual.settings(), language="de"))


def test_the_weekly_digest_shows_each_readers_releases_in_their_language(multilingual, prefect_harness) -> None:
    from datetime import UTC, datetime

    from flows.digest import digest

    weekly = READERS.replace(",per-release,", ",weekly,")
    Audience.from_settings(multilingual.settings()).import_csv(file=io.StringIO(weekly), now=NOW)
    settings_file = str(multilingual.root / "pressroom.toml")
    report = digest(settings_file=settings_file, now=datetime(2024, 8, 5, 9, 0, tzinfo=UTC))
    assert (report.sent, report.failed) == (3, 0)
    outbox = multilingual.root / "var" / "outbox" / "email" / "digest-2024-W31"
    german, _ = _parts((outbox / "anna@example.org.eml").read_bytes())
    english, _ = _parts((outbox / "ben@example.org.eml").read_bytes())
    assert german.startswith("Die Pressemitteilungen dieser Woche, 29. Juli – 4. August 2024\n")
    assert "Internationaler Tag der Freundschaft: Der Cluster HUB feiert" in german
    assert "Guten Tag Anna Schmidt, hier ist die Pressemitteilung, die Test Hub diese Woche veröffentlicht hat." in german
    assert f"/de/releases/{SAMPLE_SLUG}/" in german
    assert english.startswith("This week's press releases, 29 July – 4 August 2024\n")
    assert _english_left(english=english, translated=german, language="de") == []


def test_preview_shows_the_email_a_german_reader_gets(multilingual) -> None:
    from pressroom.mail.preview import write_preview

    files = write_preview(settings=multilingual.settings(), slug=SAMPLE_SLUG, language="de", shots=False)
    assert files.text.parent.name == "de"
    assert files.text.read_text(encoding="utf-8").startswith("Test Hub · Pressemitteilung · 30. Juli 2024\n")


def test_an_account_with_a_language_posts_that_version_once(multilingual) -> None:
    import json

    from pressroom.settings import SocialAccount
    from pressroom.dispatch import post_releases

    settings = multilingual.settings()
    settings = settings.model_copy(update={"social": [SocialAccount(network="outbox", account="de", language="de"),
                                                       SocialAccount(network="outbox", account="main")]})
    (release,) = load_releases(settings).releases
    german = release.version("de")
    assert german.title != release.title
    ledger = Ledger.from_settings(settings)
    for _ in range(2):
        post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW)
    posts = {path.name: json.loads(path.read_text(encoding="utf-8"))
             for path in (settings.path("var") / "outbox" / "social" / SAMPLE_SLUG).glob("*.json")}
    texts = {name: " ".join(part["text"] for part in post.get("parts", [post])) for name, post in posts.items()}
    german_posts = [text for name, text in texts.items() if name.startswith("de-")]
    main_posts = [text for name, text in texts.items() if name.startswith("main-")]
    assert german_posts and all(german.url in text for text in german_posts)
    assert main_posts and all(release.url in text and german.url not in text for text in main_posts)
    assert ledger.states(release=SAMPLE_SLUG, channel="social:outbox:de") == {"de": "sent"}  # one row, sent once


def test_a_german_journalist_gets_the_embargoed_email_of_the_german_version(multilingual) -> None:
    from datetime import UTC, datetime

    from pressroom.audience import MediaList
    from pressroom.dispatch.embargo import run_embargo

    folder = multilingual.releases / "big-news"
    folder.mkdir()
    front = "date: 2026-12-02 09:00\nstatus: approved\nembargo: {notify: 48h}\n"
    (folder / "index.md").write_text(f"---\ntitle: Big news\ntags: [Energy]\n{front}---\n\nA secret result.\n", encoding="utf-8")
    (folder / "index.de.md").write_text(f"---\ntitle: Große Neuigkeiten\ntags: [Energie]\n{front}---\n\nEin geheimes Ergebnis.\n",
                                        encoding="utf-8")
    settings = multilingual.settings()
    journalists = "address,name,outlet,beats,language,country\nde@example.com,Dora,Zeitung,energie,de,DE\nen@example.com,Ed,Daily,,en,BE\n"
    MediaList.from_settings(settings).import_csv(file=io.StringIO(journalists), now=NOW)
    run_embargo(releases=load_releases(settings).releases, settings=settings, ledger=Ledger.from_settings(settings),
                now=datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    outbox = settings.path("var") / "outbox" / "email" / "embargo-big-news"
    german, _ = _parts((outbox / "de@example.com.eml").read_bytes())
    english, _ = _parts((outbox / "en@example.com.eml").read_bytes())
    assert german.startswith("SPERRFRIST BIS 2. Dezember 2026, 09:00 CET (08:00 UTC): Große Neuigkeiten\n")
    assert "Guten Tag Dora," in german and "Ein geheimes Ergebnis." in german
    assert english.startswith("EMBARGOED UNTIL 2 December 2026, 09:00 CET (08:00 UTC): Big news\n")
    assert _english_left(english=english, translated=german, language="de") == []
