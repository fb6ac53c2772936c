"""A language version says only what differs: index.de.md takes index.md's shared facts, keeps its own words,
is refused when it contradicts them and listed by ``check`` when it overrides one on purpose."""

from __future__ import annotations

import shutil
import textwrap

from typer.testing import CliRunner

from pressroom.cli import app
from pressroom.releases import LoadResult, load_releases, parallel
from tests.conftest import NOW, REPO, Project
from tests.site_support import build
from tests.releases.test_parallel import _count_parses

MAIN = """\
---
title: "Pilot line opens"
date: 2024-07-30 09:00
timezone: Europe/Berlin
status: approved
tags: [Recycling, Lithium]
author: Test Hub Press Office
hero: {src: hero.png, alt: "The pilot line"}
contacts:
  - {name: Ana Example, role: Press officer, email: ana@example.org, phone: "+32 2 123 45 67"}
issuers: [cluster-hub]
embargo: {notify: 48h}
downloads:
  - {file: facts.pdf, title: "Fact sheet (PDF)"}
corrections:
  - {date: 2024-07-31 10:00, note: "The line opens on Tuesday, not Monday."}
email: {subject: "The pilot line opens", approval: false}
social:
  mastodon: {text: "The pilot line opens #recycling"}
---

The pilot line **opens today**. The [annex](annex.pdf) has the figures.
"""

GERMAN = """\
---
title: "Die Pilotlinie öffnet"
summary: Die Pilotlinie öffnet heute.
---

Die Pilotlinie **öffnet heute**.
"""


def bundle(project: Project, german: str = GERMAN, main: str = MAIN) -> tuple:
    folder = project.releases / "pilot"
    folder.mkdir(exist_ok=True)
    (folder / "index.md").write_text(main, encoding="utf-8")
    (folder / "index.de.md").write_text(textwrap.dedent(german), encoding="utf-8")
    shutil.copy(REPO / "content" / "releases" / "international-day-of-friendship-cluster-hub" / "hero.png", folder / "hero.png")
    for name in ("facts.pdf", "annex.pdf"):
        (folder / name).write_bytes(b"%PDF-1.4 " + name.encode())
    organisations = project.root / "content" / "organisations"
    if not organisations.exists():
        shutil.copytree(REPO / "content" / "organisations", organisations)
    return folder / "index.md", folder / "index.de.md"


def load(project: Project) -> LoadResult:
    return load_releases(project.settings(PRESSROOM_SITE__LANGUAGES='["en", "de"]'))


def check(project: Project) -> list[str]:
    result = CliRunner().invoke(app, ["check", "--settings", str(project.root / "pressroom.toml"), "--now", "2024-08-01T12:00:00Z"])
    return result.output.splitlines()


def test_a_version_of_title_summary_and_body_carries_the_whole_release(project):
    bundle(project)
    result = load(project)
    assert result.problems == [] and result.warnings == []
    (release,) = result.releases
    german = release.version("de")
    # Its own words.
    assert (german.title, german.summary, german.language) == ("Die Pilotlinie öffnet", "Die Pilotlinie öffnet heute.", "de")
    assert "öffnet heute" in german.body_html and german.url.endswith("/de/releases/pilot/")
    # index.md's shared facts, whole.
    for name in ("date", "status", "embargo", "tags", "author", "hero", "contacts", "issuers", "expires", "withdrawn"):
        assert getattr(german, name) == getattr(release, name), name
    assert german.date.utcoffset().total_seconds() == 7200  # read in index.md's time zone
    assert [item.name for item in german.downloads] == ["facts.pdf", "annex.pdf"]  # annex.pdf: linked by index.md's body
    assert [(c.date, c.note) for c in german.corrections] == [(c.date, c.note) for c in release.corrections]
    assert german.email.approval is False and not german.needs_approval(project.settings())
    # Words of another language are never taken: the subject and the post fall back to its own title and summary.
    assert german.email.subject is None and german.channel("mastodon").text is None
    assert release.email.subject == "The pilot line opens"


