"""Golden files: one release beside its RSS item, Atom entry, JSON Feed item and page head.

Regenerate after an intended change with ``REGEN_GOLDEN=1 pytest tests/site/test_golden.py``
and review the diff like any other change. Nothing here is volatile: the clock is fixed.
"""

from __future__ import annotations

import json

import lxml.html
from lxml import etree

from tests.conftest import DATA, NOW
from tests.golden import assert_golden
from tests.site_support import build, write_sample

CASE = DATA / "site-sample"


def _outputs(public) -> dict[str, str]:
    rss = etree.fromstring((public / "feed.xml").read_bytes()).find("channel/item")
    atom = etree.fromstring((public / "atom.xml").read_bytes()).find("{http://www.w3.org/2005/Atom}entry")
    item = json.loads((public / "feed.json").read_bytes())["items"][0]
    page = lxml.html.fromstring((public / "releases" / "battery-passport-pilot" / "index.html").read_bytes())
    head = [
        etree.tostring(element, encoding="unicode", with_tail=False)
        for element in page.head
        if element.tag in {"meta", "link", "title"} and element.get("rel") != "stylesheet"
    ]
    return {
        "rss-item.xml": etree.tostring(rss, encoding="unicode", with_tail=False) + "\n",
        "atom-entry.xml": etree.tostring(atom, encoding="unicode", with_tail=False) + "\n",
        "json-item.json": json.dumps(item, ensure_ascii=False, indent=1) + "\n",
        "page-head.html": "\n".join(head) + "\n",
    }


def test_feed_items_and_page_head_match_golden_files(project):
    write_sample(project)
    build(project, NOW)
    # The input is kept beside the outputs so a reader sees what produced them; it must still be what the test writes.
    release = (project.releases / "battery-passport-pilot" / "index.md").read_text(encoding="utf-8")
    assert_golden(CASE, {"release.md": release, **_outputs(project.root / "public")})
