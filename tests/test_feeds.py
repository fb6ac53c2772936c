"""The feeds as real clients read them: feedparser (from disk and over HTTP) and a JSON Feed check."""

from __future__ import annotations

import calendar
import json
import re
import urllib.request
from datetime import UTC, datetime, timedelta

import feedparser
from lxml import etree

from pressroom.feeds import render_feeds
from pressroom.releases import load_releases
from tests.conftest import NOW
from tests.site_support import HIDDEN, PUBLIC, active_content, assert_nothing_runs, build, serve, write_sample

BASE = "https://press.example.org"
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _published(entry: feedparser.FeedParserDict) -> datetime:
    return datetime.fromtimestamp(calendar.timegm(entry.published_parsed), UTC)


def test_feedparser_reads_rss_and_atom_with_every_item_right(project):
    write_sample(project)
    _, releases = build(project, NOW)
    expected = {release.slug: release for release in releases if release.slug in PUBLIC}
    public = project.root / "public"

    for name in ("feed.xml", "atom.xml"):
        feed = feedparser.parse((public / name).read_bytes())
        assert not feed.bozo, (name, feed.get("bozo_exception"))
        assert feed.feed.title == "Test Hub"
        assert feed.feed.language == "en"
        self_links = [link.href for link in feed.feed.links if link.rel == "self"]
        assert self_links == [f"{BASE}/{name}"]
        assert [entry.link for entry in feed.entries] == [f"{BASE}/releases/{slug}/" for slug in PUBLIC]
        for entry in feed.entries:
            release = expected[entry.link.split("/")[-2]]
            assert entry.title == release.title
            assert entry.id == release.url  # the GUID is the permanent URL
            assert _published(entry) == release.date.astimezone(UTC)
            assert entry.summary == release.summary
            assert release.body_html.split("\n")[0] in entry.content[0].value  # full content, not a teaser

    rss = feedparser.parse((public / "feed.xml").read_bytes())
    passport = rss.entries[0]
    guids = etree.fromstring((public / "feed.xml").read_bytes()).findall("channel/item/guid")
    assert [(guid.text, guid.get("isPermaLink")) for guid in guids] == [(f"{BASE}/releases/{slug}/", "true") for slug in PUBLIC]
    assert {tag.term for tag in passport.tags} == {"Battery passport", "Policy"}
    assert passport.enclosures[0].href == f"{BASE}/releases/battery-passport-pilot/hero.png"
    assert passport.enclosures[0].type == "image/png"
    assert int(passport.enclosures[0].length) == (project.releases / "battery-passport-pilot" / "hero.png").stat().st_size
    assert passport.media_content[0]["url"] == passport.enclosures[0].href
    assert "Ana Example" in passport.content[0].value  # media contacts travel with the release
    assert "We test things." in passport.content[0].value  # and so does the About boilerplate

    atom = feedparser.parse((public / "atom.xml").read_bytes())
    links = {link.rel: link.href for link in atom.entries[0].links}
    assert links == {
        "alternate": f"{BASE}/releases/battery-passport-pilot/",
        "enclosure": f"{BASE}/releases/battery-passport-pilot/hero.png",
    }
    assert atom.entries[0].content[0].type == "text/html"


def test_hidden_releases_are_in_no_feed(project):
    write_sample(project)
    build(project, NOW)
    for path in (project.root / "public").rglob("*"):
        if path.suffix in {".xml", ".json"}:
            text = path.read_text(encoding="utf-8")
            for slug, title in HIDDEN.items():
                assert slug not in text and title not in text, path


def test_a_reader_fetches_the_feeds_over_http(project):
    write_sample(project)
    build(project, NOW)
    with serve(project.root / "public") as base:
        for name in ("feed.xml", "atom.xml", "tags/policy/feed.xml"):
            feed = feedparser.parse(base + name)
            assert feed.status == 200
            assert not feed.bozo, (name, feed.get("bozo_exception"))
            assert feed.entries, name
        tag_feed = feedparser.parse(base + "tags/policy/atom.xml")
        assert [entry.id for entry in tag_feed.entries] == [
            f"{BASE}/releases/battery-passport-pilot/",
            f"{BASE}/releases/recycling-record/",
        ]
        with urllib.request.urlopen(base + "feed.json") as response:
            json_feed = json.load(response)
    assert [item["id"] for item in json_feed["items"]] == [f"{BASE}/releases/{slug}/" for slug in PUBLIC]