def test_a_version_writes_its_alt_text_download_titles_correction_notes_and_subject(project):
    bundle(project, german="""\
        ---
        title: "Die Pilotlinie öffnet"
        hero: {alt: "Die Pilotlinie"}
        downloads:
          - {file: facts.pdf, title: "Datenblatt (PDF)"}
        corrections:
          - {note: "Die Linie öffnet am Dienstag, nicht am Montag."}
        email: {subject: "Die Pilotlinie öffnet"}
        social:
          mastodon: {text: "Die Pilotlinie öffnet #Recycling"}
        ---

        Die Pilotlinie **öffnet heute**.
        """)
    result = load(project)
    assert result.problems == [] and result.warnings == []
    (release,) = result.releases
    german = release.version("de")
    assert german.hero.alt == "Die Pilotlinie" and german.hero.src == release.hero.src
    assert [(item.name, item.title) for item in german.downloads] == [("facts.pdf", "Datenblatt (PDF)"), ("annex.pdf", "annex.pdf")]
    assert [c.note for c in german.corrections] == ["Die Linie öffnet am Dienstag, nicht am Montag."]
    assert german.corrections[0].date == release.corrections[0].date
    assert german.email.subject == "Die Pilotlinie öffnet" and german.email.approval is False
    assert german.channel("mastodon").text == "Die Pilotlinie öffnet #Recycling"
    lines = check(project)
    assert "    de: index.de.md writes body, title, hero.alt, downloads, corrections, email.subject, social.mastodon.text; " \
           "from index.md: date, status, embargo, tags, author, hero, contacts, issuers" in lines


def test_check_lists_each_language_and_what_it_takes_from_index_md(project):
    bundle(project)
    lines = check(project)
    (ok,) = [line for line in lines if line.startswith("ok  pilot")]
    assert ok.endswith("(also in de)")
    following = lines[lines.index(ok) + 1 :]
    assert following[0].startswith("    embargo: journalists hear of it at 2024-07-28 07:00 UTC")
    assert following[1] == ("    de: index.de.md writes body, title, summary; from index.md: date, status, embargo, tags, author, "
                            "hero, hero.alt, contacts, issuers, downloads, corrections")
    assert lines[-1] == "1 of 1 releases valid"


def test_a_version_that_contradicts_a_shared_fact_is_refused_naming_both_files(project):
    cases = {
        "status: draft": ("status", "'draft' disagrees with index.md ('approved')"),
        "date: 2024-07-30 10:00": ("date", "2024-07-30 10:00+02:00 disagrees with index.md (2024-07-30 09:00+02:00)"),
        "timezone: Europe/London": ("timezone", "2024-07-30 09:00+01:00 disagrees with index.md (2024-07-30 09:00+02:00)"),
        "embargo: {notify: 24h}": ("embargo.notify", "2024-07-29 09:00+02:00 disagrees with index.md (2024-07-28 09:00+02:00)"),
        "corrections: [{date: 2024-08-01 10:00, note: Später.}]": (
            "corrections.date", "[2024-08-01 10:00+02:00] disagrees with index.md ([2024-07-31 10:00+02:00])"),
        "email: {approval: true}": ("email.approval", "True disagrees with index.md (False)"),
    }
    for line, (field, message) in cases.items():
        _, german = bundle(project, german=f"---\ntitle: Die Pilotlinie\n{line}\n---\n\nText.\n")
        result = load(project)
        (problem,) = result.problems
        assert (problem.path, problem.field, problem.line) == (german, field, 3), line
        assert problem.message == f"{message}: every language version of a release shares it", line
        assert problem.hint.startswith(f"leave {field.split('.')[0]} out of index.de.md: it comes from index.md")
        # The release still publishes, without that version.
        assert [(r.slug, r.translations) for r in result.releases] == [("pilot", {})]


def test_a_version_that_overrides_a_shared_field_is_listed_by_check(project):
    _, german = bundle(project, german="""\
        ---
        title: "Die Pilotlinie öffnet"
        tags: [Recycling, Lithium]
        contacts:
          - {name: Anna Beispiel, role: Pressereferentin, email: anna@example.de}
        issuers: [cluster-hub, example-project]
        hero: {src: hero.png, alt: Die Pilotlinie}
        downloads:
          - {file: anhang.pdf, title: Anhang}
        ---

        Text.
        """)
    (german.parent / "anhang.pdf").write_bytes(b"%PDF-1.4")
    result = load(project)
    assert result.problems == []
    # Tags and hero as index.md has them are no override; contacts, issuers and an extra listed download are.
    assert [(w.path.name, w.line, w.field) for w in result.warnings] == [
        ("index.de.md", 4, "contacts"), ("index.de.md", 6, "issuers"), ("index.de.md", 8, "downloads"),
    ]
    (release,) = result.releases
    version = release.version("de")
    assert [c.name for c in version.contacts] == ["Anna Beispiel"] and len(version.issuers) == 2
    assert [item.name for item in version.downloads] == ["facts.pdf", "anhang.pdf", "annex.pdf"]
    lines = check(project)
    assert any(line.endswith(
        "content/releases/pilot/index.de.md:4: contacts: warning: its own contacts, not those of index.md: the de "
        "pages, emails and posts show these (hint: leave contacts out of index.de.md to show index.md's, or keep "
        "it if this language needs its own)") for line in lines)
    assert any(line.endswith(
        "index.de.md:8: downloads: warning: downloads that index.md does not offer (anhang.pdf): the de page offers "
        "them too (hint: leave downloads out of index.de.md to show index.md's, or keep it if this language needs its own)")
        for line in lines)
    assert "    de: index.de.md writes body, title, tags, contacts, issuers, hero.src, hero.alt, downloads; from index.md: " \
           "date, status, embargo, author, corrections" in lines
    assert lines[-1] == "1 of 1 releases valid"


