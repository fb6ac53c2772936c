"""What one publish run did, for the CLI (one line each) and the run's markdown artifact."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pressroom.dispatch import WAIT, AfterPublication, DeliveryReport, SocialReport
from pressroom.releases import LoadResult, Release, public_releases
from pressroom.settings import Settings
from pressroom.site import BuildReport

__all__ = ["PublishSummary"]


def _next_release(releases: list[Release], now: datetime) -> tuple[str, datetime] | None:
    upcoming = [r for r in releases if r.status == "approved" and r.date > now]
    if not upcoming:
        return None
    soonest = min(upcoming, key=lambda r: r.date)
    return soonest.slug, soonest.date


def _line(report: DeliveryReport) -> str:
    if report.skipped == WAIT.reason:
        return f"{report.release} {report.channel}: {report.skipped}"
    return report.as_text()


@dataclass
class PublishSummary:
    """What one publish run did: built, newly public, sent or posted on each channel, skipped and why."""

    now: datetime
    public: list[str] = field(default_factory=list)
    newly_public: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    build: BuildReport | None = None
    next_release: tuple[str, datetime] | None = None
    social: SocialReport | None = None
    email: list[DeliveryReport] = field(default_factory=list)  # the media list's, then each release's
    after: AfterPublication | None = None  # corrections, withdrawal notices, reminders

    @classmethod
    def start(cls, *, loaded: LoadResult, settings: Settings, now: datetime) -> PublishSummary:
        return cls(
            now=now,
            public=[release.slug for release in public_releases(loaded.releases, now)],
            problems=[problem.line_for_humans(settings.root) for problem in loaded.problems],
            next_release=_next_release(loaded.releases, now),
        )

    @property
    def waiting(self) -> list[str]:
        """The releases whose email waits for an editor's answer."""
        return [report.release or "" for report in self.email if report.skipped == WAIT.reason]

    def as_markdown(self, settings: Settings) -> str:
        zone = settings.site.tz
        lines = [f"# Publish run at {self.now.astimezone(zone):%Y-%m-%d %H:%M %Z}", ""]
        lines.append(f"- public releases: **{len(self.public)}**; newly public this run: **{len(self.newly_public)}**")
        for slug in self.newly_public:
            lines.append(f"  - [{slug}]({settings.site.base_url}/releases/{slug}/)")
        if self.build is not None:
            lines.append(
                f"- site: {self.build.pages} pages; wrote {len(self.build.written)}, "
                f"unchanged {self.build.unchanged}, removed {len(self.build.removed)}"
            )
        lines += [f"- email {_line(report)}" for report in self.email]
        if self.social is not None:
            lines.append(f"- {self.social.as_text()}")
        lines += [f"- {line}" for line in self._after()]
        lines += [f"- reminder: `{reminder}`" for reminder in (self.after.reminders if self.after else [])]
        if self.next_release:
            slug, when = self.next_release
            lines.append(f"- next scheduled publication: `{slug}` at {when.astimezone(zone):%Y-%m-%d %H:%M %Z}")
        if self.problems:
            lines += ["", f"## {len(self.problems)} release(s) skipped", "", "| problem |", "|---|"]
            lines += [f"| `{problem}` |" for problem in self.problems]
        return "\n".join(lines)

    def _after(self) -> list[str]:
        if self.after is None:
            return []
        return [f"{report.channel} of {report.release}: {report.as_text()}" for report in self.after.emails] + [
            f"{result.channel} of {result.release}: {result.state} ({result.detail})" for result in self.after.social.results
        ]

    def as_text(self) -> str:
        parts = [f"{len(self.public)} public, {len(self.newly_public)} newly public"]
        if self.build is not None:
            parts.append(f"site: wrote {len(self.build.written)}, unchanged {self.build.unchanged}")
        sent = [report for report in self.email if report.skipped != WAIT.reason]
        if sent:
            parts.append("email: " + ", ".join(report.as_text() for report in sent))
        if self.social is not None:
            parts.append(self.social.as_text())
        parts += self._after()
        if self.next_release:
            parts.append(f"next: {self.next_release[0]} at {self.next_release[1].isoformat()}")
        text = "; ".join(parts)
        text += "".join(f"\n{slug}: {WAIT.reason}" for slug in dict.fromkeys(self.waiting))
        if self.problems:
            text += "\n" + "\n".join(f"skipped: {problem}" for problem in self.problems)
        text += "".join(f"\nreminder: {reminder}" for reminder in (self.after.reminders if self.after else []))
        return text
