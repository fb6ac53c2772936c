"""Every relative link and picture of README.md and docs/*.md points at a file (and heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def _links(page: Path) -> list[str]:
    text = _INLINE_CODE.sub("", _CODE.sub("", page.read_text(encoding="utf-8")))
    return [target for target in _LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)]


def _anchors(page: Path) -> set[str]:
    """The ids GitHub gives the headings of ``page``: lowercase, punctuation dropped, spaces as hyphens."""
    text = _CODE.sub("", page.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in re.findall(r"^#+\s+(.+)$", text, re.MULTILINE)}


def test_the_guides_are_linked_from_the_readme() -> None:
    assert {"docs/writing.md", "docs/operations.md", "docs/development.md"} <= set(_links(REPO / "README.md"))


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_relative_link_and_picture_exists(page: Path) -> None:
    missing = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            missing.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            missing.append(f"{target}: no heading #{anchor} in {file.name}")
    assert not missing, f"{page.relative_to(REPO)}: " + "; ".join(missing)


def test_the_proxy_example_passes_every_page_of_the_web_app_to_it(project) -> None:
    """An nginx that serves public/ itself must hand the app every path it answers, or those links 404 behind it."""
    from starlette.routing import Route

    from pressroom.web.app import create_app

    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    passed = [re.compile(pattern) for pattern, body in re.findall(r"location ~ (\^\S+) \{([^}]*)\}", text) if "proxy_pass" in body]
    app = create_app(settings=project.settings())
    # the editors' approval pages join through `pressroom serve`'s extra routes
    paths = ["/approval/t"] + [route.path.replace("{token}", "t").replace("{slug}", "s").replace("{name:path}", "f") for route in app.routes if isinstance(route, Route)]
    assert len(paths) > 10
    assert [path for path in paths if not any(pattern.match(path) for pattern in passed)] == []
