"""``chargeback ledger|period|invoice|journal|dispute|audit``: the finance commands.

Each command opens the cost database (``--db`` or ``CHARGEBACK_DB``, a SQLite file by
default) and makes one call into :mod:`chargeback_engine.finance`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from chargeback_engine import display, finance
from chargeback_engine.cli.defaults import db_option
from chargeback_engine.cli.output import Column, echo_json, echo_status, echo_table, format_option
from chargeback_engine.cli.policy import _count
from chargeback_engine.costdb.connection import missing_sqlite_file
from chargeback_engine.errors import ChargebackError
from chargeback_engine.finance.disputes import STATUSES, TRANSITIONS
from chargeback_engine.periods import Period


def _books(function: Callable[..., Any], *, read_only: bool = False) -> Callable[..., Any]:
    """Add ``--db`` and ``--settings``; pass an open engine and the settings; turn errors into exit 1.

    A ``read_only`` command never creates the database: a SQLite file that is not there is an error.
    """

    @db_option
    @click.option(
        "--settings",
        "settings_path",
        envvar="CHARGEBACK_FINANCE_SETTINGS",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Finance settings YAML (accounts, payer entity, markups, dispute routing).",
    )
    @functools.wraps(function)
    def wrapper(db: str | None, settings_path: Path | None, **kwargs: Any) -> Any:
        if read_only and (missing := missing_sqlite_file(db)):
            raise click.ClickException(
                f"{missing}: no cost database (nothing recorded yet); give --db URL or set CHARGEBACK_DB"
            )
        try:
            engine = finance.open_database(db)
            try:
                return function(engine=engine, settings=finance.load_settings(settings_path), **kwargs)
            finally:
                engine.dispose()
        except ChargebackError as error:
            raise click.ClickException(str(error)) from error

    return wrapper


_reading = functools.partial(_books, read_only=True)


def _period(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Period | None:
    try:
        return None if value is None else Period.parse(value)
    except ChargebackError as error:
        raise click.BadParameter(str(error)) from error


def _decimal(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Decimal | None:
    try:
        return None if value is None else Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a decimal amount") from None


def _moment(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


period_option = click.option("--period", required=True, callback=_period, metavar="YYYY-MM")
at_option = click.option(
    "--at", "now", callback=_moment, metavar="ISO-8601", help="When it happened (default: now, UTC)."
)


# --- ledger -----------------------------------------------------------------------------------


@click.group()
def ledger() -> None:
    """Record engine runs in the cost database."""


@ledger.command("ingest")
@click.option(
    "--ledger",
    "ledger_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The engine's allocations.parquet (LEDGER_SCHEMA).",
)
@click.option("--policy", "policies", required=True, multiple=True, type=click.Path(exists=True, path_type=Path))
@period_option
@click.option(
    "--source-version",
    "versions",
    multiple=True,
    metavar="SOURCE=VERSION",
    help="Version of each source (repeatable); defaults to the input hashes in --manifest.",
)
@click.option(
    "--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The engine run's manifest.json."
)
@click.option(
    "--decisions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The run's decisions Parquet (DECISION_RECORD_SCHEMA).",
)
@format_option
@_books
def ledger_ingest(
    engine: Any,
    settings: Any,
    ledger_path: Path,
    policies: tuple[Path, ...],
    period: Period,
    versions: tuple[str, ...],
    manifest: Path | None,
    decisions: Path | None,
    output_format: str,
) -> None:
    """Record a run (its rows of PERIOD); repeating it changes nothing, restating a closed period adds adjustments."""
    pairs = dict(v.split("=", 1) for v in versions if "=" in v)
    if len(pairs) != len(versions):
        raise click.BadParameter("use SOURCE=VERSION", param_hint="--source-version")
    registry = click.get_current_context().find_root().obj.registry
    run = finance.run_from_files(ledger_path, policies, period, pairs, manifest, decisions, registry)
    result = finance.ingest_run(engine, run)
    if output_format == "json":
        echo_json(
            {
                "run_key": result.run_key,
                "period": result.period,
                "committed": result.committed,
                "restated": result.restated,
                "adjustment_period": result.adjustment_period,
                "adjustments": result.adjustments,
                "totals": dict(result.totals),
            }
        )
        return
    state = "recorded" if result.committed else "already recorded (nothing written)"
    echo_status(f"run {result.run_key} for {result.period}: {state}", style="green" if result.committed else "yellow")
    if result.restated:
        click.echo(
            f"{result.period} is closed: {result.adjustments:,} adjustment lines booked into {result.adjustment_period}"
        )


# --- period -----------------------------------------------------------------------------------


@click.group()
def period() -> None:
    """Close periods and see their status."""


@period.command("close")
@period_option
@format_option
@_books
def period_close(engine: Any, settings: Any, period: Period, output_format: str) -> None:
    """Issue the period's invoices and journal, and close it for good."""
    result = finance.close_period(engine, period, settings)
    if output_format == "json":
        echo_json(
            {
                "period": result.period,
                "committed": result.committed,
                "batch_id": result.batch_id,
                "invoices": [_invoice_json(i) for i in result.statement.invoices],
                "totals": result.statement.totals(),
            }
        )
        return
    echo_status(
        f"{result.period} {'closed' if result.committed else 'was already closed'}: "
        f"{len(result.statement.invoices)} invoices, journal batch {result.batch_id}",
        style="green" if result.committed else "yellow",
    )
    _echo_totals(result.statement)


