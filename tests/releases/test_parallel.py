"""Parsing many releases: worker processes, and the cache that spares a rebuild parsing again."""

from __future__ import annotations

import copy
import gc
import os

import pytest

from pressroom.releases import parallel
from pressroom.releases import load_releases


def _write_mixed(project) -> None:  # the conftest Project
    for number in range(6):
        project.write_release(f"good-{number}", title=f"Good {number}", date=f"2024-07-0{number + 1} 09:00")
    project.write_release("bad-date", date="the day after tomorrow")
    project.write_release("no-time", title="No time", date="2024-07-08")  # loads, with a warning
    project.write_release("twin", extra="slug: good-1\n")
    (project.releases / "not-utf8.md").write_bytes(b"\xff\xfe not UTF-8 \x81")
    (project.releases / "unreadable" / "index.md").mkdir(parents=True)  # an OSError, as the worker met it


def _seen(result) -> tuple:
    return (
        [(release.slug, release.digest, release.body_html) for release in result.releases],
        sorted((str(problem), problem.path, problem.line, problem.field) for problem in result.problems),
        [(type(warning).__name__, str(warning), warning.line, warning.field) for warning in result.warnings],
    )


@pytest.mark.parametrize("threads", [1, 2], ids=["forked", "spawned"])
def test_workers_give_the_same_releases_and_problems_as_one_process(project, monkeypatch, threads):
    _write_mixed(project)
    settings = project.settings()
    monkeypatch.setattr(parallel, "_PARALLEL_FROM", 10**9)
    alone = _seen(load_releases(settings))
    (project.root / "var" / "cache" / "releases.pickle").unlink()
    monkeypatch.setattr(parallel, "_PARALLEL_FROM", 2)
    monkeypatch.setattr(parallel, "_WORKERS", 2)
    # Another thread in the process makes the pool spawn its workers instead of forking them.
    monkeypatch.setattr(parallel.threading, "active_count", lambda: threads)
    shared = _seen(load_releases(settings))
    assert shared == alone
    # What the workers parsed is in the cache, as they pickled it: read back, only the broken files parsed again.
    monkeypatch.setattr(parallel, "_PARALLEL_FROM", 10**9)  # parsed here, where the parses are counted
    parses = _count_parses(monkeypatch)
    assert _seen(load_releases(settings)) == alone
    assert sorted(parses) == ["bad-date.md", "index.md", "not-utf8.md"]
    slugs, problems, warnings = shared
    assert [slug for slug, _, _ in slugs] == ["no-time", *(f"good-{number}" for number in range(5, -1, -1))]
    assert {field for _, _, _, field in problems} == {"date", "slug", "encoding", "file"}
    assert [(kind, field) for kind, _, _, field in warnings] == [("ReleaseWarning", "date")]


def test_a_second_load_parses_only_the_new_file(project, monkeypatch):
    for number in range(3):
        project.write_release(f"kept-{number}", date=f"2024-07-0{number + 1} 09:00")
    project.write_release("no-time", date="2024-07-05")
    settings = project.settings()
    first = load_releases(settings)
    project.write_release("new-one", date="2024-07-09 09:00")
    parsed = _count_parses(monkeypatch)
    second = load_releases(settings)
    assert parsed == ["new-one.md"]
    assert [release.slug for release in second.releases][1:] == [release.slug for release in first.releases]
    # The warning of a release that came from the cache is still there.
    assert [(str(w), w.line) for w in second.warnings] == [(str(w), w.line) for w in first.warnings] != []
    load_releases(settings)  # the new release was appended to the cache: read back, not parsed
    assert parsed == ["new-one.md"]


def test_a_torn_cache_keeps_what_was_whole_and_is_written_whole_again(project, monkeypatch):
    for number in range(3):
        project.write_release(f"kept-{number}", date=f"2024-07-0{number + 1} 09:00")
    settings = project.settings()
    load_releases(settings)
    cache = project.root / "var" / "cache" / "releases.pickle"
    with open(cache, "ab") as stream:
        stream.write(b"\x80\x05 torn by a crash")  # the start of an append that never finished
    project.write_release("new-one", date="2024-07-09 09:00")
    parsed = _count_parses(monkeypatch)
    assert len(load_releases(settings).releases) == 4
    assert parsed == ["new-one.md"]
    assert len(load_releases(settings).releases) == 4
    assert parsed == ["new-one.md"]  # the file was rewritten whole: nothing parsed again


