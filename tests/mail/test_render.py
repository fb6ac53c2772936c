"""The emails in Debian's headless Chromium: phone and desktop layout, contrast, accessibility."""

from __future__ import annotations

from pathlib import Path

import pytest

from pressroom.mail.compose import contrast_ratio
from pressroom.mail.preview import CHROMIUM
from tests.mail_support import READER, SAMPLE_SLUG, sample_emails

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="scripts/system-deps installs chromium"),
]

# Every visible text node: its colour and the first opaque background behind it.
TEXT_COLOURS = """
() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const rgb = (value) => (value.match(/[\\d.]+/g) || []).map(Number);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const text = node.textContent.trim();
    if (!text) continue;
    const element = node.parentElement;
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    if (!box.width || !box.height || style.visibility === 'hidden' || style.opacity === '0') continue;
    let background = null;
    for (let el = element; el; el = el.parentElement) {
      const bg = rgb(getComputedStyle(el).backgroundColor);
      if (bg.length === 3 || (bg.length === 4 && bg[3] > 0.99)) { background = bg.slice(0, 3); break; }
    }
    out.push({text: text.slice(0, 40), color: rgb(style.color).slice(0, 3), background: background || [255, 255, 255]});
  }
  return out;
}
"""


def hex_of(rgb: list[float]) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


@pytest.fixture
def emails(project):
    return sample_emails(project)


def open_email(browser, html: str, *, width: int, scheme: str = "light", images: bool = True):
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    # Never the network: image URLs point at the public site; answer them with a tiny real PNG or refuse.
    png = (Path(__file__).resolve().parents[2] / "content" / "releases" / SAMPLE_SLUG / "hero.png").read_bytes()
    page.route("**/*", lambda route, request: route.fulfill(body=png, content_type="image/png") if images and request.resource_type == "image" else route.abort())
    page.set_content(html, wait_until="load")
    return page


