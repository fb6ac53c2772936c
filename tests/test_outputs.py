"""Every output kind of the registry (pressroom.outputs) carries the whole release, in every language.

One EU-funded release with three co-issuers, a hero and contacts, in English, German and French; the
German and French versions say only their title, summary and body and inherit the rest. Each kind must
show, in the reader's language: the EU emblem (at least as tall as the tallest co-issuer logo), the
funding statements, the grant numbers, the disclaimer, the co-issuers' logos (their names in text),
the media contacts, and the hero where the kind shows images. A post carries the funding statement.
"""

from __future__ import annotations

import re
import shutil

import lxml.html
import pytest

from pressroom import i18n
from pressroom.outputs import OUTPUT_KINDS, OutputKind
from pressroom.releases import load_releases
from tests.conftest import DATA, REPO, Project
from tests.site_support import png

CASE = DATA / "issuers-three"
DISCLAIMER = (
    "Views and opinions expressed are however those of the author(s) only and do not necessarily reflect those "
    "of the European Union or the granting authority. Neither the European Union nor the granting authority can "
    "be held responsible for them."
)
# The standard statement from the catalogue, SECOND's own per language (its French one as it wrote it;
# German falls back to the catalogue's translation of its English wording).
STATEMENTS = {
    "en": ("Funded by the European Union", "Co-funded by the European Union"),
    "de": ("Finanziert von der Europäischen Union", "Kofinanziert von der Europäischen Union"),
    "fr": ("Financé par l’Union européenne", "Cofinancé par l’Union européenne (projet SECOND)"),
}
GRANTS = ("101000000", "101999999")
CONTACTS = ("ana@example.org", "press@materialsforbatterieshub.eu", "press@example-project.example.eu", "sam@second.example.eu")
ISSUERS = ("Cluster HUB", "EXAMPLE project — fictional", "SECOND test project")
PAGE_LOGOS = ("organisations/cluster-hub.png", "organisations/example-project.png", "organisations/second-project.svg")
# Emails show an SVG logo through its PNG twin.
EMAIL_LOGOS = ("organisations/cluster-hub.png", "organisations/example-project.png", "organisations/second-project-96h.png")
HERO_ALT = "The pilot line in the hall"
# Blocks that paper keeps: the print stylesheet must not hide them.
PRINTED = ("hero", "about", "issuers", "eu-funding", "contacts")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    project = Project(tmp_path_factory.mktemp("outputs"))
    organisations = project.root / "content" / "organisations"
    shutil.copytree(REPO / "content" / "organisations", organisations)
    for file in (CASE / "organisations").iterdir():
        shutil.copy(file, organisations / file.name)
    second = organisations / "second-project.yaml"
    second.write_text(second.read_text(encoding="utf-8").replace(
        "  statement: Co-funded by the European Union",
        "  statement:\n    en: Co-funded by the European Union\n    fr: Cofinancé par l’Union européenne (projet SECOND)",
    ), encoding="utf-8")
    folder = project.releases / "three-projects"
    folder.mkdir()
    (folder / "hall.png").write_bytes(png(800, 400))
    (folder / "index.md").write_text((CASE / "release.md").read_text(encoding="utf-8").replace(
        "issuers:", f"hero: {{src: hall.png, alt: {HERO_ALT}}}\nissuers:"), encoding="utf-8")
    shutil.copy(CASE / "release.de.md", folder / "index.de.md")
    (folder / "index.fr.md").write_text(
        "---\ntitle: Trois projets ouvrent une ligne pilote commune\n"
        "summary: Le Cluster HUB, EXAMPLE et SECOND ouvrent une ligne pilote de recyclage.\n---\n\n"
        "La ligne pilote **ouvre aujourd’hui**.\n", encoding="utf-8")
    settings = project.settings(PRESSROOM_SITE__LANGUAGES='["en", "de", "fr"]')
    result = load_releases(settings)
    assert not result.problems, [str(problem) for problem in result.problems]
    return settings, result.releases[0]


def words(text: str) -> str:
    return " ".join(text.split())