def _echo_totals(stmt: finance.Statement) -> None:
    """The period total as the sum of what each treatment holds; invoice totals add markup on top."""
    for currency, t in sorted(stmt.totals().items()):
        invoiced = [inv for inv in stmt.invoices if inv.currency == currency]
        markup = sum((inv.markup for inv in invoiced), Decimal(0))
        click.echo(
            f"  {currency}: period total {display.money(t['rounded'], currency)}"
            f" = invoice subtotals {display.money(t['invoice'], currency)}"
            f" + showback {display.money(t['showback'], currency)}"
            f" + unallocated {display.money(t['unallocated'], currency)}"
        )
        click.echo(
            f"  {currency}: {_count(len(invoiced), 'invoice')} total"
            f" {display.money(t['invoice'] + markup, currency)} = subtotals {display.money(t['invoice'], currency)}"
            f" + markup {display.money(markup, currency)}"
        )


def _invoice_json(inv: finance.Invoice) -> dict[str, Any]:
    return {
        "invoice_id": inv.invoice_id,
        "number": inv.number,
        "period": inv.period,
        "cost_center": inv.cost_center,
        "cost_center_name": inv.cost_center_name,
        "currency": inv.currency,
        "subtotal": inv.subtotal,
        "markup": inv.markup,
        "total": inv.total,
    }


@period.command("report")
@period_option
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@format_option
@_reading
def period_report(engine: Any, settings: Any, period: Period, out: Path, output_format: str) -> None:
    """Write the period's statement (the showback report): every line as CSV, totals as JSON."""
    _echo_wrote(finance.export_statement(engine, str(period), out, settings), output_format)


def _echo_wrote(path: Path, output_format: str) -> None:
    if output_format == "json":
        echo_json({"wrote": str(path)})
    else:
        click.echo(f"wrote {path}")


@period.command("status")
@format_option
@_reading
def period_status(engine: Any, settings: Any, output_format: str) -> None:
    """Every period with a run: open with its current run, or closed with the run it was issued from.

    A run that restated a closed period is shown apart: its changes went to a later period.
    """
    statuses = finance.period_statuses(engine)
    if output_format == "json":
        echo_json(
            [
                {
                    "period": s.period,
                    "closed": s.closed,
                    "run_key": s.run_key,
                    "closed_run": s.closed_run or None,
                    "restated_by": s.restated_by or None,
                }
                for s in statuses
            ]
        )
        return
    echo_table(
        [Column("period"), Column("status"), Column("run"), Column("restated by")],
        [
            (s.period, "closed" if s.closed else "open", s.closed_run if s.closed else s.run_key, s.restated_by)
            for s in statuses
        ],
    )


# --- invoice ----------------------------------------------------------------------------------


@click.group()
def invoice() -> None:
    """Invoices of chargeback cost centers."""


@invoice.command("list")
@period_option
@format_option
@_reading
def invoice_list(engine: Any, settings: Any, period: Period, output_format: str) -> None:
    """Invoices of a closed period, or the draft of an open one, with the period's totals."""
    stmt = finance.statement(engine, period, settings)
    if output_format == "json":
        echo_json(
            {
                "period": str(period),
                "closed": stmt.closed,
                "invoices": [_invoice_json(i) for i in stmt.invoices],
                "totals": stmt.totals(),
            }
        )
        return
    echo_table(
        [Column("invoice"), Column("number"), Column("cost center"), Column("total", numeric=True)],
        [
            (
                inv.invoice_id,
                inv.number,
                display.cost_center(inv.cost_center, {inv.cost_center: inv.cost_center_name}),
                display.money(inv.total, inv.currency),
            )
            for inv in stmt.invoices
        ],
        title=None if stmt.closed else f"{period} is open: draft invoices",
    )
    _echo_totals(stmt)
    problems = stmt.inconsistencies()
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(
            f"the invoices of {period} do not add up ({_count(len(problems), 'problem')}); run chargeback audit verify"
        )


