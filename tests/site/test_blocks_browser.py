"""The release's blocks in headless Chromium: the journalist's preview page beside the public page (one
layout), the embargoed email at 375 and 600 px and in dark mode, the language switcher through axe-core.

Real parts on loopback: uvicorn serving the app, Debian's Chromium driven by Playwright, axe-core from npm
(scripts/system-deps caches it outside the checkout). Screenshots go to $PRESSROOM_SHOTS (default:
/work/coord/shots when it exists, else the test's temporary folder) for people to look at.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pressroom.audience import MediaList, preview_url
from pressroom.mail import compose_embargo
from pressroom.mail.preview import CHROMIUM, CHROMIUM_ARGS, local_assets
from pressroom.releases import load_releases
from pressroom.site import build_site
from tests._delivery import free_port, serving
from tests.conftest import DATA, REPO, Project
from tests.embargo_support import publish_once, seed
from tests.site_support import png, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTIFIED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PUBLIC = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
# The blocks whose place must be the same on both pages (the band above shifts everything down alike).
BLOCKS = (".release", ".release-aside", ".hero img", ".contacts", ".downloads", ".issuers", ".eu-funding")


def _axe_script() -> Path:
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    default = Path("/var/cache/pressroom-axe") if os.getuid() == 0 else home / "pressroom-axe"
    script = Path(os.environ.get("PRESSROOM_AXE_DIR", default)) / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        pytest.fail(f"{script} is missing: run scripts/system-deps (it installs axe-core from npm)")
    return script


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PRESSROOM_SHOTS", "/work/coord/shots"))
    return folder if folder.is_dir() else tmp_path


def _project(tmp_path: Path, base: str) -> Project:
    project = Project(tmp_path, textwrap.dedent(f"""
        [site]
        name = "Test Hub"
        base_url = "{base}"
        timezone = "Europe/Brussels"
        languages = ["en", "de"]

        [email]
        sender = "press@example.org"
        """))
    organisations = project.root / "content" / "organisations"
    shutil.copytree(REPO / "content" / "organisations", organisations)
    for file in (DATA / "issuers-three" / "organisations").iterdir():
        shutil.copy(file, organisations / file.name)
    folder = project.releases / "three-projects"
    folder.mkdir()
    (folder / "hall.png").write_bytes(png(1200, 600))
    (folder / "statement.pdf").write_bytes(b"%PDF-1.4 the statement")
    release = (DATA / "issuers-three" / "release.md").read_text(encoding="utf-8")
    (folder / "index.md").write_text(release.replace("date: 2024-07-31 10:00", "date: 2026-12-10 10:00").replace(
        "issuers:", "embargo: {notify: 10d}\nhero: {src: hall.png, alt: The pilot line}\n"
                    "downloads: [{file: statement.pdf, title: The statement}]\ntags: [Energy]\nissuers:"), encoding="utf-8")
    shutil.copy(DATA / "issuers-three" / "release.de.md", folder / "index.de.md")
    return project


def _boxes(page, selectors: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Left edge and width of each block: where it sits across the page."""
    return {s: tuple(round(v) for v in page.locator(s).first.evaluate("e => [e.getBoundingClientRect().left, e.getBoundingClientRect().width]"))
            for s in selectors}