def _images(html: str) -> list[lxml.html.HtmlElement]:
    return lxml.html.fromstring(html).xpath("//img")


def _check_html(kind: OutputKind, html: str, language: str) -> list[str]:
    missing = []
    shown = words(lxml.html.fromstring(html).text_content())
    images = _images(html)
    emblems = [img for img in images if "eu-emblem" in img.get("src", "")]
    logos = PAGE_LOGOS if kind.medium in ("page", "print") else EMAIL_LOGOS
    found = [img for img in images if any(logo in img.get("src", "") for logo in logos)]
    if not emblems:
        missing.append("EU emblem")
    for logo in logos:
        if not any(logo in img.get("src", "") for img in found):
            missing.append(f"logo {logo}")
    if emblems and found and int(emblems[0].get("height")) < max(int(img.get("height")) for img in found):
        missing.append("an emblem at least as tall as the logos")
    if kind.hero and not any(img.get("alt") == HERO_ALT for img in images):
        missing.append("hero")
    return missing + _check_text(shown, language, names=False)


def _check_text(text: str, language: str, *, names: bool = True) -> list[str]:
    text = words(text)
    disclaimer = words(i18n.translations(language=language, settings=None).gettext(DISCLAIMER))
    wanted = [*STATEMENTS[language], *GRANTS, disclaimer, *CONTACTS, *(ISSUERS if names else ())]
    return [item for item in wanted if item not in text]


def _print_hides(stylesheet: str) -> set[str]:
    """The classes the print stylesheet hides."""
    hidden: set[str] = set()
    for body in re.findall(r"@media print\s*{(.*?)\n}", stylesheet, re.DOTALL):
        for selectors, rules in re.findall(r"([^{}]+){([^{}]*)}", body):
            if re.search(r"display:\s*none", rules):
                hidden |= set(re.findall(r"\.([\w-]+)", selectors))
    return hidden


@pytest.mark.parametrize("language", ["en", "de", "fr"])
@pytest.mark.parametrize("kind", OUTPUT_KINDS, ids=lambda kind: kind.name)
def test_every_output_kind_carries_the_whole_release_in_the_readers_language(release, kind: OutputKind, language: str) -> None:
    settings, main = release
    rendered = kind.render(main, language, settings)
    if kind.medium == "post":
        missing = [statement for statement in STATEMENTS[language] if statement not in rendered.text]
    elif kind.medium == "kit":
        missing = _check_text(rendered.text, language)
        missing += [f"file {name}" for name in ("cluster-hub.png", "example-project.png", "second-project.svg", "eu-emblem.png")
                    if f"three-projects/logos/{name}" not in rendered.files]
    else:
        missing = _check_html(kind, rendered.html, language)
        if kind.medium == "email":
            missing += [f"text part: {item}" for item in _check_text(rendered.text, language)]
        if kind.medium == "print":
            stylesheet = (REPO / "templates" / "site" / "static" / "style.css").read_text(encoding="utf-8")
            missing += [f"printed .{name}" for name in sorted(_print_hides(stylesheet) & set(PRINTED))]
    assert not missing, f"{kind.name} ({language}) lacks: {', '.join(missing)}"


def test_a_german_version_that_says_only_its_own_words_still_says_them(release) -> None:
    settings, main = release
    page = next(kind for kind in OUTPUT_KINDS if kind.name == "public page").render(main, "de", settings).html
    assert "Drei Projekte eröffnen eine gemeinsame Recycling-Pilotanlage" in page
    assert "Die Pilotlinie" in page and "The pilot line" not in words(lxml.html.fromstring(page).xpath("//div[@class='body']")[0].text_content())


def test_the_journalists_preview_page_passes_the_nu_html_checker(release, tmp_path) -> None:
    from tests.test_standards import nu_errors

    settings, main = release
    preview = next(kind for kind in OUTPUT_KINDS if kind.name == "journalists' preview page")
    pages = []
    for language in ("en", "de"):
        page = tmp_path / f"preview.{language}.html"
        page.write_text(preview.render(main, language, settings).html, encoding="utf-8")
        pages.append(page)
    assert nu_errors(pages) == []