@invoice.command("render")
@period_option
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(finance.INVOICE_FORMATS),
    help="Repeatable; default: all of json, csv and html.",
)
@_reading
def invoice_render(engine: Any, settings: Any, period: Period, out: Path, formats: tuple[str, ...]) -> None:
    """Write the issued invoices of a closed period, then manifest.json (its --format names the files)."""
    click.echo(f"wrote {finance.export_invoices(engine, str(period), out, formats or finance.INVOICE_FORMATS)}")


# --- journal ----------------------------------------------------------------------------------


@click.group()
def journal() -> None:
    """Balanced ERP journals."""


@journal.command("export")
@period_option
@click.option("--erp", required=True, type=click.Choice(sorted(finance.ERP_EXPORTERS)))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@format_option
@_reading
def journal_export(engine: Any, settings: Any, period: Period, erp: str, out: Path, output_format: str) -> None:
    """Write the period's posted journal for an ERP, then manifest.json."""
    _echo_wrote(finance.export_journal(engine, period, erp, out, settings), output_format)


@journal.command("correct")
@period_option
@format_option
@_books
def journal_correct(engine: Any, settings: Any, period: Period, output_format: str) -> None:
    """Re-derive a closed period's journal with the current settings: reversal plus repost."""
    batch = finance.correct_journal(engine, str(period), settings)
    if output_format == "json":
        echo_json(
            {"period": str(period), "batch_id": batch and batch.batch_id, "entries": len(batch.entries) if batch else 0}
        )
        return
    click.echo(
        "journal unchanged"
        if batch is None
        else f"correction batch {batch.batch_id}: {len(batch.entries)} entries (reversals and reposts)"
    )


# --- dispute ----------------------------------------------------------------------------------


@click.group()
def dispute() -> None:
    """Contest an invoice; approved credits land on the next invoice."""


@dispute.command("submit")
@period_option
@click.option("--cost-center", required=True)
@click.option("--type", "dispute_type", required=True, help="e.g. allocation, usage, rate, tagging.")
@click.option("--amount", required=True, callback=_decimal)
@click.option("--description", required=True)
@click.option("--by", "actor", required=True)
@click.option("--currency")
@at_option
@format_option
@_books
def dispute_submit(
    engine: Any,
    settings: Any,
    period: Period,
    cost_center: str,
    dispute_type: str,
    amount: Decimal,
    description: str,
    actor: str,
    currency: str | None,
    now: datetime | None,
    output_format: str,
) -> None:
    """Open a dispute against a cost center's invoice."""
    d = finance.submit_dispute(
        engine,
        period=period,
        cost_center=cost_center,
        dispute_type=dispute_type,
        amount=amount,
        description=description,
        submitted_by=actor,
        settings=settings,
        currency=currency,
        now=now,
    )
    _echo_dispute(d, output_format, f"{d.dispute_id}  {d.status}  assigned to {d.assignee}  due {d.due_at}")


def _echo_dispute(d: finance.Dispute, output_format: str, line: str) -> None:
    if output_format == "json":
        echo_json(d.document())
    else:
        click.echo(line)


@dispute.command("comment")
@click.argument("dispute_id")
@click.option("--by", "actor", required=True)
@click.option("--text", required=True)
@at_option
@format_option
@_books
def dispute_comment(
    engine: Any, settings: Any, dispute_id: str, actor: str, text: str, now: datetime | None, output_format: str
) -> None:
    """Add a comment to a dispute."""
    d = finance.comment(engine, dispute_id, actor=actor, text=text, now=now)
    _echo_dispute(d, output_format, f"{d.dispute_id}  {d.status}  {len(d.comments)} comments")


