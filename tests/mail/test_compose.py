"""Composition details: brand, UTM links, colours from any brand colour, template errors, text twin."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given, strategies as st

from pressroom.errors import TemplateError
from pressroom.mail import compose_release
from pressroom.mail.style import contrast_ratio, palette
from pressroom.releases import load_releases
from pressroom.text import html_to_text
from tests.conftest import REPO


def one_release(project, **env):
    settings = project.settings(**env)
    (release,) = load_releases(settings).releases
    return settings, release


def test_utm_parameters_only_on_links_into_the_site(project) -> None:
    project.write_release(
        "utm",
        body="See [our report](/reports/r.pdf?lang=en), [a partner](https://partner.example.com/x) and [mail](mailto:a@example.org).",
    )
    settings, release = one_release(project, PRESSROOM_EMAIL__UTM="true", PRESSROOM_EMAIL__UTM_SOURCE="press list")
    html = compose_release(release=release, settings=settings).html
    assert 'href="https://press.example.org/reports/r.pdf?lang=en&amp;utm_source=press+list&amp;utm_medium=email&amp;utm_campaign=utm"' in html
    assert 'href="https://press.example.org/releases/utm/?utm_source=press+list&amp;utm_medium=email&amp;utm_campaign=utm"' in html
    assert 'href="https://partner.example.com/x"' in html and 'href="mailto:a@example.org"' in html
    # Personal links never carry tracking parameters.
    assert html.count('href="https://press.example.org/"') == 2  # preferences and unsubscribe slots
    settings, release = one_release(project)
    assert "utm_" not in compose_release(release=release, settings=settings).html


def test_logo_is_an_absolute_image_with_the_site_name_as_alt(project) -> None:
    project.write_release("logo")
    settings, release = one_release(project, PRESSROOM_SITE__LOGO="/assets/logo.png")
    html = compose_release(release=release, settings=settings).html
    assert 'src="https://press.example.org/assets/logo.png"' in html and 'alt="Test Hub"' in html


@given(st.from_regex(r"#[0-9a-f]{6}", fullmatch=True))
def test_any_brand_colour_gives_readable_text_in_light_and_dark_mode(brand: str) -> None:
    colors = palette(brand)
    assert contrast_ratio(colors["accent"], colors["card"]) >= 4.5  # links and headings on white
    assert contrast_ratio(colors["on_accent"], colors["accent"]) >= 4.5  # button label
    assert contrast_ratio(colors["dark_accent"], colors["dark_card"]) >= 4.5
    assert contrast_ratio(colors["dark_page"], colors["dark_accent"]) >= 4.5  # dark-mode button label
    for text, background in [("text", "card"), ("muted", "card"), ("muted", "page"), ("dark_text", "dark_card"), ("dark_muted", "dark_page")]:
        assert contrast_ratio(colors[text], colors[background]) >= 4.5, (text, background)


def test_a_broken_template_names_the_file_and_line(project) -> None:
    project.write_release("broken")
    (project.root / "templates").unlink()  # the fixture links the repo's templates; use a copy here
    shutil.copytree(REPO / "templates", project.root / "templates")
    (project.root / "templates" / "email" / "release.txt.j2").write_text("line one\n{{ release.title \n", encoding="utf-8")
    settings, release = one_release(project)
    with pytest.raises(TemplateError, match=r"templates/email/release\.txt\.j2 line 2"):
        compose_release(release=release, settings=settings)


def test_project_templates_override_the_shipped_ones(project) -> None:
    (project.root / "templates").unlink()
    shutil.copytree(REPO / "templates", project.root / "templates")
    footer = project.root / "templates" / "email" / "_footer.txt.j2"
    footer.write_text(footer.read_text(encoding="utf-8").replace("-- ", "-- \nOur own footer."), encoding="utf-8")
    project.write_release("override")
    settings, release = one_release(project)
    assert "Our own footer." in compose_release(release=release, settings=settings).text


def test_an_email_template_edited_in_a_running_process_is_used_for_the_next_email(project) -> None:
    (project.root / "templates").unlink()
    shutil.copytree(REPO / "templates", project.root / "templates")
    project.write_release("edited")
    settings, release = one_release(project)
    assert "Edited footer." not in compose_release(release=release, settings=settings).text
    footer = project.root / "templates" / "email" / "_footer.txt.j2"
    footer.write_text(footer.read_text(encoding="utf-8").replace("-- ", "-- \nEdited footer."), encoding="utf-8")
    assert "Edited footer." in compose_release(release=release, settings=settings).text


def test_text_twin_of_html() -> None:
    html = (
        "<h2>Reach us</h2><p>Visit <a href=\"https://x.org/a\">our site</a> or "
        "<a href=\"https://x.org\">x.org</a>.</p><ol><li>first</li><li>second</li></ol>"
        "<blockquote><p>Quoted words.</p></blockquote><p>a &amp; b</p>"
    )
    assert html_to_text(html) == (
        "REACH US\n\nVisit our site <https://x.org/a> or x.org.\n\n1. first\n2. second\n\n> Quoted words.\n\na & b"
    )
