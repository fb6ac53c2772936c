"""Co-issuers: content/organisations/*.yaml, a release's ``issuers:``, and what readers see of them.

Golden files for a three-issuer release (tests/data/issuers-three/: its page's issuer sections,
the email's text part and headers, each network's post); ``REGEN_GOLDEN=1`` rewrites them.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import textwrap

import lxml.html
import pytest
from typer.testing import CliRunner

from pressroom.cli import app
from pressroom.mail import compose_release
from pressroom.releases import load_releases
from pressroom.social.compose import MASTODON, NETWORK_LIMITS, compose_post
from pressroom.social.linkedin import little_text
from tests.conftest import DATA, NOW, REPO
from tests.golden import assert_golden
from tests.mail_support import READER, check_golden
from tests.site_support import build

CASE = DATA / "issuers-three"
DISCLAIMER = (
    "Views and opinions expressed are however those of the author(s) only and do not necessarily reflect those "
    "of the European Union or the granting authority. Neither the European Union nor the granting authority can "
    "be held responsible for them."
)


def by_class(page, *names: str) -> list:
    """Elements with any of the classes ``names``, in document order."""
    return page.xpath(" | ".join(f'//*[contains(concat(" ", normalize-space(@class), " "), " {name} ")]' for name in names))


def three_issuers(project):  # the conftest Project
    """The repo's two sample organisations, a third from tests/data, and a release naming all three."""
    organisations = project.root / "content" / "organisations"
    shutil.copytree(REPO / "content" / "organisations", organisations)
    for file in (CASE / "organisations").iterdir():
        shutil.copy(file, organisations / file.name)
    folder = project.releases / "three-projects"
    folder.mkdir()
    shutil.copy(CASE / "release.md", folder / "index.md")
    shutil.copy(CASE / "release.de.md", folder / "index.de.md")
    settings = project.settings(PRESSROOM_SITE__LANGUAGES='["en", "de"]')
    result = load_releases(settings)
    assert not result.problems, [str(problem) for problem in result.problems]
    return settings, result.releases[0]


def organisation(project, name: str, yaml: str, *, logo: str | None = "logo.png") -> None:
    folder = project.root / "content" / "organisations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(textwrap.dedent(yaml), encoding="utf-8")
    if logo:
        shutil.copy(REPO / "content" / "organisations" / "cluster-hub.png", folder / logo)


def check_lines(project) -> list[str]:
    result = CliRunner().invoke(app, ["check", "--settings", str(project.root / "pressroom.toml")])
    return result.output.splitlines()


def assert_reported(lines: list[str], ending: str) -> None:
    assert any(line.endswith(ending) for line in lines), lines


# --------------------------------------------------------------------------- golden files


def _golden(name: str, actual: str) -> None:
    assert_golden(CASE, {name: actual})


def test_three_issuer_page_matches_its_golden_file(project):
    three_issuers(project)
    build(project, NOW)
    page = lxml.html.fromstring((project.root / "public" / "releases" / "three-projects" / "index.html").read_bytes())
    sections = by_class(page, "issuer-about", "issuers", "eu-funding", "contacts")
    _golden("page-issuers.html", "\n".join(lxml.html.tostring(s, encoding="unicode").strip() for s in sections) + "\n")
    # Every logo went to public/ beside the page's links to it, and the emblem with them.
    for image in page.xpath('//section[@class="issuers" or @class="eu-funding"]//img'):
        target = (project.root / "public" / "releases" / "three-projects" / image.get("src")).resolve()
        assert target.is_file(), image.get("src")


def test_three_issuer_email_text_matches_its_golden_file(project):
    settings, release = three_issuers(project)
    check_golden("issuers-three", compose_release(release=release, settings=settings))


@pytest.mark.parametrize("network", sorted(NETWORK_LIMITS))
def test_three_issuer_posts_match_their_golden_files(project, network):
    settings, release = three_issuers(project)
    post = compose_post(release=release, network=network, limits=NETWORK_LIMITS[network], templates=settings.path("templates"))
    facets = [
        f"{facet.kind} {post.text.encode()[facet.start:facet.end].decode()!r} -> {facet.value}"
        for facet in post.parts[0].facets
    ]
    _golden(f"{network}.txt", post.text + "\n\n-- facets\n" + "\n".join(facets) + "\n")
    assert post.parts[0].count <= NETWORK_LIMITS[network].chars


