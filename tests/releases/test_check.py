"""`pressroom check` on a corpus of broken releases: one clear line per problem, the good ones still valid."""

from __future__ import annotations

import os
import re
import zipfile

import pytest
from typer.testing import CliRunner

from pressroom.cli import app
from tests.conftest import DATA, REPO
from tests.golden import assert_golden

CORPUS = DATA / "broken"
GOLDEN = CORPUS / "expected-check.txt"


def run_check(*args: str) -> tuple[int, str]:
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(DATA)  # so paths print as broken/<file>, the same on every machine
    try:
        result = runner.invoke(app, ["check", *args, "--settings", str(REPO / "pressroom.toml"), "--now", "2024-08-01T00:00:00+00:00"])
    finally:
        os.chdir(cwd)
    return result.exit_code, result.output


def test_broken_corpus_is_reported_line_by_line_against_golden_output():
    code, output = run_check("broken")
    assert_golden(GOLDEN.parent, {GOLDEN.name: output})
    assert code == 1


def test_every_problem_line_names_file_line_field_and_a_hint():
    _code, output = run_check("broken")
    problems = [line for line in output.splitlines() if line.startswith("broken/")]
    broken_files = {path.name for path in CORPUS.glob("*.md")} - {
        "valid.md", "script-injection.md", "crlf-title.md", "control-characters.md", "duplicate-slug-a.md"
    }
    assert {line.split(":")[0].removeprefix("broken/") for line in problems} == broken_files
    for line in problems:
        assert re.match(r"^broken/[\w.-]+\.md:\d+: [\w.-]+: .+ \(hint: .+\)$", line), line
    assert "Traceback" not in output


def test_valid_releases_show_status_and_the_instant_in_utc_and_local_time():
    _, output = run_check("broken")
    assert "ok  valid  public     2024-07-29 08:00 UTC = 2024-07-29 10:00 CEST (Europe/Brussels)" in output


def test_scheduled_release_shows_as_scheduled(project):
    project.write_release("later", date="2030-01-01 09:00")
    runner = CliRunner()
    result = runner.invoke(app, ["check", "--settings", str(project.root / "pressroom.toml")])
    assert result.exit_code == 0
    assert "later  scheduled  2030-01-01 08:00 UTC = 2030-01-01 09:00 CET (Europe/Brussels)" in result.output


def test_check_of_a_fresh_project_creates_no_database(project):
    project.write_release("fresh")
    result = CliRunner().invoke(app, ["check", "--settings", str(project.root / "pressroom.toml")])
    assert result.exit_code == 0, result.output
    assert "fresh" in result.output
    assert not (project.root / "var" / "pressroom.db").exists()


def test_a_warning_is_listed_but_the_release_still_loads_and_check_passes(project):
    project.write_release("midnight", date="2024-07-29")
    runner = CliRunner()
    result = runner.invoke(app, ["check", "--settings", str(project.root / "pressroom.toml"), "--now", "2024-08-01T00:00:00+00:00"])
    assert result.exit_code == 0, result.output
    assert "midnight.md:3: date: warning: 2024-07-29 has no time: it means 00:00 in Europe/Brussels" in result.output
    assert "ok  midnight  public     2024-07-28 22:00 UTC = 2024-07-29 00:00 CEST (Europe/Brussels)" in result.output
    assert "1 of 1 releases valid" in result.output


def test_a_cached_release_keeps_its_warning(project):
    project.write_release("midnight", date="2024-07-29")
    settings = project.settings()
    from pressroom.releases import load_releases

    first, second = load_releases(settings), load_releases(settings)  # the second comes from var/cache/
    assert [w.message for w in first.warnings] == [w.message for w in second.warnings] != []
    assert [r.slug for r in second.releases] == ["midnight"]


# --------------------------------------------------------------------------- nothing under content/releases/ is ignored