def _count_parses(monkeypatch) -> list[str]:
    """The names of the files parsed from now on (not read back from the cache)."""
    parsed: list[str] = []
    original = parallel.load_release

    def counting(path, settings, **options):
        parsed.append(path.name)
        return original(path, settings, **options)

    monkeypatch.setattr(parallel, "load_release", counting)
    return parsed


def test_a_release_read_back_from_the_cache_is_the_release_that_was_parsed(project, monkeypatch):
    """Every field, the set of fields the file gave (what pydantic reports as given), paths and nested records:
    pages, emails and posts made from a cached release are those of a freshly parsed one."""
    from tests.releases.test_languages import bundle

    bundle(project)
    project.write_release("plain", date="2024-07-01 09:00")
    settings = project.settings()
    parsed = load_releases(settings).releases
    parses = _count_parses(monkeypatch)
    cached = load_releases(settings).releases
    assert parses == []
    assert [release.slug for release in cached] == ["pilot", "plain"]
    for fresh, again in zip(parsed, cached, strict=True):
        assert again is not fresh
        assert again == fresh
        assert again.model_dump() == fresh.model_dump()
        assert again.model_fields_set == fresh.model_fields_set
        assert again.source.parent == fresh.source.parent and again.source.name == fresh.source.name
    pilot = cached[0]
    assert pilot.translations["de"].title == "Die Pilotlinie öffnet"
    assert pilot.hero.file.name == "hero.png" and pilot.hero.file.is_file()
    assert [issuer.id for issuer in pilot.issuers] == ["cluster-hub"]
    assert pilot.issuers[0].model_fields_set == parsed[0].issuers[0].model_fields_set


def test_a_release_read_back_from_the_cache_is_whole_after_a_later_load_rewrote_the_cache(project, monkeypatch):
    """A release read back from the cache reads its texts from the file it came from when first asked for them,
    whatever a later load did to the cache since (here: a changed release rewrites it whole)."""
    settings, cached = _three_read_back(project)
    project.write_release("kept-0", title="Kept 0, edited", date="2024-07-01 09:00", body="Edited.")
    project.write_release("kept-1", title="Kept 1, edited", date="2024-07-02 09:00", body="Edited.")
    parsed = _count_parses(monkeypatch)
    again = load_releases(settings).releases
    assert sorted(parsed) == ["kept-0.md", "kept-1.md"]
    assert [(r.slug, r.title, r.body_markdown.strip()) for r in cached] == [
        ("kept-2", "Kept 2", "Body 2."), ("kept-1", "Kept 1", "Body 1."), ("kept-0", "Kept 0", "Body 0."),
    ]
    assert [(r.title, r.body_markdown.strip()) for r in again] == [("Kept 2", "Body 2."), ("Kept 1, edited", "Edited."),
                                                            ("Kept 0, edited", "Edited.")]
    fresh = load_releases(settings).releases
    assert fresh[0].model_dump() == again[0].model_dump() == cached[0].model_dump()  # read whole, not in part
    assert fresh[0].model_fields_set == cached[0].model_fields_set
    assert again[0] == cached[0]


def test_a_copy_of_a_cached_release_leaves_the_others_readable(project):
    """A deep copy of a release read back from the cache, once gone, must not take the cache file away from the
    releases that have not read their texts yet."""
    _, cached = _three_read_back(project)
    copied = copy.deepcopy(cached[0])
    del copied
    gc.collect()
    assert [r.body_markdown.strip() for r in cached] == ["Body 2.", "Body 1.", "Body 0."]


def _three_read_back(project):
    """Three releases, parsed once, then read back from the cache: the settings and the releases read back."""
    for number in range(3):
        project.write_release(f"kept-{number}", title=f"Kept {number}", date=f"2024-07-0{number + 1} 09:00",
                              body=f"Body {number}.")
    settings = project.settings()
    load_releases(settings)
    return settings, load_releases(settings).releases


def test_a_release_read_whole_no_longer_holds_the_cache_file_open(project):
    """A long-lived process that keeps one release (the web preview) must not keep the cache file it came from
    open, and so on disk after a later save replaced it, once that release has been read whole."""
    _, cached = _three_read_back(project)
    kept = cached[0]
    del cached
    gc.collect()
    assert _open_cache_files() == 1  # its texts are still to be read
    assert kept.body_markdown.strip() == "Body 2."
    gc.collect()
    assert _open_cache_files() == 0


def _open_cache_files() -> int:
    opened = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            opened += "releases.pickle" in os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, closed already
            continue
    return opened
