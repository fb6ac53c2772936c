"""``pressroom preview``: HTML, text, .eml and full-page screenshots for comms staff."""

from __future__ import annotations

import email
import email.policy
import os
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pressroom.cli import app
from pressroom.mail import compose_release
from pressroom.mail.preview import CHROMIUM, local_assets, screenshots, write_files
from tests.mail_support import SAMPLE_SLUG, sample_project

browser_only = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="scripts/system-deps installs chromium")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@browser_only
@pytest.mark.browser
def test_screenshots_at_375_and_600_px_show_the_local_hero_image(project, tmp_path) -> None:
    settings, releases = sample_project(project)
    sample = next(r for r in releases if r.slug == SAMPLE_SLUG)
    assets = local_assets(settings=settings, releases=[sample])
    assert assets[sample.hero.src] == sample.hero.file
    html = compose_release(release=sample, settings=settings).html
    paths = screenshots(html=html, directory=tmp_path / "shots", stem="shot", settings=settings, assets=assets, dark=(375,))
    assert [p.name for p in paths] == ["shot-375.png", "shot-600.png", "shot-375-dark.png"]
    for path, width in zip(paths, (375, 600, 375)):
        png_width, png_height = png_size(path)
        assert png_width == width and png_height > 1500, "a full-page shot of the whole email"


@browser_only
@pytest.mark.browser
def test_preview_command_writes_every_file_and_prints_the_paths(project, monkeypatch) -> None:
    sample_project(project)
    monkeypatch.chdir(project.root)
    for name in [n for n in os.environ if n.startswith("PRESSROOM_")]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(app, ["preview", SAMPLE_SLUG])
    assert result.exit_code == 0, result.output
    printed = [Path(line) for line in result.output.split()]
    folder = project.root / "var" / "preview"
    assert [p.name for p in printed] == [
        f"{SAMPLE_SLUG}.html", f"{SAMPLE_SLUG}.txt", f"{SAMPLE_SLUG}.eml",
        f"{SAMPLE_SLUG}-375.png", f"{SAMPLE_SLUG}-600.png", f"{SAMPLE_SLUG}-375-dark.png",
    ]
    assert all(p.parent == folder and p.stat().st_size > 0 for p in printed)
    msg = email.message_from_bytes(printed[2].read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "The Cluster HUB celebrates the International Day of Friendship"
    assert "<h1" in printed[0].read_text() and "MEDIA CONTACTS" in printed[1].read_text()


def test_preview_of_the_digest_and_clear_errors(project, monkeypatch) -> None:
    sample_project(project)
    monkeypatch.chdir(project.root)
    for name in [n for n in os.environ if n.startswith("PRESSROOM_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()
    # Monday 5 August: the digest of Monday 29 July to Monday 5 August, Brussels time.
    result = runner.invoke(app, ["preview", "--digest", "--no-screenshots", "--now", "2024-08-05T09:00+02:00"])
    assert result.exit_code == 0, result.output
    assert [Path(line).name for line in result.output.split()] == [
        "digest-2024-W31.html", "digest-2024-W31.txt", "digest-2024-W31.eml"
    ]
    text = (project.root / "var" / "preview" / "digest-2024-W31.txt").read_text()
    assert text.index("Pilot plant recovers") < text.index("International Day of Friendship")

    result = runner.invoke(app, ["preview", "no-such-release", "--no-screenshots"])
    assert result.exit_code != 0
    assert "no release with slug 'no-such-release'" in result.output and SAMPLE_SLUG in result.output
    result = runner.invoke(app, ["preview", "--digest", "--no-screenshots", "--now", "2030-01-01T00:00+00:00"])
    assert result.exit_code != 0 and "--now" in result.output
    result = runner.invoke(app, ["preview"])
    assert result.exit_code == 2 and "SLUG or --digest" in result.output


def test_write_files_takes_an_email_composed_elsewhere(project) -> None:
    """The publish flow composes once and hands the same Composed to the preview artifact."""
    settings, releases = sample_project(project)
    sample = next(r for r in releases if r.slug == SAMPLE_SLUG)
    files = write_files(composed=compose_release(release=sample, settings=settings), settings=settings, releases=[sample], shots=False)
    assert files.html == project.root / "var" / "preview" / f"{SAMPLE_SLUG}.html"
    assert files.png == () and [p.exists() for p in files.all()] == [True, True, True]


def test_digest_preview_covers_the_flows_week_not_the_seven_days_before(project, monkeypatch) -> None:
    """Wednesday's preview shows last week's digest (Monday to Monday), as the digest flow sends it:
    not this Monday's release, which belongs to next week's digest."""
    project.write_release("last-thursday", title="Last Thursday's news", date="2024-07-25 10:00")
    project.write_release("this-monday", title="This Monday's news", date="2024-07-29 10:00")
    project.write_release("old-news", title="Old news", date="2024-07-18 10:00")
    monkeypatch.chdir(project.root)
    for name in [n for n in os.environ if n.startswith("PRESSROOM_")]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(app, ["preview", "--digest", "--no-screenshots", "--now", "2024-07-31T12:00+02:00"])
    assert result.exit_code == 0, result.output
    text = (project.root / "var" / "preview" / "digest-2024-W30.txt").read_text()
    assert "Last Thursday's news" in text
    assert "This Monday's news" not in text and "Old news" not in text
