"""The archive in headless Chromium over loopback HTTP: phone-width layout, links, images, the form."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urldefrag, urlsplit

import pytest

from tests.conftest import NOW
from tests.site_support import build, serve, write_sample

pytestmark = pytest.mark.browser

SITE_BASE = "https://press.example.org/"


@pytest.fixture
def site(project) -> Iterator[str]:
    write_sample(project)
    # Enough releases for numbered index and topic pages, so pagination links are crawled too.
    for day in range(1, 10):
        project.write_release(
            f"archive-{day}",
            title=f"Archive item {day} with a deliberately long unbroken word Rohstoffversorgungssicherheitsgesetz",
            date=f"2024-05-0{day} 09:00",
            body="A wide table:\n\n| a | b | c | d | e | f |\n|---|---|---|---|---|---|\n"
            + "| " + " | ".join(["averyveryverylongcellvalue"] * 6) + " |\n\n"
            + "https://example.org/" + "x" * 200,
            extra="tags: [Archive]\n",
        )
    build(project, NOW, PRESSROOM_SITE__PAGE_SIZE="3")
    with serve(project.root / "public") as base:
        yield base


def _no_horizontal_scroll(page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[2] and widths[1] <= widths[2], widths


@pytest.mark.parametrize(
    "path",
    ["", "page/2/", "releases/battery-passport-pilot/", "releases/archive-3/", "tags/policy/", "tags/"],
)
def test_no_horizontal_scroll_at_375px(browser, site, path, tmp_path):
    page = browser.new_page(viewport={"width": 375, "height": 812})
    try:
        response = page.goto(site + path)
        assert response is not None and response.status == 200
        _no_horizontal_scroll(page)
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    finally:
        page.close()


def test_release_page_shows_its_hero_and_reads_well_on_desktop(browser, site, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(site + "releases/battery-passport-pilot/")
        _no_horizontal_scroll(page)
        hero = page.locator("figure.hero img")
        assert hero.get_attribute("alt") == "A battery cell with a QR code on a lab bench"
        assert hero.evaluate("img => img.complete && img.naturalWidth") == 1200  # the copied file loads
        # The sidebar with the media contacts sits beside the article at desktop width.
        article, aside = page.locator("article.release").bounding_box(), page.locator("aside").bounding_box()
        assert aside["x"] >= article["x"] + article["width"]
        assert page.locator("aside").inner_text().count("Ana Example") == 1
        assert page.title() == "Battery passport pilot starts in three member states · Test Hub"
        assert page.evaluate("document.scripts.length") == 0
        page.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)
    finally:
        page.close()


def _internal(url: str, origin: str) -> str | None:
    """The loopback URL a link leads to, or None for links that leave the site."""
    if url.startswith(SITE_BASE):
        url = origin + url[len(SITE_BASE):]  # absolute links to the site itself (og:url, permalinks)
    url = urldefrag(url)[0]
    return url if url.startswith(origin) else None


def test_every_internal_link_resolves(browser, site):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen: set[str] = set()
    queue = [site]
    broken: list[str] = []
    pages = 0
    try:
        while queue:
            url = queue.pop()
            if url in seen:
                continue
            seen.add(url)
            path = urlsplit(url).path
            if not (path.endswith(("/", ".html"))):
                try:  # a feed, an image, the stylesheet: it must exist, but is not crawled
                    with urllib.request.urlopen(url) as response:
                        assert response.status == 200
                except urllib.error.HTTPError as exc:
                    broken.append(f"{url}: {exc.code}")
                continue
            response = page.goto(url)
            if response is None or response.status != 200:
                broken.append(f"{url}: {response.status if response else 'no response'}")
                continue
            pages += 1
            hrefs = page.eval_on_selector_all(
                "a[href], link[href], img[src]", "els => els.map(e => e.href || e.src)"
            )
            for href in hrefs:
                target = _internal(href, site)
                if target and target not in seen:
                    queue.append(target)
            # Every eager image has loaded (lazy ones load on scroll; they are fetched over HTTP above).
            unloaded = page.eval_on_selector_all("img:not([loading=lazy])", "imgs => imgs.filter(i => !i.complete || !i.naturalWidth).map(i => i.src)")
            assert unloaded == [], (url, unloaded)
    finally:
        page.close()
    assert broken == []
    # Index pages (front + 3 numbered), release pages, tag pages (Archive's 2 numbered ones too) and
    # the topics page were all reached.
    assert pages >= 4 + 12 + 6 + 1, pages
    assert site + "releases/hub-launch/" in seen and site + "page/3/" in seen


def test_subscribe_form_is_usable_at_phone_width(browser, site):
    page = browser.new_page(viewport={"width": 375, "height": 812})
    try:
        page.goto(site + "releases/hub-launch/")
        form = page.locator("form.subscribe-form")
        page.get_by_label("Email address").fill("reader@example.org")
        page.get_by_label("Name (optional)").fill("Rea Der")
        page.get_by_label("Policy").check()
        page.get_by_label("A weekly digest").check()
        honeypot = page.locator("input[name=website]")
        assert not honeypot.is_visible() or honeypot.bounding_box()["x"] < 0
        data = form.evaluate("f => Array.from(new FormData(f).entries())")
        assert ["email", "reader@example.org"] in data and ["topics", "policy"] in data
        assert ["cadence", "weekly"] in data and ["website", ""] in data
        button = page.get_by_role("button", name="Subscribe").bounding_box()
        assert button["x"] + button["width"] <= 375
    finally:
        page.close()


def test_a_tables_columns_align_as_its_markdown_says(browser, project):
    project.write_release("figures", body=(
        "| Quarter | Revenue (EUR) | Change |\n|:---|---:|:---:|\n| Q1 2024 | 1,200,000 | +4 % |\n"))
    build(project, NOW)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        with serve(project.root / "public") as base:
            page.goto(base + "releases/figures/")
            aligned = page.evaluate("() => [...document.querySelectorAll('.body tr')].map(row => "
                                    "[...row.children].map(cell => getComputedStyle(cell).textAlign))")
    finally:
        page.close()
    assert aligned == [["left", "right", "center"], ["left", "right", "center"]]
