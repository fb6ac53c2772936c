"""`pressroom subscribers ...` and `pressroom deliveries ...` as an operator uses them."""

from __future__ import annotations

from typer.testing import CliRunner

from pressroom.audience import AddressError
from pressroom.cli import app
from pressroom.ledger import Ledger, Outcome
from tests.conftest import NOW


def run(project, *args: str):
    return CliRunner().invoke(app, [*args, "--settings", str(project.root / "pressroom.toml")])


def test_subscribers_add_import_list_export_remove(project, tmp_path) -> None:
    added = run(project, "subscribers", "add", "Ann@Example.org", "--name", "Ann", "--topic", "Lithium", "--cadence", "weekly")
    assert added.exit_code == 0 and "added ann@example.org (confirmed, weekly, topics: lithium)" in added.output
    again = run(project, "subscribers", "add", "ann@example.org")
    assert isinstance(again.exception, AddressError) and "already a subscriber" in str(again.exception)

    csv = tmp_path / "list.csv"
    csv.write_text("address,name\nbob@example.org,Bob\nnot an address,X\nbob@example.org,Bob again\nann@example.org,Ann\n")
    imported = run(project, "subscribers", "import", str(csv))
    assert imported.exit_code == 1
    assert f"{csv}:3: 'not an address' contains spaces" in imported.output
    assert f"{csv}:4: bob@example.org appears earlier in the file" in imported.output
    assert f"{csv}:5: ann@example.org is already a subscriber" in imported.output
    assert "imported 1; skipped 3 (2 duplicates)" in imported.output

    listed = run(project, "subscribers", "list")
    assert "ann@example.org\tconfirmed\tweekly\tlithium\tAnn" in listed.output
    assert "bob@example.org\tconfirmed\tper-release\t*\tBob" in listed.output

    out = tmp_path / "export.csv"
    assert run(project, "subscribers", "export", str(out)).exit_code == 0
    assert out.read_text().splitlines()[1:] == ["ann@example.org,Ann,en,lithium,weekly,confirmed", "bob@example.org,Bob,en,,per-release,confirmed"]

    assert run(project, "subscribers", "remove", "bob@example.org").exit_code == 0
    assert "bob@example.org\tunsubscribed" in run(project, "subscribers", "list").output
    assert run(project, "subscribers", "remove", "nobody@example.org").exit_code == 1


def test_deliveries_report_and_retry_ambiguous(project) -> None:
    run(project, "subscribers", "add", "a@example.org")
    run(project, "subscribers", "add", "b@example.org")
    ledger = Ledger.from_settings(project.settings())
    ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
    token, rows = ledger.claim(release="news", channel="email", limit=10, now=NOW)
    ledger.advance(worker=token, outcomes=[], begin=[r.id for r in rows], now=NOW)
    ledger.advance(worker=token, outcomes=[Outcome(id=rows[0].id, state="sent", response="250 ok")], begin=[], now=NOW)

    report = run(project, "deliveries", "report", "--release", "news")
    assert "news\n  email (en)  1 sent, 1 ambiguous\n" in report.output
    assert "  news  email  b@example.org  its sender stopped while sending it (no answer recorded)" in report.output
    assert run(project, "deliveries", "retry").exit_code == 2
    retried = run(project, "deliveries", "retry", "--ambiguous", "--yes")
    assert "news  email  b@example.org" in retried.output and "1 ambiguous deliveries" in retried.output
    assert ledger.report(release="news").pending == 1