def test_the_german_version_of_the_three_issuer_release_matches_its_golden_files(project):
    """Two languages, three issuers: the German page's issuer sections, email text and posts."""
    settings, release = three_issuers(project)
    german = release.version("de")
    assert german.language == "de" and german is not release
    build(project, NOW, PRESSROOM_SITE__LANGUAGES='["en", "de"]')
    page = lxml.html.fromstring((project.root / "public" / "de" / "releases" / "three-projects" / "index.html").read_bytes())
    sections = by_class(page, "issuer-about", "issuers", "eu-funding", "contacts")
    _golden("page-issuers.de.html", "\n".join(lxml.html.tostring(s, encoding="unicode").strip() for s in sections) + "\n")
    composed = compose_release(release=release, settings=settings, language="de")
    _golden("text.de.txt", email.message_from_bytes(composed.message(READER), policy=email.policy.default)
            .get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n"))
    for network in sorted(NETWORK_LIMITS):
        post = compose_post(release=german, network=network, limits=NETWORK_LIMITS[network],
                            templates=settings.path("templates"), settings=settings)
        _golden(f"{network}.de.txt", post.text + "\n")


# --------------------------------------------------------------------------- what readers get


def test_media_contacts_are_merged_once_and_about_texts_follow_the_release(project):
    settings, release = three_issuers(project)
    message = email.message_from_bytes(compose_release(release=release, settings=settings).message(READER), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    build(project, NOW)
    page = lxml.html.fromstring((project.root / "public" / "releases" / "three-projects" / "index.html").read_bytes())
    names = [p.text_content() for p in by_class(page, "contact-name")]
    # The release's own contacts first; Nader Akil (also the Cluster HUB's contact, same address) once.
    assert names == ["Ana Example", "Nader Akil", "Erika Example", "Sam Second"]
    abouts = [section.text_content().split(".")[0].strip() for section in by_class(page, "about")]
    assert abouts == ["About us", "About the Cluster HUB", "About EXAMPLE (fictional example data)", "About SECOND"]
    assert text.count("sam@second.example.eu") == 1 and text.count("press@materialsforbatterieshub.eu") == 1


def test_one_person_listed_by_the_release_and_an_organisation_with_two_addresses_appears_once(project):
    organisation(project, "hub", """\
        name: The Hub
        logo: logo.png
        website: https://hub.example.org
        contact: {name: Maria  Example, role: Head of communication, email: maria@hub.example.org, phone: "+32 2 555 01 02"}
        """)
    organisation(project, "desk", """\
        name: The Desk
        logo: logo.png
        website: https://desk.example.org
        contact: {name: Press desk, email: Press@Example.org}
        """)
    project.write_release("one-person", extra=(
        "issuers: [hub, desk]\ncontacts:\n  - {name: maria example, email: maria.example@release.example.org}\n"
        "  - {name: Ana Example, email: press@example.org}\n"))
    settings = project.settings()
    (release,) = load_releases(settings).releases
    from pressroom.releases.blocks import media_contacts

    # Maria once: the release's address (its own), the organisation's phone and role beside it; the desk's
    # address is Ana's already.
    assert [(c.name, c.email, c.phone, c.role) for c in media_contacts(release=release)] == [
        ("maria example", "maria.example@release.example.org", "+32 2 555 01 02", "Head of communication"),
        ("Ana Example", "press@example.org", "", ""),
    ]
    build(project, NOW)
    page = lxml.html.fromstring((project.root / "public" / "releases" / "one-person" / "index.html").read_bytes())
    assert [p.text_content() for p in by_class(page, "contact-name")] == ["maria example", "Ana Example"]
    text = email.message_from_bytes(compose_release(release=release, settings=settings).message(READER),
                                    policy=email.policy.default).get_body(("plain",)).get_content()
    assert text.count("+32 2 555 01 02") == 1 and "maria@hub.example.org" not in text
    feed = (project.root / "public" / "feed.xml").read_text(encoding="utf-8")
    assert feed.count("maria.example@release.example.org") == 2 and "maria@hub.example.org" not in feed  # mailto: and shown


def test_about_per_language_falls_back_to_the_site_language(project):
    _settings, release = three_issuers(project)
    from pressroom.releases.blocks import about_blocks

    german = release.model_copy(update={"language": "de"})
    french = release.model_copy(update={"language": "fr"})
    assert "Über SECOND" in about_blocks(release=german, site_language="en")[-1][1]
    assert "About SECOND" in about_blocks(release=french, site_language="en")[-1][1]


def test_the_eu_acknowledgement_lists_each_grant_and_statement_with_the_disclaimer(project):
    _settings, _release = three_issuers(project)
    build(project, NOW)
    page = lxml.html.fromstring((project.root / "public" / "releases" / "three-projects" / "index.html").read_bytes())
    [block] = by_class(page, "eu-funding")
    text = " ".join(block.text_content().split())
    assert "Funded by the European Union" in text and "Co-funded by the European Union" in text
    assert "EXAMPLE: Horizon Europe, grant agreement No 101000000" in text
    assert "SECOND: Horizon Europe, grant agreement No 101999999" in text
    assert DISCLAIMER in text


def test_the_press_kit_carries_the_logos_abouts_and_eu_acknowledgement(project):
    import zipfile

    _settings, release = three_issuers(project)
    build(project, NOW)
    kit = zipfile.ZipFile(project.root / "public" / "releases" / "three-projects" / "press-kit.zip")
    names = set(kit.namelist())
    assert {f"three-projects/logos/{issuer.id}{issuer.logo.suffix}" for issuer in release.issuers} <= names
    assert "three-projects/logos/eu-emblem.png" in names
    text = " ".join(kit.read("three-projects/three-projects.txt").decode().split())
    assert "PROJECTS INVOLVED" in text and all(issuer.name in text for issuer in release.issuers)
    assert "EXAMPLE: Horizon Europe, grant agreement No 101000000" in text and DISCLAIMER in text


def test_a_release_without_eu_funded_issuers_has_no_acknowledgement(project):
    organisation(project, "plain", "name: Plain Org\nlogo: logo.png\nwebsite: https://plain.example.org\n")
    project.write_release("plain", extra="issuers: [plain]\n")
    build(project, NOW)
    html = (project.root / "public" / "releases" / "plain" / "index.html").read_text()
    assert "Projects involved" in html and "eu-funding" not in html and "European Union" not in html


# --------------------------------------------------------------------------- check


def test_check_names_an_unknown_issuer_with_its_line_and_the_known_ones(project):
    organisation(project, "known-org", "name: Known\nlogo: logo.png\nwebsite: https://known.example.org\n")
    project.write_release("r", extra="issuers:\n  - known-org\n  - unknwon-org\n")
    lines = check_lines(project)
    assert_reported(lines, "r.md:7: issuers: unknown issuer 'unknwon-org' (hint: add content/organisations/unknwon-org.yaml "
                    "or check the spelling; known: known-org)")


def test_check_names_a_missing_logo_and_refuses_the_releases_naming_it(project):
    organisation(project, "no-logo", "name: No Logo\nwebsite: https://x.example.org\nlogo: missing.svg\n", logo=None)
    project.write_release("r", extra="issuers: [no-logo]\n")
    lines = check_lines(project)
    assert_reported(lines, "organisations/no-logo.yaml:3: logo: logo file 'missing.svg' not found next to no-logo.yaml "
                    f"(hint: add the file to {project.root / 'content' / 'organisations'} or fix the name)")
    assert any("r.md:5: issuers: issuer 'no-logo' cannot be used" in line for line in lines), lines
    assert not any(line.startswith("ok  r ") for line in lines)


def test_check_refuses_an_eu_funded_issuer_without_a_grant_number(project):
    organisation(project, "eu-project", """\
        name: EU Project
        logo: logo.png
        website: https://eu.example.eu
        eu_funding:
          programme: Horizon Europe
          grant: ""
        """)
    project.write_release("r", extra="issuers: [eu-project]\n")
    lines = check_lines(project)
    assert_reported(lines, "eu-project.yaml:6: eu_funding.grant: an EU-funded project needs its grant number "
                    "(hint: write the number of the grant agreement, e.g. grant: \"101069644\")")
    assert not any(line.startswith("ok  r ") for line in lines)


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ('social: {mastodon: "clusterhub@mastodon.social"}', "social.mastodon", "is not a Mastodon handle"),
        ("social: {bluesky: not a handle}", "social.bluesky", "is not a Bluesky handle"),
        ("social: {linkedin: https://linkedin.com/company/x}", "social.linkedin", "is not a LinkedIn organisation"),
        ("website: www.example.org", "website", "is not a web address"),
        ("colour: blue", "colour", "unknown field"),
    ],
)
def test_each_bad_field_of_an_organisation_names_its_line(project, line, field, message):
    body = "name: Org\nlogo: logo.png\n" + ("" if line.startswith("website") else "website: https://org.example\n") + line + "\n"
    organisation(project, "org", body)
    found = [entry for entry in check_lines(project) if "org.yaml" in entry]
    assert found and f"org.yaml:{body.count(chr(10))}: {field}: " in found[0] and message in found[0], found