def check_project(project, *args: str) -> tuple[int, list[str]]:  # the conftest Project
    """`pressroom check` run from the project folder, so files print as content/releases/<file>."""
    cwd = os.getcwd()
    os.chdir(project.root)
    try:
        result = CliRunner().invoke(app, ["check", *args, "--now", "2024-08-01T00:00:00+00:00"])
    finally:
        os.chdir(cwd)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output.splitlines()


def word_document(path) -> None:
    """A file shaped like a .docx (a ZIP of XML): its first non-ASCII byte is what `check` used to stumble on."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", "<w:document><w:t>Brüssel, 30. Juli 2024</w:t></w:document>" * 20)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("news.docx", "a Word document"), ("news.odt", "an OpenDocument text"), ("news.rtf", "a rich-text document"),
     ("news.txt", "a text file")],
)
def test_a_document_in_the_releases_folder_is_a_problem_with_the_import_command_and_the_rest_still_loads(project, name, kind):
    project.write_release("good")
    if name.endswith(".docx"):
        word_document(project.releases / name)
    else:
        (project.releases / name).write_text("PRESS RELEASE\nBrussels, 30 July 2024\nThe Cluster HUB celebrates.\n")
    code, lines = check_project(project)
    assert f"content/releases/{name}:1: file: {kind}, not a release: it is not published (hint: import it with " \
           f"'pressroom import content/releases/{name}': it becomes a draft release to check and approve)" in lines
    assert any(line.startswith("ok  good  public") for line in lines)
    assert code == 1  # a release that will not go out until someone acts
    assert lines[-1] == "1 of 2 releases valid; 1 with problems"


def test_a_word_file_named_on_the_command_line_says_what_it_is_not_which_byte_is_wrong(project):
    word_document(project.root / "draft.docx")
    code, lines = check_project(project, "draft.docx")
    assert code == 1
    assert lines[0] == ("draft.docx:1: file: a Word document, not a release: it is not published (hint: import it with "
                        "'pressroom import draft.docx': it becomes a draft release to check and approve)")
    assert not any("UTF-8" in line for line in lines)


def test_a_text_file_that_has_front_matter_is_to_be_renamed_not_imported(project):
    (project.releases / "written.txt").write_text('---\ntitle: "Written by hand"\ndate: 2024-07-30 09:00\n---\nText\n')
    _, lines = check_project(project)
    assert "content/releases/written.txt:1: file: a text file with front matter is not read as a release " \
           "(hint: rename it written.md)" in lines


def test_markdown_files_are_releases_as_md_and_as_markdown(project):
    (project.releases / "long-name.markdown").write_text('---\ntitle: "Long"\ndate: 2024-07-30 09:00\nstatus: approved\n---\nBody\n')
    (project.releases / "bundle").mkdir()
    (project.releases / "bundle" / "index.markdown").write_text('---\ntitle: "B"\ndate: 2024-07-29 09:00\nstatus: approved\n---\nB\n')
    (project.releases / "bundle" / "index.de.markdown").write_text('---\ntitle: "B de"\ndate: 2024-07-29 09:00\nstatus: approved\n---\nB\n')
    code, lines = check_project(project)
    assert code == 0, lines
    assert any(line.startswith("ok  long-name  public") for line in lines)
    assert any(line.startswith("ok  bundle  public") and line.endswith("(also in de)") for line in lines)
    assert lines[-1] == "2 of 2 releases valid"


def test_a_bundle_folder_without_index_md_is_named_with_the_rename_and_its_images_are_not_stray(project):
    folder = project.releases / "cluster-news"
    folder.mkdir()
    (folder / "press-release.md").write_text('---\ntitle: "News"\ndate: 2024-07-30 09:00\nstatus: approved\n---\nNews\n')
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    code, lines = check_project(project)
    assert code == 1
    assert lines[0] == ("content/releases/cluster-news/press-release.md:1: file: the folder cluster-news/ has no index.md, "
                        "so this release is not read (hint: rename press-release.md to index.md)")
    assert not any("photo.png" in line for line in lines)


def test_stray_files_are_warnings_that_name_the_file_and_leave_check_passing(project):
    project.write_release("with-files", bundle=True, body="See the [report](report.pdf).",
                          extra="hero: {src: hero.png, alt: The pilot plant}\n")
    folder = project.releases / "with-files"
    for used in ("hero.png", "report.pdf"):
        (folder / used).write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "old-photo.jpg").write_bytes(b"\xff\xd8")
    (folder / "notes.md").write_text("my notes")
    (project.releases / "budget.pdf").write_bytes(b"%PDF-1.4")
    (project.releases / "partner.yaml").write_text("name: Partner\n")
    code, lines = check_project(project)
    assert code == 0, lines  # nothing is published from them, and nothing breaks
    warnings = [line for line in lines if ": warning: " in line]
    assert warnings == [
        "content/releases/budget.pdf:1: file: warning: a PDF file outside any release: it is not published (hint: put it "
        "in the folder of the release that uses it (releases/<slug>/, beside index.md) and link it, or remove it)",
        "content/releases/partner.yaml:1: file: warning: a YAML file outside any release: it is not published "
        "(hint: a co-issuer's file goes in content/organisations/; anything else: remove it)",
        "content/releases/with-files/notes.md:1: file: warning: a Markdown file beside the release that is not one of "
        "its language versions: it is not read (hint: name a language version index.<language>.md (e.g. index.de.md), "
        "or link the file from the release, or remove it)",
        "content/releases/with-files/old-photo.jpg:1: file: warning: an image that the release with-files does not use: "
        "it is not published (hint: show it in the release (![what it shows](old-photo.jpg) in the body, or as hero: "
        "{src: old-photo.jpg, alt: ...}), or remove it)",
    ]
    assert lines[-1] == "1 of 1 releases valid"


def test_a_release_folder_nested_too_deep_is_a_problem_saying_where_it_goes(project):
    project.write_release("2024/deep", bundle=True)
    code, lines = check_project(project)
    assert code == 1
    assert lines[0] == ("content/releases/2024/deep/index.md:1: file: a release folder inside another folder: it is not "
                        "read (hint: move the folder deep/ into content/releases/ (a release is a file or a folder "
                        "directly in the releases folder))")


def test_files_of_a_broken_release_and_hidden_files_are_not_named_again(project):
    project.write_release("broken", bundle=True, date="someday", extra="hero: {src: hero.png, alt: A photo}\n")
    (project.releases / "broken" / "hero.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    for hidden in (".DS_Store", "~$news.docx", ".git/config"):
        (project.releases / hidden).parent.mkdir(exist_ok=True)
        (project.releases / hidden).write_bytes(b"\x00\x87")
    _, lines = check_project(project)
    named = [line.split(":")[0] for line in lines if line.startswith("content/")]
    assert named == ["content/releases/broken/index.md"]


def test_a_check_of_a_bundle_folder_names_its_unused_files(project):
    project.write_release("one", bundle=True)
    (project.releases / "one" / "spare.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    code, lines = check_project(project, "content/releases/one")
    assert code == 0
    assert lines[0].startswith("content/releases/one/spare.png:1: file: warning: an image that the release one does not use")


def test_the_publish_run_sees_documents_as_problems_and_stray_files_as_warnings(project):
    project.write_release("good")
    word_document(project.releases / "news.docx")
    (project.releases / "notes.pdf").write_bytes(b"%PDF-1.4")
    from pressroom.releases import load_releases

    result = load_releases(project.settings())
    assert [release.slug for release in result.releases] == ["good"]
    assert [(problem.path.name, problem.field) for problem in result.problems] == [("news.docx", "file")]
    assert [(warning.path.name, warning.field) for warning in result.warnings] == [("notes.pdf", "file")]