def test_json_feed_has_the_fields_of_version_1_1(project):
    write_sample(project)
    _, releases = build(project, NOW)
    feed = json.loads((project.root / "public" / "feed.json").read_bytes())
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "Test Hub"
    assert feed["home_page_url"] == f"{BASE}/"
    assert feed["feed_url"] == f"{BASE}/feed.json"
    assert feed["language"] == "en"
    by_slug = {release.slug: release for release in releases}
    for item in feed["items"]:
        release = by_slug[item["id"].split("/")[-2]]
        assert item["url"] == item["id"] == release.url
        assert item["title"] == release.title
        assert item["summary"] == release.summary
        assert item["content_html"].startswith(release.body_html)
        assert datetime.fromisoformat(item["date_published"]) == release.date
        assert item.get("tags", []) == list(release.tags)
    first = feed["items"][0]
    assert first["image"] == f"{BASE}/releases/battery-passport-pilot/hero.png"
    assert first["authors"] == [{"name": "Test Hub Press Office"}]
    tag_feed = json.loads((project.root / "public" / "tags" / "recycling" / "feed.json").read_bytes())
    assert tag_feed["feed_url"] == f"{BASE}/tags/recycling/feed.json"
    assert [item["id"].split("/")[-2] for item in tag_feed["items"]] == ["recycling-record", "hub-launch"]


def test_feeds_hold_at_most_feed_items_newest_releases(project):
    for day in range(1, 8):
        project.write_release(f"release-{day}", title=f"Release {day}", date=f"2024-07-0{day} 09:00")
    build(project, NOW, PRESSROOM_SITE__FEED_ITEMS="3")
    public = project.root / "public"
    for name in ("feed.xml", "atom.xml"):
        titles = [entry.title for entry in feedparser.parse((public / name).read_bytes()).entries]
        assert titles == ["Release 7", "Release 6", "Release 5"]
    assert len(json.loads((public / "feed.json").read_bytes())["items"]) == 3


def test_guid_stays_when_the_title_changes(project):
    project.write_release("steady", title="First title")
    build(project, NOW)
    before = feedparser.parse((project.root / "public" / "feed.xml").read_bytes()).entries[0]
    project.write_release("steady", title="A corrected title")
    build(project, NOW)
    after = feedparser.parse((project.root / "public" / "feed.xml").read_bytes()).entries[0]
    assert (before.title, after.title) == ("First title", "A corrected title")
    assert before.id == after.id == f"{BASE}/releases/steady/"


def test_control_characters_never_reach_the_xml(project):
    # Written to the file: the loader drops them, the feeds must still parse.
    project.write_release("bell", title="Bell\x07 and\x0b tab", body="Null\x00 byte and escape\x1b[0m here.")
    settings = project.settings()
    [release] = load_releases(settings).releases
    # And in case a Release is built some other way: the feeds clean every string themselves.
    dirty = release.model_copy(
        update={"title": "Vertical\x0btab", "summary": "Form\x0cfeed", "body_html": "<p>Back\x08space</p>", "tags": ("Ta\x01g",)}
    )
    for documents in (render_feeds(settings=settings, releases=[release]), render_feeds(settings=settings, releases=[dirty])):
        for name, data in documents.items():
            text = data.decode("utf-8")
            assert not XML_ILLEGAL.search(text), name
            if name.endswith(".xml"):
                etree.fromstring(data)  # a strict XML parser accepts it
                assert not feedparser.parse(data).bozo
            else:
                json.loads(data)
    assert "Verticaltab" in render_feeds(settings=settings, releases=[dirty])["feed.xml"].decode()


