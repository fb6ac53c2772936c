"""The publish flow end to end on a temp project: site built, bad releases reported, nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


from tests.conftest import NOW


def snapshot(folder):
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def test_publish_builds_site_records_once_and_rewrites_nothing_on_rerun(project, publish):
    project.write_release("first-news", title="First news", date="2024-07-30 09:00")
    project.write_release("draft-news", title="Secret draft", status="draft")
    (project.releases / "broken.md").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    settings_file = str(project.root / "pressroom.toml")

    summary = publish(settings_file=settings_file, now=NOW)
    public = project.root / "public"
    assert (public / "releases" / "first-news" / "index.html").exists()
    assert summary.newly_public == ["first-news"]
    assert summary.public == ["first-news"]
    assert len(summary.problems) == 1 and summary.problems[0].startswith("content/releases/broken.md:2:")
    everything = "".join(p.read_text(errors="ignore") for p in public.rglob("*") if p.suffix in {".html", ".xml", ".json"})
    assert "Secret draft" not in everything and "draft-news" not in everything

    posts = sorted((project.root / "var" / "outbox" / "social").rglob("*.json"))
    # The editor's preview of the new release's email: HTML, text, .eml and pictures.
    preview = project.root / "var" / "preview"
    assert "First news" in (preview / "first-news.html").read_text(encoding="utf-8")
    assert {path.suffix for path in preview.glob("first-news*")} >= {".html", ".txt", ".eml", ".png"}

    # The outbox account writes the post in each network's own form.
    assert sorted(p.stem.split("-")[-1] for p in posts) == ["bluesky", "linkedin", "mastodon"]
    assert all("https://press.example.org/releases/first-news/" in p.read_text(encoding="utf-8") for p in posts)

    # The run's reach page (also its "reach" artifact): the new release, its counts and chart.
    assert "First news" in (project.root / "var" / "reports" / "reach-all.html").read_text(encoding="utf-8")

    before, posts_before = snapshot(public), snapshot(project.root / "var" / "outbox")
    again = publish(settings_file=settings_file, now=NOW + timedelta(minutes=5))
    assert again.newly_public == []
    assert snapshot(public) == before  # no file rewritten: ETags and Last-Modified stay valid
    assert snapshot(project.root / "var" / "outbox") == posts_before  # nothing sent or posted again


def test_future_release_appears_on_the_first_run_after_its_time_and_not_before(project, publish):
    # 09:00 Brussels summer time is 07:00 UTC.
    project.write_release("on-time", title="On time", date="2024-08-02 09:00")
    settings_file = str(project.root / "pressroom.toml")
    page = project.root / "public" / "releases" / "on-time" / "index.html"

    early = publish(settings_file=settings_file, now=datetime(2024, 8, 2, 6, 59, 59, tzinfo=UTC))
    assert not page.exists() and early.newly_public == []
    assert early.next_release == ("on-time", datetime(2024, 8, 2, 7, 0, tzinfo=UTC))

    due = publish(settings_file=settings_file, now=datetime(2024, 8, 2, 7, 0, tzinfo=UTC))
    assert page.exists() and due.newly_public == ["on-time"]