@pytest.mark.parametrize("kind", ["release", "digest"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_horizontal_scroll_on_a_phone(browser, emails, kind, scheme) -> None:
    page = open_email(browser, emails[kind].html, width=375, scheme=scheme)
    scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
    page.close()
    assert scroll_width <= 375


@pytest.mark.parametrize("kind", ["release", "digest"])
def test_columns_sit_side_by_side_at_600px_and_stack_at_375px(browser, emails, kind) -> None:
    boxes = {}
    for width in (375, 600):
        page = open_email(browser, emails[kind].html, width=width)
        # The brand header: site name column and "Press release / date" column.
        boxes[width] = page.evaluate(
            "() => [...document.querySelectorAll('.pr-card')[0].querySelectorAll('.mj-outlook-group-fix')]"
            ".map(c => { const b = c.getBoundingClientRect(); return [b.left, b.top, b.width, b.bottom]; })"
        )
        page.close()
    (left, right) = boxes[600]
    assert right[0] > left[0] and abs(right[1] - left[1]) < 30 and left[2] < 400, "desktop: two columns in a row"
    (left, right) = boxes[375]
    assert right[1] >= left[3] - 1 and left[2] == right[2], "phone: the columns stack at full width"


@pytest.mark.parametrize("kind", ["release", "digest"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_has_at_least_4_5_to_1_contrast(browser, emails, kind, scheme) -> None:
    page = open_email(browser, emails[kind].html, width=600, scheme=scheme)
    samples = page.evaluate(TEXT_COLOURS)
    page.close()
    assert len(samples) >= 15, "the walk found the text"
    low = [
        (s["text"], hex_of(s["color"]), hex_of(s["background"]), round(contrast_ratio(hex_of(s["color"]), hex_of(s["background"])), 2))
        for s in samples
        if contrast_ratio(hex_of(s["color"]), hex_of(s["background"])) < 4.5
    ]
    assert not low, low


def test_dark_mode_really_changes_the_colours(browser, emails) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        page = open_email(browser, emails["release"].html, width=600, scheme=scheme)
        colours[scheme] = page.evaluate("getComputedStyle(document.querySelector('.pr-card')).backgroundColor")
        page.close()
    assert colours["light"] == "rgb(255, 255, 255)" and colours["dark"] != colours["light"]


@pytest.mark.parametrize("kind", ["release", "digest"])
def test_accessibility_basics(browser, emails, kind) -> None:
    page = open_email(browser, emails[kind].html, width=600)
    facts = page.evaluate(
        """() => ({
          lang: document.documentElement.lang,
          title: document.title,
          images: [...document.images].map(i => i.getAttribute('alt')),
          tables: [...document.querySelectorAll('table')].map(t => t.getAttribute('role')),
          headings: [...document.querySelectorAll('h1')].map(h => h.textContent.trim()),
          links: [...document.links].map(a => a.textContent.trim() || [...a.querySelectorAll('img')].map(i => i.alt).join(' ')),
        })"""
    )
    page.close()
    assert facts["lang"] == "en" and facts["title"] == emails[kind].subject
    assert facts["images"] and all(alt and alt.strip() for alt in facts["images"])
    assert facts["tables"] and set(facts["tables"]) == {"presentation"}
    assert len(facts["headings"]) == 1
    assert all(facts["links"]), "every link has a label (its text or its image's alt)"
    assert {"View in browser", "Preferences", "Unsubscribe"} <= set(facts["links"])


def test_readable_with_images_off(browser, emails) -> None:
    page = open_email(browser, emails["release"].html, width=375, images=False)
    text = page.evaluate("document.body.innerText")
    page.close()
    for expected in ("International Day of Friendship: the Cluster HUB", "Read the release online", "MEDIA CONTACTS", "Unsubscribe"):
        assert expected in text


def test_the_personalised_html_renders_the_recipients_links(browser, emails) -> None:
    import email as email_module
    import email.policy

    msg = email_module.message_from_bytes(emails["release"].message(READER), policy=email.policy.default)
    page = open_email(browser, msg.get_body(("html",)).get_content(), width=600)
    hrefs = page.evaluate("() => Object.fromEntries([...document.links].map(a => [a.textContent.trim(), a.href]))")
    greeting = page.evaluate("document.body.innerText.includes('Hello Zoë Martin,')")
    page.close()
    assert hrefs["Unsubscribe"] == READER.unsubscribe_url and hrefs["Preferences"] == READER.preferences_url
    assert greeting


def test_long_words_wide_tables_and_big_images_never_widen_the_phone_view(browser, project) -> None:
    from pressroom.mail import compose_release
    from pressroom.releases import load_releases

    body = (
        "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3 + "\n\n"
        "https://www.example.org/a/very/long/path/" + "segment/" * 20 + "\n\n"
        "| " + " | ".join(f"column {i}" for i in range(12)) + " |\n|" + "---|" * 12 + "\n"
        "| " + " | ".join(f"value-{i}-0000000" for i in range(12)) + " |\n\n"
        "![A wide chart](https://press.example.org/wide.png)\n"
    )
    project.write_release("wide", title="W" * 80, body=body)
    settings = project.settings()
    (release,) = load_releases(settings).releases
    page = open_email(browser, compose_release(release=release, settings=settings).html, width=375)
    scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
    page.close()
    assert scroll_width <= 375


# Every word of every table cell, and how many line boxes it takes (2 or more: the word was split).
CELL_WORDS = """
() => [...new Set([...document.querySelectorAll('th')].map(th => th.closest('table')))]
  .flatMap(table => [...table.querySelectorAll(':scope > thead > tr > th, :scope > tbody > tr > td')]).flatMap(cell => {
  const style = getComputedStyle(cell);
  const words = [];
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    for (const match of node.textContent.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const lines = new Set([...range.getClientRects()].map(rect => Math.round(rect.top)));
      words.push({word: match[0], lines: lines.size, align: style.textAlign, rule: style.borderBottomWidth});
    }
  }
  return words;
})
"""

TABLE_RELEASE = """The results by quarter:

| Quarter | Revenue (EUR) | Recovered lithium | Change | Partners |
|:--------|--------------:|------------------:|:------:|----------|
| Q1 2023 | 1,200,000 | 12.5 tonnes | +4 % | Ghent, Lyon |
| Q2 2023 | 980,000 | 9.75 tonnes | −18 % | Ghent |
| Q3 2023 | 2,450,000 | 21.0 tonnes | +150 % | Ghent, Lyon, Porto |

![A chart of the quarterly figures](chart.png)
"""


@pytest.mark.parametrize("width", [375, 600])
def test_a_table_reads_whole_words_with_rules_and_alignment(browser, project, width) -> None:
    from pressroom.mail import compose_release
    from pressroom.releases import load_releases

    project.write_release("figures", body=TABLE_RELEASE, bundle=True)
    (project.releases / "figures" / "chart.png").write_bytes(
        (Path(__file__).resolve().parents[2] / "content" / "releases" / SAMPLE_SLUG / "hero.png").read_bytes()
    )
    settings = project.settings()
    (release,) = load_releases(settings).releases
    page = open_email(browser, compose_release(release=release, settings=settings).html, width=width)
    words = page.evaluate(CELL_WORDS)
    scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
    page.close()
    assert len(words) >= 30
    assert [w["word"] for w in words if w["lines"] > 1] == []  # no word split across lines
    assert scroll_width <= width  # the table scrolls in its own box, the email does not
    by_word = {w["word"]: w for w in words}
    assert by_word["2,450,000"]["align"] == "right" and by_word["Quarter"]["align"] == "left"
    assert by_word["+150"]["align"] == "center"
    assert all(float(w["rule"].removesuffix("px")) >= 1 for w in words)  # a rule under every row


def test_every_image_has_a_width_and_no_height_auto(emails, project) -> None:
    import re

    from pressroom.mail import compose_release
    from pressroom.releases import load_releases

    project.write_release("chart", body="![A chart](https://press.example.org/chart.png)\n")
    settings = project.settings()
    chart = next(r for r in load_releases(settings).releases if r.slug == "chart")
    for html in (emails["release"].html, emails["digest"].html, compose_release(release=chart, settings=settings).html):
        images = re.findall(r"<img\b[^>]*>", html)
        assert images
        for image in images:
            assert re.search(r'\swidth="\d+"', image), image
            assert 'height="auto"' not in image, image
