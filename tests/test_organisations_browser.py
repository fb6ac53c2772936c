"""The EU acknowledgement and the co-issuers' logos as readers see them, in headless Chromium.

On the page (served over loopback, printed too) and in the email (its own logo and emblem files
answered from disk), at 375 and 600 px: the emblem is visible and at least as tall as every
other logo, and the funding statement, each grant and the disclaimer are on screen.
"""

from __future__ import annotations

import pytest

from pressroom.mail import compose_release
from pressroom.mail.preview import local_assets
from tests.conftest import NOW
from tests.site_support import build, serve
from tests.test_organisations import DISCLAIMER, three_issuers

pytestmark = pytest.mark.browser

# Every logo and the emblem: loaded (not a broken image), drawn, and their rendered heights.
MEASURE = """(selectors) => selectors.map(([selector, all]) => [...document.querySelectorAll(selector)].map(img => {
  const box = img.getBoundingClientRect();
  const style = getComputedStyle(img);
  return {src: img.currentSrc, loaded: img.complete && img.naturalWidth > 0, height: box.height, width: box.width,
          right: box.right, shown: style.visibility !== "hidden" && style.display !== "none" && box.height > 0};
}))"""


def _check(page, *, width: int, emblem: str, logos: str) -> None:
    [emblems, others] = page.evaluate(MEASURE, [[emblem, True], [logos, True]])
    assert len(emblems) == 1 and len(others) == 3, (emblems, others)
    for image in emblems + others:
        assert image["loaded"] and image["shown"], image
        assert image["right"] <= width + 0.5, image  # nothing runs off a phone's screen
    assert emblems[0]["height"] >= max(image["height"] for image in others), (emblems, others)
    assert emblems[0]["width"] >= emblems[0]["height"] * 1.4  # drawn 3:2, not squeezed
    text = " ".join(page.inner_text("body").split())
    for words in (
        "Funded by the European Union",
        "EXAMPLE: Horizon Europe, grant agreement No 101000000",
        "SECOND: Horizon Europe, grant agreement No 101999999",
        DISCLAIMER,
    ):
        assert words in text, words
    assert "projects involved" in text.lower()  # the heading is set in capitals


@pytest.mark.parametrize("width", [375, 600])
def test_the_page_shows_the_emblem_at_least_as_tall_as_the_logos_on_screen_and_in_print(browser, project, width):
    three_issuers(project)
    build(project, NOW)
    with serve(project.root / "public") as base:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{base}releases/three-projects/", wait_until="load")
        _check(page, width=width, emblem=".eu-funding img", logos=".issuers img")
        page.emulate_media(media="print")
        _check(page, width=width, emblem=".eu-funding img", logos=".issuers img")
        page.close()


@pytest.mark.parametrize("width", [375, 600])
def test_the_email_shows_the_emblem_at_least_as_tall_as_the_logos(browser, project, width):
    settings, release = three_issuers(project)
    html = compose_release(release=release, settings=settings).html
    assets = local_assets(settings=settings, releases=[release])
    page = browser.new_page(viewport={"width": width, "height": 900})
    # Never the network: the logos and the emblem are answered from their files, anything else refused.
    page.route("**/*", lambda route, request: route.fulfill(path=str(assets[request.url])) if request.url in assets else route.abort())
    page.set_content(html, wait_until="load")
    _check(page, width=width, emblem='img[src$="/static/eu-emblem.png"]', logos='img[src*="/organisations/"]')
    page.close()
