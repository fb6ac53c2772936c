"""The journalist's preview page in headless Chromium: EMBARGOED band and noindex until the date, then a redirect.

Real parts on loopback: uvicorn serving the app (`pressroom serve`'s server), Debian's Chromium
driven by Playwright, SQLite. The clock of the app is the test's, so the date can pass.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from pressroom.audience import MediaList, preview_url
from pressroom.mail.preview import CHROMIUM, CHROMIUM_ARGS
from tests._delivery import free_port, serving
from tests.conftest import Project
from tests.embargo_support import publish_once, seed
from tests.site_support import png

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTIFIED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PUBLIC = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_preview_page_is_embargoed_noindex_then_redirects_and_bad_links_get_one_400(tmp_path) -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from pressroom.web import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    project = Project(tmp_path, textwrap.dedent(f"""
        [site]
        name = "Test Hub"
        base_url = "{base}"
        timezone = "Europe/Brussels"

        [email]
        sender = "press@example.org"
        """))
    (project.releases / "big-news").mkdir()
    (project.releases / "big-news" / "lab.png").write_bytes(png(120, 60))
    (project.releases / "big-news" / "statement.pdf").write_bytes(b"%PDF-1.4 the statement")
    project.write_release("big-news", title="Big news from the lab", date="2026-12-02 09:00", body="A **secret** result.",
                          bundle=True, extra="tags: [Energy]\nembargo: {notify: 48h}\nhero: {src: lab.png, alt: The lab}\n"
                                            "downloads: [{file: statement.pdf, title: The statement}]\n")
    settings = project.settings()
    seed(settings, NOTIFIED)
    publish_once(settings, NOTIFIED)
    media = MediaList.from_settings(settings)
    energy, sport = media.get(address="energy@example.com"), media.get(address="sport@example.com")
    link = preview_url(settings=settings, journalist_id=energy.id, slug="big-news")
    clock = [NOTIFIED]
    server = uvicorn.Server(uvicorn.Config(create_app(settings=settings, clock=lambda: clock[0]), host="127.0.0.1", port=port,
                                           log_level="warning"))
    with serving(server):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            response = page.goto(link)
            assert response.status == 200
            assert response.headers["x-robots-tag"] == "noindex"
            assert response.headers["cache-control"] == "private, no-store"
            band = page.locator(".embargo-band")
            assert band.is_visible() and band.inner_text().startswith("EMBARGOED until 2 December 2026, 09:00 CET (08:00 UTC)")
            assert page.locator("h1").inner_text() == "Big news from the lab"
            assert "noindex" in page.locator('meta[name="robots"]').get_attribute("content")
            # The public page's own layout: the side box with contacts, downloads and press kit beside the text.
            assert page.locator(".release-layout .release-aside .downloads").is_visible()
            assert page.locator(".hero img").evaluate("img => img.naturalWidth") == 120  # served before public/ has it
            assert not (settings.path("public") / "releases" / "big-news").exists()  # served, never written
            # The journalist's downloads come through the same personal link, before public/ has them.
            download = page.locator(".downloads a[download]").first
            assert download.inner_text() == "The statement"
            fetched = page.request.get(base + download.get_attribute("href"))
            assert fetched.status == 200 and fetched.body() == b"%PDF-1.4 the statement"
            assert fetched.headers["cache-control"] == "private, no-store"
            assert page.request.get(f"{base}/preview/big-news/files/statement.pdf?token=forged").status == 400
            kit = page.request.get(base + page.locator(".downloads a[download]").last.get_attribute("href"))
            assert kit.status == 200 and kit.body().startswith(b"PK") and kit.headers["cache-control"] == "private, no-store"
            # With a genuine link, only the release's own files: no other file of content/ or of the project.
            token = link.split("token=", 1)[1]
            for other in ("index.md", "..%2F..%2F..%2Fpressroom.toml", "../../../pressroom.toml"):
                assert page.request.get(f"{base}/preview/big-news/files/{other}?token={token}").status in (400, 404), other

            # The sports desk was never sent this release: its genuine-looking link is refused like a forged one.
            misdirected = preview_url(settings=settings, journalist_id=sport.id, slug="big-news")
            forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
            answers = []
            for bad in (misdirected, forged, link.replace("big-news?", "other?")):
                answer = page.goto(bad)
                answers.append((answer.status, page.content(), {k: v for k, v in answer.headers.items() if k not in ("date", "content-length")}))
            assert {status for status, _, _ in answers} == {400}
            # Nothing tells another journalist's link from a forged one: same page, same headers.
            assert answers[0][1:] == answers[1][1:]
            assert "secret" not in answers[0][1]

            clock[0] = PUBLIC
            publish_once(settings, PUBLIC)
            page.goto(link)
            assert page.url == f"{base}/releases/big-news/"
            assert page.locator("h1").inner_text() == "Big news from the lab"
            assert page.locator(".embargo-band").count() == 0
            browser.close()
    opened = media.opens(release="big-news")
    assert [(journalist.address, times) for journalist, times, _, _ in opened] == [("energy@example.com", 1)]