def test_the_preview_page_is_the_public_page_with_the_embargo_band(tmp_path) -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from pressroom.web import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    project = _project(tmp_path, base)
    settings = project.settings()
    seed(settings, NOTIFIED)
    publish_once(settings, NOTIFIED)
    energy = MediaList.from_settings(settings).get(address="everything@example.com")
    link = preview_url(settings=settings, journalist_id=energy.id, slug="three-projects")
    clock = [NOTIFIED]
    shots = _shots(tmp_path)
    server = uvicorn.Server(uvicorn.Config(create_app(settings=settings, clock=lambda: clock[0]), host="127.0.0.1", port=port,
                                           log_level="warning"))
    with serving(server), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        response = page.goto(link)
        assert response.status == 200 and response.headers["cache-control"] == "private, no-store"
        assert "noindex" in page.locator('meta[name="robots"]').get_attribute("content")
        assert page.locator('meta[property="og:title"], meta[name="twitter:card"]').count() == 0  # no card if shared
        assert "Evi Every" in page.locator(".embargo-band").inner_text()
        assert page.locator(".eu-funding .eu-emblem").is_visible()
        logos = page.locator(".issuer-logo")
        assert [logos.nth(i).evaluate("img => img.naturalWidth > 0") for i in range(logos.count())] == [True] * 3
        assert page.locator(".hero img").evaluate("img => img.naturalWidth") == 1200  # through the preview link
        preview = _boxes(page, BLOCKS)
        page.screenshot(path=str(shots / "preview-page.png"), full_page=True)

        clock[0] = PUBLIC
        publish_once(settings, PUBLIC)
        page.goto(f"{base}/releases/three-projects/")
        assert page.locator(".embargo-band").count() == 0
        assert _boxes(page, BLOCKS) == preview
        page.screenshot(path=str(shots / "public-page.png"), full_page=True)
        browser.close()


@pytest.mark.parametrize("brand", ["#0b5d7a", "#ffd700"])  # the default, and a light brand colour white cannot be read on
def test_the_language_switcher_and_the_release_page_pass_axe_with_no_serious_violation(tmp_path, brand: str) -> None:
    from playwright.sync_api import sync_playwright

    project = _project(tmp_path, "https://press.example.org")
    settings = project.settings(PRESSROOM_SITE__BRAND_COLOR=brand)
    build_site(settings=settings, releases=load_releases(settings).releases, now=PUBLIC)
    with serve(settings.path("public")) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for path in ("releases/three-projects/", "de/releases/three-projects/", ""):
            page.goto(f"{url}/{path}")
            assert page.locator(".language-switcher a").count() == 1
            page.add_script_tag(path=str(_axe_script()))
            result = page.evaluate("""() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})""")
            assert "color-contrast" in {rule["id"] for rule in [*result["passes"], *result["violations"]]}
            serious = [(v["id"], [n["target"] for n in v["nodes"]]) for v in result["violations"]
                       if v["impact"] in ("serious", "critical")]
            assert serious == [], (path, serious)
        browser.close()


def test_the_embargoed_email_keeps_its_date_whole_at_375_and_600_px_and_its_logos_on_plates_in_dark_mode(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    project = _project(tmp_path, "https://press.example.org")
    settings = project.settings()
    release = load_releases(settings).releases[0]
    html = compose_embargo(release=release, settings=settings).html
    assets = local_assets(settings=settings, releases=[release])
    shots = _shots(tmp_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for width, scheme in ((375, "light"), (600, "light"), (600, "dark")):
            page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
            page.route("**/*", lambda route, request: route.fulfill(path=str(assets[request.url]))
                       if request.url in assets else route.abort())
            page.set_content(html, wait_until="load")
            parts = page.locator('.pr-embargo span[style*="nowrap"]')
            assert parts.count() == 2
            band = page.locator(".pr-embargo").evaluate("e => e.getBoundingClientRect().right")
            for index in range(2):  # each part on one line, and inside the band
                rects = parts.nth(index).evaluate("e => Array.from(e.getClientRects()).map(r => r.right)")
                assert len(rects) == 1 and rects[0] <= band, (width, index)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            plates = page.locator(".pr-plate")
            assert plates.count() == 3
            assert {plates.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in range(3)} == {"rgb(255, 255, 255)"}
            if scheme == "dark":
                card = page.locator(".pr-card td").first.evaluate("e => getComputedStyle(e).backgroundColor")
                assert card != "rgb(255, 255, 255)"
            name = f"embargo-email-{width}{'-dark' if scheme == 'dark' else ''}.png"
            page.screenshot(path=str(shots / name), full_page=True)
            page.close()
        browser.close()
