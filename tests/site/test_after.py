"""After publication: downloads beside the page, the press kit, corrections and withdrawals on the site and in feeds."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from datetime import UTC, datetime

import lxml.html
from lxml import etree

from pressroom.mail.compose import compose_release
from pressroom.releases import load_releases
from tests.conftest import DATA, NOW
from tests.golden import assert_golden
from tests.site_support import broken_links, build, write_sample

CASE = DATA / "site-corrected"
ATOM = "{http://www.w3.org/2005/Atom}"
SLUG = "battery-passport-pilot"


def _edit(project, old: str, new: str) -> None:
    index = project.releases / SLUG / "index.md"
    text = index.read_text(encoding="utf-8")
    assert old in text
    index.write_text(text.replace(old, new, 1), encoding="utf-8")


def _with_downloads(project) -> None:
    write_sample(project)
    folder = project.releases / SLUG
    (folder / "statement.pdf").write_bytes(b"%PDF-1.4\n" + b"x" * 2400)
    (folder / "files").mkdir()
    (folder / "files" / "fact-sheet.docx").write_bytes(b"PK" + b"y" * 120)
    _edit(project, "The pilot **starts today**.", "The pilot **starts today**. Read the [statement](statement.pdf).")
    _edit(project, "summary:", 'downloads:\n  - {file: files/fact-sheet.docx, title: "Fact sheet"}\nsummary:')


def _page(project) -> lxml.html.HtmlElement:
    return lxml.html.fromstring((project.root / "public" / "releases" / SLUG / "index.html").read_bytes())


def test_linked_and_listed_files_are_published_beside_the_page_and_listed_on_it_and_in_the_email(project):
    _with_downloads(project)
    _, releases = build(project, NOW)
    public = project.root / "public"
    folder = public / "releases" / SLUG
    assert (folder / "statement.pdf").read_bytes().startswith(b"%PDF")
    assert (folder / "files" / "fact-sheet.docx").is_file()
    assert broken_links(public) == []

    box = _page(project).get_element_by_id("downloads-title").getparent()
    rows = [" ".join(item.text_content().split()) for item in box.iter("li")]
    assert rows[:2] == ["Fact sheet DOCX, 122 bytes", "statement.pdf PDF, 2.4 kB"]
    assert rows[2].startswith("Press kit ZIP")

    settings = project.settings()
    release = next(r for r in releases if r.slug == SLUG)
    email = compose_release(release=release, settings=settings)
    for url in (
        "https://press.example.org/releases/battery-passport-pilot/statement.pdf",
        "https://press.example.org/releases/battery-passport-pilot/files/fact-sheet.docx",
        "https://press.example.org/releases/battery-passport-pilot/press-kit.zip",
    ):
        assert f'href="{url}"' in email.html and url in email.text
    assert "Fact sheet (DOCX, 122 bytes)" in email.text


def test_download_sizes_are_written_as_the_release_language_writes_them(project):
    _with_downloads(project)
    _edit(project, "summary:", "language: fr\nsummary:")
    _, releases = build(project, NOW)
    box = _page(project).get_element_by_id("downloads-title").getparent()
    rows = [" ".join(item.text_content().split()) for item in box.iter("li")]
    assert rows[:2] == ["Fact sheet DOCX, 122 octets", "statement.pdf PDF, 2,4 ko"]
    email = compose_release(release=next(r for r in releases if r.slug == SLUG), settings=project.settings())
    assert "Fact sheet (DOCX, 122\xa0octets)" in email.text and "(PDF, 2,4\u202fko)" in email.text


def test_a_missing_linked_file_is_reported_with_its_line_and_the_other_releases_still_load(project):
    write_sample(project)
    _edit(project, "The pilot **starts today**.", "The pilot **starts today**.\n\nThe [statement](statement.pdf) follows.")
    result = load_releases(project.settings())
    (problem,) = result.problems
    assert str(problem).startswith(f"{project.releases / SLUG / 'index.md'}:")
    assert problem.line == (project.releases / SLUG / "index.md").read_text().splitlines().index("The [statement](statement.pdf) follows.") + 1
    assert "statement.pdf" in problem.message and problem.field == "body"
    assert len(result.releases) == 5


def test_the_press_kit_holds_text_images_and_downloads_and_is_the_same_bytes_on_every_build(project):
    _with_downloads(project)
    build(project, NOW)
    kit = project.root / "public" / "releases" / SLUG / "press-kit.zip"
    first = kit.read_bytes()
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == sorted(names) == [
        f"{SLUG}/{SLUG}.md", f"{SLUG}/{SLUG}.txt", f"{SLUG}/files/fact-sheet.docx", f"{SLUG}/hero.png", f"{SLUG}/statement.pdf",
    ]
    archive = zipfile.ZipFile(io.BytesIO(first))
    assert archive.read(f"{SLUG}/hero.png") == (project.releases / SLUG / "hero.png").read_bytes()  # full resolution
    assert "Ana Example" in archive.read(f"{SLUG}/{SLUG}.txt").decode()
    assert archive.read(f"{SLUG}/{SLUG}.md").decode().startswith("# Battery passport pilot starts")

    report, _ = build(project, NOW)
    assert kit not in report.written and kit.read_bytes() == first
    # From nothing (no public/, no cache) and with every source file touched: still the same bytes.
    shutil.rmtree(project.root / "public")
    shutil.rmtree(project.root / "var")
    for path in (project.releases / SLUG).rglob("*"):
        if path.is_file():
            os.utime(path, (1_900_000_000, 1_900_000_000))
    build(project, NOW)
    assert kit.read_bytes() == first


def test_the_press_kit_unzips_everywhere_with_names_beyond_ascii_and_files_readable_by_all(project):
    _with_downloads(project)
    (project.releases / SLUG / "files" / "Übersicht – été.pdf").write_bytes(b"%PDF-1.4\n" + b"z" * 300)
    _edit(project, "downloads:\n", 'downloads:\n  - {file: "files/Übersicht – été.pdf", title: "Overview"}\n')
    build(project, NOW)
    kit = (project.root / "public" / "releases" / SLUG / "press-kit.zip").read_bytes()
    archive = zipfile.ZipFile(io.BytesIO(kit))
    assert archive.testzip() is None  # every checksum right
    name = f"{SLUG}/files/Übersicht – été.pdf"
    assert name in archive.namelist()
    assert archive.getinfo(name).flag_bits & 0x800  # the name is marked UTF-8, as unzip tools expect
    assert archive.read(name) == (project.releases / SLUG / "files" / "Übersicht – été.pdf").read_bytes()
    assert {info.external_attr >> 16 for info in archive.infolist()} == {0o100644}
    assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


CORRECTION = '''corrections:
  - {date: 2024-08-05 16:00, note: "The pilot runs in three member states, not four."}
  - {date: 2024-08-03 10:00, note: "The start date is 31 July."}
'''
LATER = datetime(2024, 8, 10, 12, 0, tzinfo=UTC)


def _corrected_outputs(public) -> dict[str, str]:
    atom = etree.fromstring((public / "atom.xml").read_bytes())
    entry = atom.find(f"{ATOM}entry")
    item = json.loads((public / "feed.json").read_bytes())["items"][0]
    page = lxml.html.fromstring((public / "releases" / SLUG / "index.html").read_bytes())
    header = page.find_class("release-header")[0]
    sitemap = (public / "sitemap.xml").read_text(encoding="utf-8")
    return {
        "atom-entry.xml": etree.tostring(entry, encoding="unicode", with_tail=False) + "\n",
        "json-item.json": json.dumps(item, ensure_ascii=False, indent=1) + "\n",
        "page-header.html": etree.tostring(header, encoding="unicode", with_tail=False) + "\n",
        "sitemap.xml": sitemap,
        "atom-updated.txt": atom.find(f"{ATOM}updated").text + "\n",
    }


def test_a_corrected_release_shows_dated_notes_and_its_feeds_and_sitemap_take_the_latest_date(project):
    write_sample(project)
    build(project, NOW)
    before = etree.fromstring((project.root / "public" / "atom.xml").read_bytes()).find(f"{ATOM}entry")
    _edit(project, "summary:", CORRECTION + "summary:")
    build(project, LATER)
    public = project.root / "public"
    actual = _corrected_outputs(public)
    release = (project.releases / SLUG / "index.md").read_text(encoding="utf-8")
    assert_golden(CASE, {"release.md": release, **actual})

    # What a reader notices, beyond the golden bytes: oldest note first, latest date in every feed, same identity.
    notes = [" ".join(p.text_content().split()) for p in _page(project).find_class("correction")]
    assert notes == [
        "Correction, 3 August 2024: The start date is 31 July.",
        "Correction, 5 August 2024: The pilot runs in three member states, not four.",
    ]
    entry = etree.fromstring((public / "atom.xml").read_bytes()).find(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}updated") == "2024-08-05T16:00:00+02:00"
    assert entry.findtext(f"{ATOM}id") == before.findtext(f"{ATOM}id")
    assert entry.findtext(f"{ATOM}published") == before.findtext(f"{ATOM}published")
    assert json.loads((public / "feed.json").read_bytes())["items"][0]["date_modified"] == "2024-08-05T16:00:00+02:00"
    assert f"<url><loc>https://press.example.org/releases/{SLUG}/</loc><lastmod>2024-08-05T16:00:00+02:00</lastmod>" in actual["sitemap.xml"]


def test_a_correction_dated_before_publication_is_refused(project):
    write_sample(project)
    _edit(project, "summary:", 'corrections:\n  - {date: 2024-07-01 09:00, note: "Too early."}\nsummary:')
    (problem,) = load_releases(project.settings()).problems
    assert problem.field == "corrections.0.date" and "before the publication date" in problem.message


WITHDRAWN = 'withdrawn: {date: 2024-08-02 09:00, reason: "Published before the partners agreed."}\n'


def _withdraw(project) -> None:
    _edit(project, "status: approved", "status: withdrawn\n" + WITHDRAWN.rstrip("\n"))


def test_a_withdrawn_release_keeps_a_noindex_notice_and_leaves_lists_and_feeds_after_the_notice_period(project):
    write_sample(project)
    build(project, NOW)
    _withdraw(project)
    build(project, LATER)
    public = project.root / "public"
    page = _page(project)
    text = " ".join(page.text_content().split())
    assert page.xpath('//meta[@name="robots"]/@content') == ["noindex"]
    assert "Battery passport pilot starts in three member states" in text
    assert "withdrawn on 2 August 2024" in text and "Published before the partners agreed." in text
    assert "starts today" not in text and "Ana Example" not in text
    assert not (public / "releases" / SLUG / "hero.png").exists()
    for listing in ("index.html", "tags/policy/index.html", "tags/index.html"):
        assert SLUG not in (public / listing).read_text(encoding="utf-8"), listing
    assert SLUG not in (public / "sitemap.xml").read_text(encoding="utf-8")
    assert not (public / "tags" / "battery-passport").exists()  # its only release is gone

    # In the feeds, the item is the notice: same id, a new updated time, no body.
    entry = etree.fromstring((public / "atom.xml").read_bytes()).find(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}id") == f"https://press.example.org/releases/{SLUG}/"
    assert entry.findtext(f"{ATOM}updated") == "2024-08-02T09:00:00+02:00"
    assert "Published before the partners agreed." in entry.findtext(f"{ATOM}content")
    assert "starts today" not in entry.findtext(f"{ATOM}content")
    item = next(i for i in json.loads((public / "feed.json").read_bytes())["items"] if SLUG in i["id"])
    assert item["date_modified"] == "2024-08-02T09:00:00+02:00" and "image" not in item
    assert SLUG in (public / "tags" / "policy" / "feed.xml").read_text(encoding="utf-8")

    # After [site] withdrawn_days (30) the feeds drop it; the notice page stays.
    build(project, datetime(2024, 9, 2, 12, 0, tzinfo=UTC))
    for feed in ("feed.xml", "atom.xml", "feed.json", "tags/policy/feed.xml"):
        assert SLUG not in (public / feed).read_text(encoding="utf-8"), feed
    assert "Published before the partners agreed." in (public / "releases" / SLUG / "index.html").read_text()
    assert broken_links(public) == []


def test_withdrawn_without_its_date_and_reason_is_an_error_naming_the_field(project):
    write_sample(project)
    _edit(project, "status: approved", "status: withdrawn")
    (problem,) = load_releases(project.settings()).problems
    assert problem.field == "withdrawn" and "withdrawn: {date" in problem.hint


def _check(project, code: int = 0) -> str:
    from typer.testing import CliRunner

    from pressroom.cli import app

    cwd = os.getcwd()
    os.chdir(project.root)
    try:
        result = CliRunner().invoke(app, ["check", "--settings", str(project.root / "pressroom.toml"), "--now", LATER.isoformat()])
    finally:
        os.chdir(cwd)
    assert result.exit_code == code, result.output
    return result.output


def test_check_reminds_of_a_silent_edit_to_a_published_release_and_of_a_deleted_one(project):
    from pressroom.ledger import Ledger

    write_sample(project)
    settings = project.settings()
    ledger = Ledger.from_settings(settings)
    published = [r for r in load_releases(settings).releases if r.is_public(NOW)]
    ledger.record_public(releases=published, now=NOW)
    ledger.remember_texts(releases=published)
    assert "reminder" not in _check(project) and "file is gone" not in _check(project)

    _edit(project, "The pilot **starts today**.", "The pilot **started on Monday**.")
    (project.releases / "hub-launch.md").unlink()
    lines = _check(project).splitlines()
    assert any(
        line.startswith(f"content/releases/{SLUG}/index.md: reminder: the text changed since it was published") for line in lines
    ), lines
    assert any(line.startswith("releases/hub-launch/: was published, but its file is gone") and "status: withdrawn" in line for line in lines)

    # A note saying what changed ends the reminder; a broken file is not taken for a deleted one.
    _edit(project, "summary:", 'corrections:\n  - {date: 2024-08-05 16:00, note: "It started on Monday."}\nsummary:')
    (project.releases / "recycling-record.md").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    output = _check(project, code=1)  # the broken file is a problem
    assert "reminder" not in output
    assert "releases/recycling-record/: was published" not in output
    assert "releases/hub-launch/: was published" in output


def test_a_large_hero_is_shown_resized_on_the_page_and_in_the_email_and_kept_whole_for_download(project):
    from PIL import Image

    from tests.site_support import png

    write_sample(project)
    (project.releases / SLUG / "hero.png").write_bytes(png(2400, 1260))
    _, releases = build(project, NOW)
    folder = project.root / "public" / "releases" / SLUG
    page = _page(project)
    (img,) = page.xpath('//figure[@class="hero"]/img')
    assert (img.get("src"), img.get("width"), img.get("height")) == ("hero-1200w.png", "1200", "630")
    assert page.xpath('//a[text()="Download the image"]/@href') == ["hero.png"]
    assert page.xpath('//meta[@property="og:image:width"]/@content') == ["2400"]  # og:image is the original
    with Image.open(folder / "hero-1200w.png") as shown, Image.open(folder / "hero-600w.png") as small:
        assert shown.size == (1200, 630) and small.size == (600, 315)
    assert (folder / "hero.png").read_bytes() == (project.releases / SLUG / "hero.png").read_bytes()
    kit = zipfile.ZipFile(folder / "press-kit.zip")
    assert kit.read(f"{SLUG}/hero.png") == (project.releases / SLUG / "hero.png").read_bytes()
    assert broken_links(project.root / "public") == []

    release = next(r for r in releases if r.slug == SLUG)
    html = compose_release(release=release, settings=project.settings()).html
    assert f"https://press.example.org/releases/{SLUG}/hero-600w.png" in html and f"{SLUG}/hero.png\"" not in html

    sized = {name: (folder / name).read_bytes() for name in ("hero-1200w.png", "hero-600w.png")}
    report, _ = build(project, NOW)
    assert report.written == []
    shutil.rmtree(project.root / "public")
    shutil.rmtree(project.root / "var")
    build(project, NOW)
    assert {name: (folder / name).read_bytes() for name in sized} == sized  # the same bytes from scratch


def test_a_large_image_in_the_body_is_shown_resized_and_kept_whole_for_the_press_kit(project):
    from tests.site_support import png

    write_sample(project)
    (project.releases / SLUG / "photos").mkdir()
    (project.releases / SLUG / "photos" / "plant.png").write_bytes(png(3000, 1500))
    _edit(project, "The pilot **starts today**.", "The pilot **starts today**.\n\n![The pilot plant](photos/plant.png)")
    _, releases = build(project, NOW)
    folder = project.root / "public" / "releases" / SLUG
    (src,) = _page(project).xpath('//img[@alt="The pilot plant"]/@src')
    assert src.endswith(f"releases/{SLUG}/photos/plant-1200w.png")
    assert (folder / "photos" / "plant-1200w.png").is_file() and (folder / "photos" / "plant-600w.png").is_file()
    release = next(r for r in releases if r.slug == SLUG)
    html = compose_release(release=release, settings=project.settings()).html
    assert f"/releases/{SLUG}/photos/plant-600w.png" in html and "photos/plant.png" not in html
    kit = zipfile.ZipFile(folder / "press-kit.zip")
    assert kit.read(f"{SLUG}/photos/plant.png") == (project.releases / SLUG / "photos" / "plant.png").read_bytes()
    assert broken_links(project.root / "public") == []


def test_check_warns_of_an_image_over_5_mb(project):
    write_sample(project)
    (project.releases / SLUG / "hero.png").write_bytes((project.releases / SLUG / "hero.png").read_bytes() + b"\0" * 6_000_000)
    result = load_releases(project.settings())
    assert not result.problems
    (warning,) = [w for w in result.warnings if w.field == "images"]
    assert "image hero.png is 6 MB" in warning.message