def test_an_edited_organisation_reaches_the_page_on_the_next_build(project):
    organisation(project, "org", "name: Org One\nlogo: logo.png\nwebsite: https://one.example.org\n")
    project.write_release("r", extra="issuers: [org]\n")
    build(project, NOW)
    organisation(project, "org", "name: Org Two\nlogo: logo.png\nwebsite: https://two.example.org\n")
    build(project, NOW)
    html = (project.root / "public" / "releases" / "r" / "index.html").read_text()
    assert "https://two.example.org" in html and "one.example.org" not in html


# --------------------------------------------------------------------------- mentions


def test_mastodon_counts_a_remote_mention_as_its_local_part():
    assert MASTODON.count("With @clusterhub@mastodon.social") == len("With @clusterhub")


def test_a_post_never_cuts_a_mention_and_an_account_never_mentions_itself(project):
    settings, release = three_issuers(project)
    long = release.model_copy(update={"title": "Battery news " * 60})
    post = compose_post(release=long, network="bluesky", limits=NETWORK_LIMITS["bluesky"],
                        templates=settings.path("templates"), own="materialsforbatterieshub.bsky.social")
    assert "With @example-project.bsky.social, @second-project.bsky.social" in post.text
    assert "@materialsforbatterieshub" not in post.text and "SECOND" not in post.text.split("With")[0]
    assert [facet.value for facet in post.parts[0].facets if facet.kind == "mention"] == [
        "example-project.bsky.social", "second-project.bsky.social"]
    assert post.parts[0].count <= 300
    toot = compose_post(release=release, network="mastodon", limits=MASTODON, templates=settings.path("templates"),
                        own="clusterhub@mastodon.social")  # [[social]] handle, written with or without the first @
    assert "With @example@mastodon.example, SECOND" in toot.text and "@clusterhub" not in toot.text


