"""Pictures that hold (issue 22 item 5), outside the browser: an organisation without a logo, SVG logos in
email as PNG twins, an embargoed email's date kept whole, the light plate and dark logos of email."""

from __future__ import annotations

import lxml.html

from pressroom import images
from pressroom.mail import compose_embargo, compose_release
from pressroom.releases import load_releases
from pressroom.social.compose import Limits, compose_post
from tests.conftest import NOW, REPO, Project
from tests.site_support import build
from tests.test_organisations import check_lines, organisation, three_issuers


def test_an_organisation_without_a_logo_is_named_in_text_and_check_warns(tmp_path) -> None:
    project = Project(tmp_path)
    organisation(project, "plain-project", """\
        name: Plain Project
        website: https://plain.example.eu
        """, logo=None)
    project.write_release("r", title="A release with a plain partner", extra="issuers: [plain-project]\n")
    lines = check_lines(project)
    assert any("issuer 'plain-project' has no logo: pages and emails show its name as text" in line for line in lines), lines
    assert any(line.endswith("1 of 1 releases valid") for line in lines), lines
    build(project, NOW)
    page = lxml.html.fromstring((project.root / "public" / "releases" / "r" / "index.html").read_bytes())
    assert [span.text_content() for span in page.xpath('//ul[@class="issuer-logos"]//span[@class="issuer-name"]')] == ["Plain Project"]
    html = compose_release(release=load_releases(project.settings()).releases[0], settings=project.settings()).html
    assert "Plain Project</span>" in html


def test_an_svg_logo_goes_into_email_as_its_png_twin_drawn_at_twice_its_size(tmp_path) -> None:
    project = Project(tmp_path)
    settings, release = three_issuers(project)
    html = compose_release(release=release, settings=settings).html
    logos = {img.get("src"): img for img in lxml.html.fromstring(html).xpath("//img") if "/organisations/" in img.get("src")}
    assert "https://press.example.org/organisations/second-project-96h.png" in logos
    assert not any(src.endswith(".svg") for src in logos)
    twin = logos["https://press.example.org/organisations/second-project-96h.png"]
    assert (twin.get("width"), twin.get("height")) == (str(images.width_at(release.issuers[2].logo, 48)), "48")
    build(project, NOW, PRESSROOM_SITE__LANGUAGES='["en", "de"]')
    written = project.root / "public" / "organisations" / "second-project-96h.png"
    assert images.header_size(written) == (images.width_at(release.issuers[2].logo, 96), 96)


def test_every_co_issuer_logo_in_email_sits_on_a_light_plate_and_a_dark_logo_replaces_it_in_dark_mode(tmp_path) -> None:
    project = Project(tmp_path)
    organisations = project.root / "content" / "organisations"
    organisation(project, "dark-project", """\
        name: Dark Project
        logo: logo.png
        logo_dark: logo-dark.png
        website: https://dark.example.eu
        """)
    (organisations / "logo-dark.png").write_bytes((REPO / "content" / "organisations" / "example-project.png").read_bytes())
    project.write_release("r", extra="issuers: [dark-project]\n")
    release = load_releases(project.settings()).releases[0]
    page = lxml.html.fromstring(compose_release(release=release, settings=project.settings()).html)
    plate = page.xpath('//span[contains(@class, "pr-plate")]')[0]
    assert "background-color:#ffffff" in plate.get("style")
    assert page.xpath('//span[@class="pr-dark-logo"]/img')[0].get("src") == "https://press.example.org/organisations/logo-dark.png"
    build(project, NOW)
    assert (project.root / "public" / "organisations" / "logo-dark.png").is_file()


def test_the_embargoed_emails_date_breaks_only_between_its_parts(tmp_path) -> None:
    project = Project(tmp_path)
    project.write_release("r", title="Embargoed", date="2026-12-10 10:00", extra="embargo: {notify: 48h}\n")
    settings = project.settings()
    html = compose_embargo(release=load_releases(settings).releases[0], settings=settings).html
    band = lxml.html.fromstring(html).xpath('//*[contains(@class, "pr-embargo")]//div')[0]
    assert [span.text_content() for span in band.xpath('.//span[contains(@style, "white-space:nowrap")]')] == [
        "10 December 2026", "10:00 CET (09:00 UTC)"
    ]
    header = lxml.html.fromstring(html).xpath('//*[contains(@class, "pr-label")]')[0].text_content()
    assert "December" not in header  # the header says whom it is for; the date is in the band alone


def test_a_post_too_short_for_the_funding_statement_says_it_left_it_out(tmp_path) -> None:
    project = Project(tmp_path)
    settings, release = three_issuers(project)
    roomy = compose_post(release=release, network="bluesky", limits=Limits(chars=300), templates=settings.path("templates"),
                         settings=settings)
    assert "Funded by the European Union; Co-funded by the European Union" in roomy.text and roomy.notes == ()
    tight = compose_post(release=release, network="bluesky", limits=Limits(chars=190), templates=settings.path("templates"),
                         settings=settings)
    assert "Funded by" not in tight.text and tight.parts[0].count <= 190
    note = "the EU funding statement ('Funded by the European Union; Co-funded by the European Union') did not fit in 190 characters"
    assert tight.notes == (note,)