def test_script_in_title_and_body_is_neutralised_in_every_feed(project):
    project.write_release(
        "injection",
        title="<script>alert('title')</script> Launch",
        body="Hello <script>alert('body')</script><img src=x onerror=alert(1)> <a href=\"javascript:alert(2)\">x</a>",
    )
    build(project, NOW)
    public = project.root / "public"
    assert_nothing_runs(public)
    content = etree.fromstring((public / "atom.xml").read_bytes()).find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}content")
    assert "Hello" in content.text and active_content(content.text) == []
    json_item = json.loads((public / "feed.json").read_bytes())["items"][0]
    assert json_item["title"] == "<script>alert('title')</script> Launch"  # text, escaped as \\u003c in the bytes


def test_empty_site_has_valid_stable_feeds(project):
    build(project, NOW)
    first = (project.root / "public" / "atom.xml").read_bytes()
    assert not feedparser.parse(first).bozo
    build(project, NOW + timedelta(days=1))
    assert (project.root / "public" / "atom.xml").read_bytes() == first


def test_ampersands_and_quotes_in_titles_read_back_exactly(project):
    title = "R&D and Q&A: the \u201cbattery\u201d 'passport' \u2013 phase 2"
    project.write_release("ampersands", title=title, extra='summary: "Costs & benefits, explained"\n')
    build(project, NOW)
    for name in ("feed.xml", "atom.xml"):
        entry = feedparser.parse((project.root / "public" / name).read_bytes()).entries[0]
        assert (entry.title, entry.summary) == (title, "Costs & benefits, explained"), name


_MEDIA = "{http://search.yahoo.com/mrss/}"
_DC = "{http://purl.org/dc/elements/1.1/}"


def test_feeds_carry_what_validators_and_readers_look_for(project):
    write_sample(project)
    project.write_release("auf-deutsch", title="Eine Meldung", date="2024-07-25 09:00", extra="language: de\n")
    _, releases = build(project, NOW)
    public = project.root / "public"
    by_url = {release.url: release for release in releases}

    rss = etree.fromstring((public / "feed.xml").read_bytes())
    items = rss.findall("channel/item")
    # A hero is one <media:content> directly in the item: a <media:group> of one is flagged.
    assert rss.findall(f".//{_MEDIA}group") == []
    passport = next(item for item in items if item.findtext("link").endswith("/battery-passport-pilot/"))
    (media,) = passport.findall(f"{_MEDIA}content")
    assert media.get("url") == f"{BASE}/releases/battery-passport-pilot/hero.png" and media.get("medium") == "image"
    # RSS <author> must be an email address: names go in dc:creator, on every item.
    assert rss.findall(".//item/author") == []
    creators = {item.findtext("link"): item.findtext(f"{_DC}creator") for item in items}
    assert creators[f"{BASE}/releases/battery-passport-pilot/"] == "Test Hub Press Office"
    assert creators[f"{BASE}/releases/recycling-record/"] == "Test Hub"  # no author: the organisation
    parsed = feedparser.parse((public / "feed.xml").read_bytes())
    assert not parsed.bozo
    assert [entry.author for entry in parsed.entries] == [creators[entry.link] for entry in parsed.entries]

    atom = etree.fromstring((public / "atom.xml").read_bytes())
    assert atom.find("{http://www.w3.org/2005/Atom}author/{http://www.w3.org/2005/Atom}name").text == "Test Hub"
    assert atom.findall(f".//{_MEDIA}group") == []
    lang = "{http://www.w3.org/XML/1998/namespace}lang"
    for entry in atom.iterfind("{http://www.w3.org/2005/Atom}entry"):
        url = entry.findtext("{http://www.w3.org/2005/Atom}id")
        assert entry.get(lang) == by_url[url].language
        for required in ("title", "updated", "link"):
            assert entry.find(f"{{http://www.w3.org/2005/Atom}}{required}") is not None, (url, required)
    german = feedparser.parse((public / "atom.xml").read_bytes()).entries
    assert [entry.title_detail.language for entry in german if entry.link.endswith("/auf-deutsch/")] == ["de"]