def test_an_error_in_index_md_is_reported_once(project):
    main, german = bundle(project, main=MAIN.replace("date: 2024-07-30 09:00", "date: next tuesday"))
    result = load(project)
    assert [(p.path, p.field) for p in result.problems] == [(main, "date")]
    assert result.releases == []
    # The version's own mistake is its own, and reported beside index.md's.
    german.write_text(GERMAN.replace('title: "Die Pilotlinie öffnet"', "title: [Die Pilotlinie"), encoding="utf-8")
    assert sorted((p.path.name, p.field) for p in load(project).problems) == [("index.de.md", "front-matter"), ("index.md", "date")]
    # Without index.md it is a translation without its release.
    main.unlink()
    german.write_text(GERMAN, encoding="utf-8")
    (problem,) = load(project).problems
    assert (problem.path, problem.message) == (german, "a translation without its release")


def test_a_version_missing_its_title_is_its_own_problem(project):
    _, german = bundle(project, german="---\nsummary: Nur eine Zusammenfassung.\n---\n\nText.\n")
    (problem,) = load(project).problems
    assert (problem.path, problem.field, problem.message) == (german, "title", "is required")


def test_a_change_to_index_md_reaches_its_versions_through_the_cache(project, monkeypatch):
    main, german = bundle(project)
    load(project)
    parsed = _count_parses(monkeypatch)
    assert load(project).releases[0].version("de").tags == ("Recycling", "Lithium")
    assert parsed == []  # both from the cache
    main.write_text(MAIN.replace("tags: [Recycling, Lithium]", "tags: [Recycling, Cobalt]"), encoding="utf-8")
    (release,) = load(project).releases
    assert release.version("de").tags == ("Recycling", "Cobalt")
    assert sorted(parsed) == ["index.de.md", "index.md"]
    german.write_text(GERMAN.replace("öffnet heute.", "öffnet morgen."), encoding="utf-8")
    before = release.version("de").digest
    (release,) = load(project).releases
    assert sorted(parsed) == ["index.de.md", "index.de.md", "index.md"]  # index.md was not read again
    assert release.version("de").summary == "Die Pilotlinie öffnet morgen." and release.version("de").digest != before


def test_the_inherited_files_are_published_beside_the_version_page(project):
    bundle(project)
    build(project, NOW, PRESSROOM_SITE__LANGUAGES='["en", "de"]')
    page_folder = project.root / "public" / "de" / "releases" / "pilot"
    for name in ("hero.png", "facts.pdf", "annex.pdf"):
        assert (page_folder / name).is_file(), name
    page = (page_folder / "index.html").read_text(encoding="utf-8")
    assert "Die Pilotlinie öffnet" in page and "Ana Example" in page and "Fact sheet (PDF)" in page
    assert 'src="../../../organisations/cluster-hub.png"' in page and "Pressekontakte" in page


def test_parallel_workers_read_versions_as_one_process_does(project, monkeypatch):
    bundle(project)
    for number in range(3):
        project.write_release(f"other-{number}", date=f"2024-07-0{number + 1} 09:00")
    monkeypatch.setattr(parallel, "_PARALLEL_FROM", 10**9)
    alone = load(project)
    (project.root / "var" / "cache" / "releases.pickle").unlink()
    monkeypatch.setattr(parallel, "_PARALLEL_FROM", 2)
    monkeypatch.setattr(parallel, "_WORKERS", 2)
    shared = load(project)
    assert shared.problems == alone.problems == []
    assert [(r.slug, {k: v.model_dump() for k, v in r.translations.items()}) for r in shared.releases] == \
        [(r.slug, {k: v.model_dump() for k, v in r.translations.items()}) for r in alone.releases]
    assert list(shared.releases[0].translations) == ["de"]


def test_checking_one_language_file_checks_its_release_with_every_version(project):
    _, german = bundle(project)
    for name in ("index.de.md", "index.md"):
        result = CliRunner().invoke(app, ["check", str(german.parent / name), "--settings", str(project.root / "pressroom.toml")])
        lines = result.output.splitlines()
        assert result.exit_code == 0, lines
        assert any(line.startswith("    de: index.de.md writes body, title, summary;") for line in lines), lines
