"""The archive site in public/: what a reader, a crawler, a social network and a static host see."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree

import lxml.html
import pytest

from pressroom.site import render, sync
from pressroom.errors import ConfigError, TemplateError
from pressroom.releases import load_releases
from pressroom.settings import load_settings
from pressroom.site import build_site
from tests.conftest import NOW, REPO
from tests.site_support import HIDDEN, PUBLIC, assert_nothing_runs, build, png, write_sample

BASE = "https://press.example.org"


def _page(project, path: str) -> lxml.html.HtmlElement:
    return lxml.html.fromstring((project.root / "public" / path).read_bytes())


def _meta(page: lxml.html.HtmlElement) -> dict[str, str]:
    return {
        (element.get("property") or element.get("name")): element.get("content")
        for element in page.iter("meta")
        if element.get("property") or element.get("name")
    }


def _mtimes(folder: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def test_release_page_has_its_permanent_url_card_tags_and_assets(project):
    write_sample(project)
    report, _ = build(project, NOW)
    page = _page(project, "releases/battery-passport-pilot/index.html")
    meta = _meta(page)
    url = f"{BASE}/releases/battery-passport-pilot/"
    hero = f"{url}hero.png"
    assert page.get("lang") == "en"
    assert page.findtext(".//h1") == "Battery passport pilot starts in three member states"
    assert page.xpath("//link[@rel='canonical']/@href") == [url]
    assert meta["og:type"] == "article"
    assert meta["og:title"] == "Battery passport pilot starts in three member states"
    assert meta["og:description"] == "Three member states test the digital battery passport."
    assert meta["og:url"] == url
    assert meta["og:image"] == hero
    assert meta["og:image:alt"] == "A battery cell with a QR code on a lab bench"
    assert (meta["og:image:width"], meta["og:image:height"]) == ("1200", "630")  # read from the PNG
    assert meta["article:published_time"] == "2024-07-31T10:00:00+02:00"
    assert meta["twitter:card"] == "summary_large_image"
    assert meta["twitter:image"] == hero
    feeds = {link.get("type"): link.get("href") for link in page.xpath("//link[@rel='alternate']")}
    assert feeds == {
        "application/rss+xml": "../../feed.xml",
        "application/atom+xml": "../../atom.xml",
        "application/feed+json": "../../feed.json",
    }
    # The hero sits beside the page, byte for byte, and the page shows it with its alt text.
    copied = project.root / "public" / "releases" / "battery-passport-pilot" / "hero.png"
    assert copied.read_bytes() == (project.releases / "battery-passport-pilot" / "hero.png").read_bytes()
    [image] = page.xpath("//figure[@class='hero']/img")
    assert (image.get("src"), image.get("alt")) == ("hero.png", "A battery cell with a QR code on a lab bench")
    contacts = page.xpath("string(//section[contains(@class, 'contacts')])")
    assert "Ana Example" in contacts and "Press officer" in contacts
    assert page.xpath("//a[@href='mailto:ana@example.org']") and page.xpath("//a[@href='tel:+3225550123']")
    assert "We test things." in page.xpath("string(//section[@class='about'])")
    assert [a.get("href") for a in page.xpath("//ul[@class='tags']//a")] == ["../../tags/battery-passport/", "../../tags/policy/"]
    # A link to another release in the body works on any host: it is relative.
    assert page.xpath("//div[@class='body']//a/@href") == ["../../releases/recycling-record/"]
    assert report.releases == tuple(PUBLIC)


def test_a_canonical_url_in_front_matter_wins(project):
    project.write_release("syndicated", extra="canonical_url: https://partner.example.com/news/1\n")
    build(project, NOW)
    page = _page(project, "releases/syndicated/index.html")
    assert page.xpath("//link[@rel='canonical']/@href") == ["https://partner.example.com/news/1"]
    assert _meta(page)["og:url"] == "https://partner.example.com/news/1"


def test_release_language_sets_the_page_lang(project):
    project.write_release("auf-deutsch", title="Auf Deutsch", extra="language: de\n")
    build(project, NOW)
    assert _page(project, "releases/auf-deutsch/index.html").get("lang") == "de"
    assert _page(project, "index.html").get("lang") == "en"


def test_index_is_newest_first_and_numbered_from_the_oldest_page(project):
    for day in range(1, 8):
        project.write_release(f"day-{day}", title=f"Day {day}", date=f"2024-07-0{day} 09:00")
    report, _ = build(project, NOW, PRESSROOM_SITE__PAGE_SIZE="2")
    titles = {
        path: [a.text for a in _page(project, path).xpath("//h2[@class='card-title']/a")]
        for path in ("index.html", "page/2/index.html", "page/1/index.html")
    }
    # Full pages count from the oldest; the front page holds the rest, never less than a page's worth.
    assert titles == {
        "index.html": ["Day 7", "Day 6", "Day 5"],
        "page/2/index.html": ["Day 4", "Day 3"],
        "page/1/index.html": ["Day 2", "Day 1"],
    }
    assert not (project.root / "public" / "page" / "3").exists()
    front, second, first = (_page(project, path) for path in ("index.html", "page/2/index.html", "page/1/index.html"))
    assert front.xpath("//nav[@class='pagination']/a/@href") == ["page/2/"]
    assert second.xpath("//nav[@class='pagination']/a/@href") == ["../../", "../../page/1/"]
    assert first.xpath("//nav[@class='pagination']/a/@href") == ["../../page/2/"]
    assert second.xpath("//link[@rel='canonical']/@href") == [f"{BASE}/page/2/"]
    assert second.findtext(".//title") == "Page 2 · Test Hub press releases"
    # Only the front page counts pages; a numbered one names the dates it covers, which never change.
    assert front.xpath("string(//span[@class='page-count'])") == "Newest of 3 pages"
    assert second.xpath("string(//span[@class='page-count'])") == "3 July 2024 – 4 July 2024"
    assert report.pages == 7 + 3 + 2  # releases, index pages, tags index and 404


def test_tag_pages_list_their_releases_and_link_their_feeds(project):
    write_sample(project)
    build(project, NOW)
    page = _page(project, "tags/recycling/index.html")
    assert page.findtext(".//h1") == "Recycling"  # the newest release's spelling of the tag
    assert [a.text for a in page.xpath("//h2[@class='card-title']/a")] == [
        "Recycling plant sets a lithium recovery record",
        "The Test Hub is launched",
    ]
    feeds = page.xpath("//link[@rel='alternate']/@href")
    assert {"../../feed.xml", "../../tags/recycling/feed.xml", "../../tags/recycling/atom.xml", "../../tags/recycling/feed.json"} <= set(feeds)
    topics = _page(project, "tags/index.html").xpath("//ul[@class='topic-list']//a/@href")
    assert topics == ["../tags/battery-passport/", "../tags/policy/", "../tags/recycling/"]


def test_sitemap_and_robots(project):
    write_sample(project)
    build(project, NOW)
    public = project.root / "public"
    namespace = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    tree = ElementTree.fromstring((public / "sitemap.xml").read_bytes())
    locations = [element.text for element in tree.findall("s:url/s:loc", namespace)]
    assert set(locations) == {
        f"{BASE}/",
        f"{BASE}/tags/",
        *(f"{BASE}/releases/{slug}/" for slug in PUBLIC),
        *(f"{BASE}/tags/{tag}/" for tag in ("battery-passport", "policy", "recycling")),
    }
    assert (public / "robots.txt").read_text() == f"User-agent: *\nAllow: /\n\nSitemap: {BASE}/sitemap.xml\n"


def test_the_sitemap_follows_a_correction_and_a_new_release_and_nothing_else(project):
    """Crawlers read lastmod: a correction moves its release's date there, a new release adds its URL, and a
    rebuild that changes nothing leaves the file as it was."""
    project.write_release("first", date="2024-07-01 09:00", extra="tags: [Recycling]\n")
    build(project, NOW)
    sitemap = project.root / "public" / "sitemap.xml"
    before = (sitemap.read_bytes(), sitemap.stat().st_mtime_ns)
    report, _ = build(project, NOW)
    assert report.written == [] and (sitemap.read_bytes(), sitemap.stat().st_mtime_ns) == before
    project.write_release("first", date="2024-07-01 09:00", extra=(
        "tags: [Recycling]\ncorrections:\n  - {date: 2024-07-02 10:00, note: The plant is in Ghent.}\n"))
    build(project, NOW)
    namespace = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    rows = {row.findtext("s:loc", namespaces=namespace): row.findtext("s:lastmod", namespaces=namespace)
            for row in ElementTree.fromstring(sitemap.read_bytes()).findall("s:url", namespace)}
    assert rows[f"{BASE}/releases/first/"].startswith("2024-07-02T10:00")
    assert rows[f"{BASE}/tags/recycling/"].startswith("2024-07-02T10:00")
    project.write_release("second", date="2024-07-03 09:00")
    build(project, NOW)
    assert f"{BASE}/releases/second/".encode() in sitemap.read_bytes()


def test_draft_embargoed_and_expired_releases_leave_no_trace(project):
    write_sample(project)
    build(project, NOW)
    public = project.root / "public"
    paths = list(public.rglob("*"))
    for path in paths:
        relative = path.relative_to(public).as_posix()
        assert "hidden-topic" not in relative
        for slug, title in HIDDEN.items():
            assert slug not in relative
            if path.is_file():
                data = path.read_bytes()
                assert slug.encode() not in data and title.encode() not in data, relative
                assert b"Hidden topic" not in data, relative


def test_an_embargoed_release_appears_once_its_time_comes(project):
    write_sample(project)
    build(project, NOW)
    report, _ = build(project, NOW + timedelta(days=40))
    page = project.root / "public" / "releases" / "embargoed-yak" / "index.html"
    assert page in report.written
    assert "embargoed-yak" in (project.root / "public" / "feed.xml").read_text()


def test_a_second_build_rewrites_nothing(project):
    write_sample(project)
    first, _ = build(project, NOW)
    public = project.root / "public"
    before = _mtimes(public)
    assert len(first.written) == len(before)
    second, _ = build(project, NOW)
    assert (second.written, second.removed, second.unchanged) == ([], [], len(before))
    assert _mtimes(public) == before


def test_worker_processes_build_the_same_site_as_one_process(project, monkeypatch):
    write_sample(project)
    for number in range(12):
        project.write_release(f"more-{number}", title=f"More {number}", date=f"2024-06-{number + 10} 09:00",
                              extra=f"tags: [recycling, topic {number % 3}]\n")
    public = project.root / "public"
    monkeypatch.setattr(sync, "_PARALLEL_FROM", 10**9)
    alone, _ = build(project, NOW)
    files = {path: path.read_bytes() for path in public.rglob("*") if path.is_file()}
    shutil.rmtree(public)
    shutil.rmtree(project.root / "var" / "cache")
    # A few jobs a chunk, two workers, and this test process taken for one with no other thread.
    monkeypatch.setattr(sync, "_PARALLEL_FROM", 2)
    monkeypatch.setattr(sync, "_RENDERERS", 2)
    monkeypatch.setattr(sync.threading, "active_count", lambda: 1)
    monkeypatch.setattr(sync, "_SMALLEST_CHUNK", 1)
    shared, _ = build(project, NOW)
    assert {path: path.read_bytes() for path in public.rglob("*") if path.is_file()} == files
    assert sorted(shared.written) == sorted(alone.written)
    # The workers' manifest is exact: the next build renders nothing (a press kit would be made again).
    monkeypatch.setattr(render, "press_kit", lambda **_: pytest.fail("a fresh release page was rendered again"))
    again, _ = build(project, NOW)
    assert (again.written, again.removed, again.unchanged) == ([], [], len(files))


def test_adding_a_release_rewrites_only_the_pages_it_changes(project):
    write_sample(project)
    build(project, NOW)
    public = project.root / "public"
    before = _mtimes(public)
    project.write_release("newest", title="The newest release", date="2024-08-01 09:00", extra="tags: [Policy]\n")
    report, _ = build(project, NOW)
    written = {path.relative_to(public).as_posix() for path in report.written}
    assert {"releases/newest/index.html", "index.html", "feed.xml", "tags/policy/index.html"} <= written
    assert "releases/battery-passport-pilot/index.html" in written  # it gained a "next release" link
    untouched = ["releases/hub-launch/index.html", "releases/battery-passport-pilot/hero.png", "tags/recycling/feed.xml"]
    for relative in untouched:
        assert relative not in written
        assert (public / relative).stat().st_mtime_ns == before[public / relative]


def _archive(project, count: int) -> None:
    """``count`` releases three hours apart, all about Policy and every other one about Recycling."""
    for number in range(count):
        hour = 3 * number
        tags = "[Policy, Recycling]" if number % 2 == 0 else "[Policy]"
        project.write_release(
            f"item-{number:03d}",
            title=f"Item {number}",
            date=f"2024-03-{1 + hour // 24:02d} {hour % 24:02d}:00",
            extra=f"tags: {tags}\n",
        )


def _contents(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        path.relative_to(folder).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


FEEDS = ("feed.xml", "atom.xml", "feed.json")


def test_a_new_release_rewrites_its_page_the_front_pages_feeds_and_sitemap_only(project):
    _archive(project, 60)
    build(project, NOW, PRESSROOM_SITE__PAGE_SIZE="10")
    public = project.root / "public"
    before = _contents(public)
    project.write_release("item-new", title="Newest item", date="2024-04-01 09:00", extra="tags: [Recycling]\n")
    report, _ = build(project, NOW, PRESSROOM_SITE__PAGE_SIZE="10")
    written = {path.relative_to(public).as_posix() for path in report.written}
    assert written == {
        "releases/item-new/index.html",
        "releases/item-new/press-kit.zip",
        "releases/item-059/index.html",  # the previous newest gains its "next release" link
        "index.html",
        "tags/recycling/index.html",
        "tags/index.html",  # counts per topic
        "sitemap.xml",
        *FEEDS,
        *(f"tags/recycling/{name}" for name in FEEDS),
    }
    assert report.removed == []
    after = _contents(public)
    numbered = [path for path in before if "/page/" in f"/{path}"]
    assert len(numbered) == 5 + 5 + 2  # index 60 -> 5 numbered pages, Policy 60 -> 5, Recycling 30 -> 2
    for path in numbered:
        assert after[path] == before[path], path  # same bytes, same mtime
    front = _page(project, "index.html")
    assert [a.text for a in front.xpath("//h2[@class='card-title']/a")][:2] == ["Newest item", "Item 59"]
    assert len(front.xpath("//article")) == 11


def test_a_retitled_release_shows_on_its_own_and_both_neighbours_pages_wherever_it_is_in_the_archive(project):
    _archive(project, 20)
    build(project, NOW)
    for number in range(20):
        title = f"Item {number}, retitled"
        hour = 3 * number
        project.write_release(f"item-{number:03d}", title=title, date=f"2024-03-{1 + hour // 24:02d} {hour % 24:02d}:00",
                              extra="tags: [Policy]\n")
        build(project, NOW)
        for neighbour in (number - 1, number, number + 1):
            if 0 <= neighbour < 20:
                page = (project.root / "public" / "releases" / f"item-{neighbour:03d}" / "index.html").read_text()
                assert title in page, (number, neighbour)


def test_removing_the_oldest_release_renders_only_the_pages_near_it_again(project, monkeypatch):
    _archive(project, 60)
    build(project, NOW)
    rendered: list[str] = []
    original = render.Renderer.release_page

    def counting(self, release, **links):
        rendered.append(release.slug)
        return original(self, release, **links)

    monkeypatch.setattr(render.Renderer, "release_page", counting)
    (project.releases / "item-000.md").unlink()
    report, _ = build(project, NOW)
    public = project.root / "public"
    assert not (public / "releases" / "item-000").exists()
    assert public / "releases" / "item-001" / "index.html" in report.written  # no older release to link to
    assert "item-001" in rendered and len(rendered) < 30, rendered  # not the 59 pages newer than it


def test_a_numbered_page_appears_every_page_size_releases_and_only_its_neighbour_changes(project):
    _archive(project, 69)
    build(project, NOW, PRESSROOM_SITE__PAGE_SIZE="10")
    public = project.root / "public"
    before = _contents(public)
    project.write_release("item-new", title="Newest item", date="2024-04-01 09:00")
    report, _ = build(project, NOW, PRESSROOM_SITE__PAGE_SIZE="10")
    written = {path.relative_to(public).as_posix() for path in report.written}
    # 70 releases: the front page keeps the newest 10, items 50-59 become page 6 and page 5's
    # "newer" link now leads there instead of to the front page.
    assert {"page/6/index.html", "page/5/index.html", "index.html"} <= written
    assert not any(path.startswith(("page/1/", "page/2/", "page/3/", "page/4/")) for path in written)
    assert [a.text for a in _page(project, "page/6/index.html").xpath("//h2[@class='card-title']/a")] == [
        f"Item {number}" for number in range(59, 49, -1)
    ]
    assert _page(project, "page/5/index.html").xpath("//nav[@class='pagination']/a/@href") == [
        "../../page/6/",
        "../../page/4/",
    ]
    assert _page(project, "page/6/index.html").xpath("//nav[@class='pagination']/a/@href") == ["../../", "../../page/5/"]
    for path in ("page/1/index.html", "page/4/index.html"):
        assert _contents(public)[path] == before[path]


def test_files_the_build_no_longer_makes_are_removed(project):
    write_sample(project)
    build(project, NOW)
    public = project.root / "public"
    (public / "stray.html").write_text("left over")
    (project.releases / "battery-passport-pilot" / "index.md").unlink()
    report, _ = build(project, NOW)
    removed = {path.relative_to(public).as_posix() for path in report.removed}
    assert {
        "stray.html",
        "releases/battery-passport-pilot/index.html",
        "releases/battery-passport-pilot/hero.png",
        "tags/battery-passport/index.html",
        "tags/battery-passport/feed.xml",
    } <= removed
    assert not (public / "releases" / "battery-passport-pilot").exists()  # empty folders go too
    assert not (public / "tags" / "battery-passport").exists()


def test_a_file_put_deep_in_public_by_hand_goes_on_the_next_build_even_when_nothing_else_changed(project):
    write_sample(project)
    build(project, NOW)
    public = project.root / "public"
    (public / "releases" / "battery-passport-pilot" / "notes.txt").write_text("left by hand")
    (public / "tags" / "battery-passport" / "old" / "feed.xml").parent.mkdir()
    (public / "tags" / "battery-passport" / "old" / "feed.xml").write_text("left by hand")
    report, _ = build(project, NOW)
    assert {path.relative_to(public).as_posix() for path in report.removed} == {
        "releases/battery-passport-pilot/notes.txt", "tags/battery-passport/old/feed.xml",
    }
    assert not (public / "tags" / "battery-passport" / "old").exists()
    assert report.written == []


def test_files_and_folders_that_swapped_places_are_put_right(project):
    project.write_release("one")
    build(project, NOW)
    public = project.root / "public"
    shutil.rmtree(public / "releases" / "one")
    (public / "releases" / "one").write_text("a file where the page's folder belongs")
    (public / "feed.xml").unlink()
    (public / "feed.xml" / "inner").mkdir(parents=True)
    (public / "feed.xml" / "inner" / "stray.txt").write_text("a folder where the feed belongs")
    (public / "stray" / "empty").mkdir(parents=True)
    build(project, NOW)
    assert (public / "releases" / "one" / "index.html").is_file()
    assert (public / "feed.xml").read_bytes().startswith(b"<?xml")
    assert not (public / "stray").exists()  # empty folders go, however deep
    assert not list(public.rglob(".tmp-*"))


def test_script_injection_is_neutralised_in_every_output(project):
    project.write_release(
        "injection",
        title="<script>alert('title')</script> Launch",
        body="Hello <script>alert('body')</script><img src=x onerror=alert(1)> [x](javascript:alert(2))",
        extra="tags: [\"<script>tag</script>\"]\nsummary: \"<script>summary</script>\"\n",
    )
    build(project, NOW)
    assert_nothing_runs(project.root / "public")
    page = _page(project, "releases/injection/index.html")
    assert page.findtext(".//h1") == "<script>alert('title')</script> Launch"  # shown as text
    assert not page.xpath("//script")


def test_subscribe_form_is_on_every_archive_page(project):
    write_sample(project)
    build(project, NOW)
    for path in ("index.html", "releases/hub-launch/index.html", "tags/policy/index.html"):
        page = _page(project, path)
        [form] = page.xpath("//form")
        assert (form.get("method"), form.get("action")) == ("post", "/subscribe")
        fields = {element.get("name"): element for element in form.xpath(".//input")}
        assert fields["email"].get("type") == "email" and fields["email"].get("required") is not None
        assert "name" in fields
        assert fields["website"].get("tabindex") == "-1"  # honeypot
        topics = form.xpath(".//input[@name='topics']/@value")
        assert topics == ["battery-passport", "policy", "recycling"]
        assert form.xpath(".//input[@name='cadence']/@value") == ["per-release", "weekly"]
        for element in form.xpath(".//input[@id]"):  # every visible field has a label
            assert form.xpath(f".//label[@for='{element.get('id')}']"), element.get("name")


def test_the_repository_sample_builds(tmp_path):
    environ = {"PRESSROOM_PATHS__PUBLIC": str(tmp_path / "public")}
    settings = load_settings(REPO / "pressroom.toml", environ=environ)
    result = load_releases(settings)
    assert not result.problems
    report = build_site(settings=settings, releases=result.releases, now=NOW)
    [slug] = report.releases
    page = lxml.html.fromstring((tmp_path / "public" / "releases" / slug / "index.html").read_bytes())
    assert "Friendship" in page.findtext(".//h1")
    assert _meta(page)["og:image"] == f"https://www.materialsforbatterieshub.eu/releases/{slug}/hero.png"
    assert (tmp_path / "public" / "releases" / slug / "hero.png").is_file()


def test_public_must_not_hold_the_sources(project):
    settings = project.settings(PRESSROOM_PATHS__PUBLIC=str(project.root))
    with pytest.raises(ConfigError, match="paths.public"):
        build_site(settings=settings, releases=[], now=NOW)
    assert (project.root / "pressroom.toml").exists()


def test_now_must_be_aware(project):
    with pytest.raises(ValueError, match="timezone-aware"):
        build_site(settings=project.settings(), releases=[], now=NOW.replace(tzinfo=None))


def test_written_files_are_world_readable(project):
    project.write_release("readable")
    build(project, NOW)
    page = project.root / "public" / "releases" / "readable" / "index.html"
    assert os.stat(page).st_mode & 0o444 == 0o444


def test_a_hand_edited_or_deleted_output_is_restored(project):
    write_sample(project)
    build(project, NOW)
    public = project.root / "public"
    page = public / "releases" / "hub-launch" / "index.html"
    original = page.read_bytes()
    page.write_bytes(original.replace(b"Hello, world.", b"Hacked, world."))
    (public / "atom.xml").unlink()
    report, _ = build(project, NOW)
    assert page.read_bytes() == original
    assert {page, public / "atom.xml"} == set(report.written)


def test_without_the_build_cache_nothing_is_rewritten_either(project):
    write_sample(project)
    build(project, NOW)
    public = project.root / "public"
    before = _mtimes(public)
    shutil.rmtree(project.root / "var" / "cache")
    report, _ = build(project, NOW)
    assert report.written == [] and _mtimes(public) == before


def test_a_settings_change_reaches_every_page(project):
    write_sample(project)
    build(project, NOW)
    toml = project.root / "pressroom.toml"
    toml.write_text(toml.read_text().replace('name = "Test Hub"', 'name = "Renamed Hub"'))
    report, _ = build(project, NOW)
    pages = list((project.root / "public").rglob("*.html"))
    assert set(pages) <= set(report.written)
    assert all(b'<span class="brand-name">Renamed Hub</span>' in path.read_bytes() for path in pages)


def test_a_new_hero_image_updates_the_copy_and_the_enclosure(project):
    write_sample(project)
    build(project, NOW)
    hero = project.releases / "battery-passport-pilot" / "hero.png"
    hero.write_bytes(png(600, 315, (200, 30, 30)))
    report, _ = build(project, NOW)
    public = project.root / "public"
    assert (public / "releases" / "battery-passport-pilot" / "hero.png").read_bytes() == hero.read_bytes()
    assert f'length="{hero.stat().st_size}"'.encode() in (public / "feed.xml").read_bytes()
    assert public / "releases" / "battery-passport-pilot" / "index.html" in report.written
    meta = _meta(_page(project, "releases/battery-passport-pilot/index.html"))
    assert (meta["og:image:width"], meta["og:image:height"]) == ("600", "315")
    assert public / "releases" / "recycling-record" / "index.html" not in report.written


def test_a_hero_that_grows_or_shrinks_gains_or_loses_its_sized_copies(project):
    write_sample(project)
    hero = project.releases / "battery-passport-pilot" / "hero.png"
    folder = project.root / "public" / "releases" / "battery-passport-pilot"
    sized = {"hero-1200w.png", "hero-600w.png"}
    for width, copies in ((300, set()), (1600, sized), (800, {"hero-600w.png"}), (300, set())):
        hero.write_bytes(png(width, 200))
        build(project, NOW)
        assert {path.name for path in folder.glob("hero-*w.png")} == copies, width


def test_renaming_a_release_file_moves_its_page(project):
    project.write_release("old-name")
    build(project, NOW)
    (project.releases / "old-name.md").rename(project.releases / "new-name.md")
    report, _ = build(project, NOW)
    public = project.root / "public"
    assert (public / "releases" / "new-name" / "index.html").is_file()
    assert public / "releases" / "old-name" / "index.html" in report.removed
    assert b"old-name" not in b"".join(path.read_bytes() for path in public.rglob("*") if path.is_file())


def test_body_images_are_published_beside_the_page(project):
    folder = project.releases / "with-chart"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "chart.png").write_bytes(png(40, 20))
    project.write_release("with-chart", body="Results:\n\n![Recovery rate by year](img/chart.png)\n", bundle=True)
    build(project, NOW)
    public = project.root / "public" / "releases" / "with-chart"
    assert (public / "img" / "chart.png").read_bytes() == (folder / "img" / "chart.png").read_bytes()
    page = _page(project, "releases/with-chart/index.html")
    assert page.xpath("//div[@class='body']//img/@src") == ["../../releases/with-chart/img/chart.png"]
    assert page.xpath("//div[@class='body']//img/@alt") == ["Recovery rate by year"]


@pytest.mark.parametrize(
    ("broken", "where"),
    [
        ("{% block main %}{{ card.release.title }{% endblock %}", "templates/site/release.html.j2:1"),
        ("{% block main %}\n{{ no_such_thing.title }}{% endblock %}", "templates/site/release.html.j2:2"),
    ],
)
@pytest.mark.parametrize("workers", [False, True], ids=["one process", "workers"])
def test_a_broken_template_is_named_with_its_line(project, tmp_path, monkeypatch, broken, where, workers):
    templates = tmp_path / "my-templates"
    (templates / "site").mkdir(parents=True)
    for source in (REPO / "templates" / "site").glob("*.j2"):
        (templates / "site" / source.name).write_text(source.read_text())
    (templates / "site" / "release.html.j2").write_text(broken)
    project.write_release("one")
    project.write_release("two", date="2024-07-31 09:00")
    if workers:  # each release page in a chunk of its own, rendered by a forked worker
        for name, value in {"_PARALLEL_FROM": 2, "_RENDERERS": 2, "_SMALLEST_CHUNK": 1}.items():
            monkeypatch.setattr(sync, name, value)
        monkeypatch.setattr(sync.threading, "active_count", lambda: 1)
    settings = project.settings(PRESSROOM_PATHS__TEMPLATES=str(templates))
    with pytest.raises(TemplateError) as caught:
        build_site(settings=settings, releases=load_releases(settings).releases, now=NOW)
    assert str(caught.value).startswith(where), str(caught.value)
    assert not (project.root / "public" / "releases" / "one").exists()  # the broken page is not written


def test_a_site_template_edited_between_two_builds_of_one_process_is_used(project, tmp_path):
    templates = tmp_path / "my-templates"
    shutil.copytree(REPO / "templates", templates)
    project.write_release("one")
    build(project, NOW, PRESSROOM_PATHS__TEMPLATES=str(templates))
    page = project.root / "public" / "releases" / "one" / "index.html"
    assert "Edited here" not in page.read_text()
    release_template = templates / "site" / "release.html.j2"
    release_template.write_text(release_template.read_text().replace("{% block main %}", "{% block main %}Edited here"))
    build(project, NOW, PRESSROOM_PATHS__TEMPLATES=str(templates))
    assert "Edited here" in page.read_text()


def test_missing_site_templates_are_a_clear_error(project, tmp_path):
    settings = project.settings(PRESSROOM_PATHS__TEMPLATES=str(tmp_path / "nowhere"))
    with pytest.raises(TemplateError, match="site templates are missing"):
        build_site(settings=settings, releases=[], now=NOW)


JPEG_HEADER = (
    b"\xff\xd8"  # start of image
    + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"  # APP0, 16 bytes
    + b"\xff\xc2\x00\x11\x08\x02\x1c\x03\xc0\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"  # progressive SOF: 540 x 960
)


@pytest.mark.parametrize(
    ("name", "data", "size"),
    [
        ("photo.jpg", JPEG_HEADER, ("960", "540")),
        ("photo.gif", b"GIF89a\x40\x01\xf0\x00" + b"\x00" * 20, ("320", "240")),
        ("photo.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", None),  # unknown: no size rather than a wrong one
    ],
)
def test_og_image_size_comes_from_the_image_header(project, name, data, size):
    folder = project.releases / "photo-release"
    folder.mkdir()
    (folder / name).write_bytes(data)
    project.write_release("photo-release", bundle=True, extra=f"hero: {{src: {name}, alt: A photo}}\n")
    build(project, NOW)
    meta = _meta(_page(project, "releases/photo-release/index.html"))
    assert (meta.get("og:image:width"), meta.get("og:image:height")) == (size or (None, None))


def test_every_page_without_a_hero_has_a_default_og_image(project):
    write_sample(project)
    build(project, NOW)
    public = project.root / "public"
    card = f"{BASE}/static/card.png"
    pages = list(public.rglob("*.html"))
    assert len(pages) >= 8
    for path in pages:
        meta = _meta(lxml.html.fromstring(path.read_bytes()))
        assert meta.get("og:image"), path
        if "battery-passport-pilot" not in str(path):
            assert (meta["og:image"], meta["og:image:width"], meta["og:image:height"]) == (card, "1200", "630"), path
    assert (public / "static" / "card.png").read_bytes().startswith(b"\x89PNG")
    # With a logo, the logo is the card.
    build(project, NOW, PRESSROOM_SITE__LOGO="/static/logo.svg")
    assert _meta(_page(project, "releases/hub-launch/index.html"))["og:image"] == f"{BASE}/static/logo.svg"


def test_the_404_page_is_noindex_and_claims_no_canonical_url(project):
    write_sample(project)
    build(project, NOW)
    page = _page(project, "404.html")
    assert _meta(page)["robots"] == "noindex"
    assert page.xpath("//link[@rel='canonical']") == []
    assert "og:url" not in _meta(page)
    assert _page(project, "index.html").xpath("//link[@rel='canonical']/@href") == [f"{BASE}/"]


TABLE_BODY = """Figures:

| Quarter | Revenue (EUR) | Change |
|:--------|--------------:|:------:|
| Q1 2023 | 1,200,000 | +4 % |
| Q2 2023 | 980,000 | −18 % |
"""


def test_a_table_keeps_its_alignment_and_scrolls_by_keyboard(project):
    project.write_release("figures", body=TABLE_BODY)
    build(project, NOW)
    page = _page(project, "releases/figures/index.html")
    (box,) = page.xpath("//div[@class='table-scroll']")
    assert (box.get("tabindex"), box.get("role")) == ("0", "region")
    assert box.get("aria-label") == "Table: Quarter, Revenue (EUR), Change"
    # By class, which the stylesheet aligns: the align attribute is obsolete HTML.
    assert [cell.get("class") for cell in box.xpath(".//tr[2]/td")] == ["align-left", "align-right", "align-center"]
    assert [cell.get("class") for cell in box.xpath(".//th")] == ["align-left", "align-right", "align-center"]
    assert not box.xpath(".//*[@align]")


def test_contacts_are_linked_under_the_title_and_addresses_wrap_at_at_and_slash(project):
    write_sample(project)
    build(project, NOW)
    page = _page(project, "releases/battery-passport-pilot/index.html")
    (link,) = page.xpath("//header[@class='release-header']//p[@class='contacts-link']/a")
    assert link.get("href") == "#contacts-title" and page.xpath("//*[@id='contacts-title']")
    html = (project.root / "public" / "releases" / "battery-passport-pilot" / "index.html").read_text()
    assert ">ana@<wbr>example.org</a>" in html
    assert ">https://press.example.org/<wbr>releases/<wbr>battery-passport-pilot/</a>" in html
    # A release without contacts has no link to them.
    assert not _page(project, "releases/hub-launch/index.html").xpath("//p[@class='contacts-link']")


# Where each line of an element's text starts: the characters after which the browser wrapped it.
WRAP_POINTS = """
(selector) => [...document.querySelectorAll(selector)].map(element => {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  const chars = [];
  while (walker.nextNode()) {
    const text = walker.currentNode;
    for (let i = 0; i < text.length; i++) {
      const range = document.createRange();
      range.setStart(text, i); range.setEnd(text, i + 1);
      const rect = range.getClientRects()[0];
      if (rect) chars.push([text.data[i], Math.round(rect.top)]);
    }
  }
  const breaks = [];
  for (let i = 1; i < chars.length; i++) if (chars[i][1] > chars[i - 1][1]) breaks.push(chars[i - 1][0]);
  return {text: element.textContent, breaks};
})
"""


@pytest.mark.browser
def test_on_a_phone_contacts_are_one_tap_away_and_addresses_wrap_at_at_and_slash(project):
    from pressroom.mail.preview import CHROMIUM, CHROMIUM_ARGS
    from tests.site_support import serve

    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/system-deps (make test does)")
    long_address = "communications.department@materialsforbatterieshub.eu"
    project.write_release(
        "contacts-and-table",
        body="Intro.\n\n" + TABLE_BODY + "\n\n" + "A long paragraph of body text. " * 80,
        extra=f"contacts:\n  - name: Press Office\n    email: {long_address}\n",
    )
    build(project, NOW)
    with serve(project.root / "public") as base, playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 320, "height": 640})
        page.goto(base + "releases/contacts-and-table/")
        link = page.locator(".contacts-link a")
        assert link.is_visible()
        assert link.bounding_box()["y"] < 640  # on the first screen, not after the body
        link.click()
        assert page.locator("#contacts-title").bounding_box()["y"] < 100  # the tap lands on the contacts
        wraps = page.evaluate(WRAP_POINTS, ".contact a, .permalink a")
        assert any(wrap["breaks"] for wrap in wraps), wraps  # the test really makes them wrap
        for wrap in wraps:
            assert set(wrap["breaks"]) <= {"@", "/"}, wrap
        box = page.locator(".table-scroll")
        box.focus()
        assert page.evaluate("document.activeElement.getAttribute('role')") == "region"
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        page.set_viewport_size({"width": 1200, "height": 800})
        assert not page.locator(".contacts-link a").is_visible()  # beside the body there is no need
        chromium.close()