def _transition_command(action: str) -> click.Command:
    @click.argument("dispute_id")
    @click.option("--by", "actor", required=True)
    @click.option("--note", default="")
    @at_option
    @format_option
    @_books
    def command(
        engine: Any,
        settings: Any,
        dispute_id: str,
        actor: str,
        note: str,
        now: datetime | None,
        output_format: str,
        credit: Decimal | None = None,
    ) -> None:
        d = finance.transition(
            engine, dispute_id, action, actor=actor, settings=settings, note=note, credit=credit, now=now
        )
        _echo_dispute(
            d,
            output_format,
            f"{d.dispute_id}  {d.status}  assigned to {d.assignee}"
            + (f"  credit {display.money(d.credit, d.currency)}" if action == "approve" else ""),
        )

    if action == "approve":
        command = click.option("--credit", callback=_decimal, help="Credit to grant (default: the disputed amount).")(
            command
        )
    return click.command(action, help=f"{action.capitalize()} a dispute.")(command)


for _action in TRANSITIONS:
    dispute.add_command(_transition_command(_action))


@dispute.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--cost-center")
@click.option("--overdue", is_flag=True, help="Only disputes past their resolution SLA.")
@at_option
@format_option
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as --format json (kept for scripts).")
@_reading
def dispute_list(
    engine: Any,
    settings: Any,
    status: str | None,
    cost_center: str | None,
    overdue: bool,
    now: datetime | None,
    output_format: str,
    as_json: bool,
) -> None:
    """List disputes, oldest first."""
    moment = now or datetime.now(UTC)
    found = finance.list_disputes(
        engine, status=status, cost_center=cost_center, overdue_at=moment if overdue else None
    )
    if as_json or output_format == "json":
        echo_json([d.document() for d in found])
        return
    echo_table(
        [
            Column("dispute"),
            Column("period"),
            Column("cost center"),
            Column("type"),
            Column("status"),
            Column("amount", numeric=True),
            Column("assignee"),
            Column("due"),
            Column("", style="bold red"),
        ],
        [
            (
                d.dispute_id,
                d.period,
                display.cost_center(d.cost_center, {d.cost_center: d.cost_center_name}),
                d.dispute_type,
                d.status,
                display.money(d.amount, d.currency),
                d.assignee,
                str(d.due_at),
                "OVERDUE" if d.overdue(moment) else "",
            )
            for d in found
        ],
    )


@dispute.command("report")
@at_option
@format_option
@_reading
def dispute_report(engine: Any, settings: Any, now: datetime | None, output_format: str) -> None:
    """Disputes by status and by type: counts, disputed and credited amounts, overdue count."""
    counted = finance.dispute_report(engine, now=now)
    if output_format == "json":
        echo_json(counted)
        return
    rows = [
        (
            group.removeprefix("by_"),
            key,
            str(b["count"]),
            display.money(Decimal(disputed), currency),
            display.money(Decimal(b["credited"][currency]), currency),
        )
        for group in ("by_status", "by_type")
        for key, b in counted[group].items()
        for currency, disputed in b["disputed"].items()
    ]
    echo_table(
        [
            Column("by"),
            Column(""),
            Column("disputes", numeric=True),
            Column("disputed", numeric=True),
            Column("credited", numeric=True),
        ],
        rows,
        footer=[("total", "", str(counted["total"]), "", ""), ("overdue", "", str(counted["overdue"]), "", "")],
    )


# --- audit ------------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """The tamper-evident audit chain."""


@audit.command("verify")
@click.option(
    "--witness",
    "witness_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A handed-out JSON artefact (manifest.json, invoice, journal) to check the chain against; "
    "repeatable. Default: the latest witness the database keeps.",
)
@format_option
@_reading
def audit_verify(engine: Any, settings: Any, witness_files: tuple[Path, ...], output_format: str) -> None:
    """Re-derive the hash chain and the rows it covers; exit 1 on any altered, missing or added record or row."""
    witnesses = [w for path in witness_files for w in finance.witnesses_in(path)]
    result = finance.verify_audit_chain(engine, witnesses)
    if output_format == "json":
        echo_json(
            {
                "ok": result.ok,
                "records": result.records,
                "head": result.head,
                "problems": list(result.problems),
                "witnesses": list(result.witnesses),
            }
        )
    for problem in result.problems if output_format == "json" else result.shown:
        click.echo(problem, err=True)
    used = "checked against " + ", ".join(result.witnesses) if result.witnesses else "no witness to check against yet"
    if not result.ok:
        raise click.ClickException(
            f"audit chain broken: {_count(len(result.problems), 'problem')} in {result.records:,} records; {used}"
        )
    if output_format != "json":
        echo_status(f"audit chain intact: {result.records:,} records, head {result.head}; {used}", style="green")
