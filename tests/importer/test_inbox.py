"""The drop folder: a file put in content/inbox/ becomes a draft and one editors' email, and is never published.

Runs the real publish flow (Prefect) against a real SMTP server on loopback (aiosmtpd), which counts
every message that reaches it.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from pressroom.audience import Audience
from tests._delivery import FaultyHandler, Received, SmtpServer
from tests.conftest import DATA, REPO, Project

pytestmark = pytest.mark.usefixtures("prefect_harness")

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
LONG_AGO = time.time() - 3600  # file times are wall-clock times, whatever the run pretends `now` is


class Keeping(FaultyHandler):
    """Accepts every message and keeps its bytes."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.received.add(envelope.rcpt_tos, envelope.content, keep=True)
        return "250 2.0.0 OK queued"


def _drop(inbox: Path, name: str, data: bytes) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_bytes(data)
    os.utime(inbox / name, (LONG_AGO, LONG_AGO))  # finished copying long ago


def test_a_dropped_file_becomes_a_draft_and_one_editors_email_and_nothing_is_published(
    project: Project, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.publish import publish

    shutil.copytree(REPO / "content" / "organisations", project.root / "content" / "organisations")
    toml = project.root / "pressroom.toml"
    toml.write_text(toml.read_text().replace("[email]\n", '[email]\neditors = ["editor@example.org"]\n'))
    received = Received()
    with SmtpServer(Keeping(received)) as smtp:
        for name, value in smtp.env().items():
            monkeypatch.setenv(name, value)
        settings = project.settings()
        Audience.from_settings(settings).import_csv(file=io.StringIO("address\nreader@example.org\n"), now=NOW)
        inbox = project.root / "content" / "inbox"
        _drop(inbox, "cluster-hub-press-release.txt", (DATA / "import" / "cluster-hub-press-release.txt").read_bytes())
        _drop(inbox, "broken.docx", b"PK\x03\x04 not really a Word file")
        _drop(inbox, "~$uster-hub-press-release.docx", b"Word's lock file of a document someone has open")

        publish(settings_file=str(toml), now=NOW)
        publish(settings_file=str(toml), now=NOW + timedelta(minutes=5))  # the next scheduled run: nothing new

        draft = project.releases / "cluster-hub-press-release" / "index.md"
        assert draft.is_file() and "\nstatus: draft\n" in draft.read_text(encoding="utf-8")
        assert sorted(p.name for p in (inbox / "done").iterdir()) == ["cluster-hub-press-release.txt"]
        assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["broken.docx", "broken.docx.why.txt"]
        assert "the file is damaged" in (inbox / "failed" / "broken.docx.why.txt").read_text(encoding="utf-8")
        assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == ["~$uster-hub-press-release.docx"]

        # One email, to the editor, across both runs: the draft with its check result and guesses, the refused file.
        assert received.by_recipient() == {"editor@example.org": 1}
        [raw] = received.messages
        mail = message_from_bytes(raw, policy=policy.default)
        assert mail["Subject"] == "[Pressroom] 1 new draft from the inbox, 1 file not imported"
        text = mail.get_body(preferencelist=("plain",)).get_content()
        assert ('1. "Back in 2022, the clustering workshop “Production of Raw Material for Batteries…": draft, '
                "content/releases/cluster-hub-press-release/index.md") in text
        assert "pressroom check: valid" in text and "title: TODO: from the first line, shortened" in text
        assert 'kicker: removed "PRESS RELEASE"' in text
        assert "issuers: the PROJECTS INVOLVED section names no one" in text
        assert "- broken.docx: the file is damaged" in text

        # Nothing of the draft anywhere public: not the site, not a feed, not an email to the reader.
        public = settings.path("public")
        assert not (public / "releases" / "cluster-hub-press-release").exists()
        for feed in ("feed.xml", "atom.xml", "feed.json", "sitemap.xml"):
            assert "cluster-hub-press-release" not in (public / feed).read_text(encoding="utf-8")
        assert not list(settings.path("var").glob("outbox/**/*.eml"))

        # Once an editor gives it a title and approves it, the same publish flow puts it out (so the above could fail).
        text = draft.read_text(encoding="utf-8")
        stand_in = 'title: "Back in 2022, the clustering workshop “Production of Raw Material for Batteries…"'
        assert stand_in in text
        draft.write_text(text.replace(stand_in, 'title: "Friends in research"')
                         .replace("status: draft", "status: approved"), encoding="utf-8")
        publish(settings_file=str(toml), now=datetime(2026, 12, 8, 8, 5, tzinfo=UTC))
        assert (public / "releases" / "cluster-hub-press-release" / "index.html").is_file()
        assert "Friends in research" in (public / "feed.xml").read_text(encoding="utf-8")
        assert received.by_recipient() == {"editor@example.org": 1, "reader@example.org": 1}