def test_linkedin_mentions_pages_in_little_text_by_their_names(project):
    settings, release = three_issuers(project)
    post = compose_post(release=release, network="linkedin", limits=NETWORK_LIMITS["linkedin"], templates=settings.path("templates"))
    little = little_text(post.text, facets=post.parts[0].facets)
    assert ("With @[Cluster HUB](urn:li:organization:90000001), @[EXAMPLE project — fictional](urn:li:organization:90000002), "
            "@[SECOND test project](urn:li:organization:90000003)") in little
    # The title's "Cluster HUB"-free text is escaped as before; only the mentions line carries mentions.
    assert little.count("@[") == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"name: Org\nlogo: [unclosed\n", "org.yaml:2: yaml: invalid YAML"),
        (b"name: Org\xff\n", "org.yaml:1: encoding: byte 0xff is not UTF-8"),
        (b"- just\n- a list\n", "org.yaml:1: yaml: the front matter is not a list of 'field: value' lines"),
    ],
)
def test_an_unreadable_organisation_file_is_one_line_and_the_other_releases_still_load(project, content, expected):
    folder = project.root / "content" / "organisations"
    folder.mkdir(parents=True)
    (folder / "org.yaml").write_bytes(content)
    project.write_release("fine")
    lines = check_lines(project)
    assert any(expected in line for line in lines), lines
    assert any(line.startswith("ok  fine ") for line in lines), lines
