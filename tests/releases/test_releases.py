"""Release files -> Release: the schema, time zones, status rules and sanitisation a comms officer relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pressroom.errors import ReleaseError
from pressroom.releases import load_release, load_releases, resolve_local_time
from pressroom.settings import load_settings
from tests.conftest import REPO


def test_sample_release_loads_with_its_hero_and_about(project):
    settings = load_settings(REPO / "pressroom.toml", environ={})
    result = load_releases(settings)
    assert result.problems == []
    (release,) = result.releases
    assert release.slug == "international-day-of-friendship-cluster-hub"
    assert release.url == "https://www.materialsforbatterieshub.eu/releases/international-day-of-friendship-cluster-hub/"
    # 09:00 in Brussels in July is 07:00 UTC (CEST, +02:00), not 08:00 or 09:00.
    assert release.date.astimezone(UTC) == datetime(2024, 7, 30, 7, 0, tzinfo=UTC)
    assert release.hero is not None and release.hero.alt and release.hero.src.endswith("/hero.png")
    assert "100 organisations" in release.about_html


@pytest.mark.parametrize(
    ("written", "utc"),
    [
        ("2024-01-15 09:00", datetime(2024, 1, 15, 8, 0, tzinfo=UTC)),  # CET, +01:00
        ("2024-07-15 09:00", datetime(2024, 7, 15, 7, 0, tzinfo=UTC)),  # CEST, +02:00
        ("2024-07-15T09:00:00+00:00", datetime(2024, 7, 15, 9, 0, tzinfo=UTC)),  # an explicit offset wins
        ("2024-07-15T09:00:00Z", datetime(2024, 7, 15, 9, 0, tzinfo=UTC)),
        ("2024-03-31 03:30", datetime(2024, 3, 31, 1, 30, tzinfo=UTC)),  # just after the spring jump
    ],
)
def test_publication_time_is_read_in_the_site_time_zone(project, written, utc):
    project.write_release("timed", date=written)
    release = load_release(project.releases / "timed.md", project.settings())
    assert release.date.astimezone(UTC) == utc


def test_front_matter_time_zone_overrides_the_site_one(project):
    project.write_release("tokyo", date="2024-07-15 09:00", extra="timezone: Asia/Tokyo\n")
    release = load_release(project.releases / "tokyo.md", project.settings())
    assert release.date.astimezone(UTC) == datetime(2024, 7, 15, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("written", "expected"),
    [("2024-03-31 02:30", "does not exist"), ("2024-10-27 02:30", "happens twice")],
)
def test_times_that_dst_makes_impossible_or_ambiguous_are_refused(project, written, expected):
    project.write_release("dst", date=written)
    with pytest.raises(ReleaseError) as caught:
        load_release(project.releases / "dst.md", project.settings())
    assert expected in caught.value.message
    assert caught.value.field == "date" and caught.value.line == 3


def test_resolve_local_time_names_both_offsets_for_an_ambiguous_time():
    from zoneinfo import ZoneInfo

    with pytest.raises(ValueError, match=r"\+02:00 or \+01:00"):
        resolve_local_time(datetime(2024, 10, 27, 2, 30), ZoneInfo("Europe/Brussels"))


def test_status_and_time_decide_what_is_public(project):
    now = datetime(2024, 7, 30, 12, 0, tzinfo=UTC)
    project.write_release("draft", status="draft", date="2024-07-01 09:00")
    project.write_release("due", date="2024-07-30 09:00")
    project.write_release("future", date="2024-07-30 15:00")  # 13:00 UTC: one hour after now
    project.write_release("expired", date="2024-07-01 09:00", extra="expires: 2024-07-29 00:00\n")
    releases = {r.slug: r for r in load_releases(project.settings()).releases}
    assert {slug for slug, r in releases.items() if r.is_public(now)} == {"due"}
    # The future one becomes public exactly at its time, not a minute before.
    future = releases["future"]
    assert not future.is_public(future.date - timedelta(seconds=1))
    assert future.is_public(future.date)


def test_yaml_scalars_stay_as_written(project):
    # YAML 1.1 would turn "no" (Norwegian) into False and "1.10" into 1.1.
    project.write_release("norsk", title="1.10", extra="language: no\ntags: [yes, 2024]\n")
    release = load_release(project.releases / "norsk.md", project.settings())
    assert release.language == "no"
    assert release.title == "1.10"
    assert release.tags == ("yes", "2024")


def test_body_is_sanitised_and_urls_made_absolute(project):
    folder = project.releases / "bundle"
    folder.mkdir()
    (folder / "chart.png").write_bytes(b"\x89PNG fake")
    project.write_release(
        "bundle",
        bundle=True,
        body='![Chart](chart.png)\n\n<script>alert(1)</script>\n\n<a href="javascript:alert(2)" onclick="x()">x</a>',
    )
    release = load_release(folder / "index.md", project.settings())
    assert '<img src="https://press.example.org/releases/bundle/chart.png" alt="Chart">' in release.body_html
    for forbidden in ("<script", "javascript:", "onclick"):
        assert forbidden not in release.body_html.lower()
    assert folder / "chart.png" in release.assets


def test_title_line_breaks_cannot_reach_headers(project):
    project.write_release("crlf", title="Line one\\r\\nBcc: all@example.org")
    release = load_release(project.releases / "crlf.md", project.settings())
    assert "\r" not in release.title and "\n" not in release.title


def test_a_five_megabyte_release_is_refused_with_a_hint(project):
    path = project.write_release("huge", body="word " * 1_000_000)
    with pytest.raises(ReleaseError) as caught:
        load_release(path, project.settings())
    assert "limit" in caught.value.message and caught.value.hint


def test_channel_overrides(project):
    project.write_release(
        "quiet",
        extra='email: {enabled: false}\nsocial:\n  bluesky: {text: "Short and sweet"}\n',
    )
    release = load_release(project.releases / "quiet.md", project.settings())
    assert release.channel("email").enabled is False
    assert release.channel("bluesky").text == "Short and sweet"
    assert release.channel("mastodon").enabled is True


def test_images_in_a_subfolder_keep_their_path_and_images_outside_are_refused(project):
    folder = project.releases / "photos"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "hero.png").write_bytes(b"\x89PNG fake")
    project.write_release("photos", bundle=True, extra="hero: {src: img/hero.png, alt: A photo}\n")
    release = load_release(folder / "index.md", project.settings())
    assert release.hero.src == "https://press.example.org/releases/photos/img/hero.png"

    (project.releases / "elsewhere.png").write_bytes(b"\x89PNG fake")
    project.write_release("outside", bundle=True, body="![x](../elsewhere.png)")
    with pytest.raises(ReleaseError, match="outside the release's folder"):
        load_release(project.releases / "outside" / "index.md", project.settings())


def test_a_bundle_folder_that_is_a_symbolic_link_keeps_its_files_names_beside_the_page(project, tmp_path):
    """A bundle kept elsewhere and linked into content/releases: its images are named from the bundle, not
    from wherever the link points."""
    real = tmp_path / "shared-drive" / "photos"
    (real / "img").mkdir(parents=True)
    (real / "img" / "hero.png").write_bytes(b"\x89PNG fake")
    project.releases.mkdir(parents=True, exist_ok=True)
    (project.releases / "photos").symlink_to(real, target_is_directory=True)
    project.write_release("photos", bundle=True, extra="hero: {src: img/hero.png, alt: A photo}\n")
    release = load_release(project.releases / "photos" / "index.md", project.settings())
    assert release.images == (("img/hero.png", real.resolve() / "img" / "hero.png"),)
    assert release.hero.src == "https://press.example.org/releases/photos/img/hero.png"


@pytest.mark.parametrize(
    ("site_rule", "front_matter", "expected"),
    [("false", "", False), ("true", "", True), ("false", "email: {approval: true}\n", True), ("true", "email: {approval: false}\n", False)],
)
def test_approval_is_asked_per_release_or_by_the_site_rule(project, site_rule, front_matter, expected):
    project.write_release("gated", extra=front_matter)
    settings = project.settings(PRESSROOM_EMAIL__APPROVAL_REQUIRED=site_rule)
    release = load_release(project.releases / "gated.md", settings)
    assert release.needs_approval(settings) is expected


def test_a_missing_field_inside_a_section_points_at_that_section(project):
    project.write_release("nameless", extra="contacts:\n  - email: press@example.org\n")
    with pytest.raises(ReleaseError) as caught:
        load_release(project.releases / "nameless.md", project.settings())
    assert (caught.value.field, caught.value.line, caught.value.message) == ("contacts.0.name", 6, "is required")


def test_an_empty_title_is_said_in_plain_words_with_what_to_write(project):
    project.write_release("untitled", title="")
    with pytest.raises(ReleaseError) as caught:
        load_release(project.releases / "untitled.md", project.settings())
    assert (caught.value.field, caught.value.line, caught.value.message) == ("title", 2, "is empty")
    assert "title:" in caught.value.hint


def test_an_empty_slug_falls_back_to_the_file_name(project):
    project.write_release("from-the-file", extra="slug:\n")
    assert load_release(project.releases / "from-the-file.md", project.settings()).slug == "from-the-file"


def test_the_about_boilerplate_is_the_same_everywhere_and_relative_links_follow_each_release(project):
    settings = project.settings(PRESSROOM_SITE__ABOUT="**About us.** Our [fact sheet](facts.pdf) and [site](https://example.org/).")
    for slug in ("first", "second"):
        project.write_release(slug)
    first, second = (load_release(project.releases / f"{slug}.md", settings) for slug in ("first", "second"))
    assert 'href="https://press.example.org/releases/first/facts.pdf"' in first.about_html
    assert 'href="https://press.example.org/releases/second/facts.pdf"' in second.about_html
    assert first.about_html.replace("first", "second") == second.about_html


def test_a_summary_left_out_is_the_first_sentence_of_the_first_paragraph_in_plain_words(project):
    project.write_release(
        "derived",
        body="Partners meet in **Brussels** on [Friday](https://example.org/friday) &amp; Saturday. More follows.\n\n"
             "| Day | Room |\n|---|---|\n| Friday | A |\n",
    )
    release = load_release(project.releases / "derived.md", project.settings())
    assert release.summary == "Partners meet in Brussels on Friday & Saturday."
