"""Tag compliance: which lines carry every tag ``spec.tags.required`` names, by count and spend.

Reads a run's outputs: ``focus_allocated.parquet`` (each line's enriched ``Tags``, account,
resource and the amount directly allocated to each cost center, stage 0) and, when the run
enriched tags, ``enrichment.parquet`` (which source filled which tag). The tags are
normalised as the policy normalises them, once per distinct ``Tags`` text; DuckDB does the
sums, so amounts stay exact ``DECIMAL``. Spend is gross: each amount counts by its absolute
value, so a credit on an untagged line does not make the tagged share exceed 100%. Several runs (one per period, or the daily
month-to-date runs) give the trend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from chargeback_engine import display
from chargeback_engine.components import Alert
from chargeback_engine.csvwriter import csv_text
from chargeback_engine.enrich.explain_enrichment import enrichment_table_path
from chargeback_engine.errors import InputError
from chargeback_engine.periods import Period
from chargeback_engine.policy.policy_model import Policy, PolicySet
from chargeback_engine.sql_common import connect, sql_name, sql_text

FOCUS_FILE = "focus_allocated.parquet"
DEFAULT_OWNER_TAG = "owner"
PERCENT = Decimal("0.1")


@dataclass(frozen=True)
class Compliance:
    """Lines and spend of one group (an account, a cost center, a run), and how much complies."""

    key: str
    currency: str
    lines: int
    compliant_lines: int
    spend: Decimal
    compliant_spend: Decimal

    @property
    def pct_lines(self) -> Decimal | None:
        return _pct(Decimal(self.compliant_lines), Decimal(self.lines))

    @property
    def pct_spend(self) -> Decimal | None:
        return _pct(self.compliant_spend, self.spend)

    def as_json(self) -> dict[str, Any]:
        return {
            **{k: format(v, "f") if isinstance(v, Decimal) else v for k, v in asdict(self).items()},
            "pct_lines": _text(self.pct_lines),
            "pct_spend": _text(self.pct_spend),
        }


@dataclass(frozen=True)
class Untagged:
    """A resource whose lines lack required tags, with whom to ask."""

    resource_id: str
    account: str
    currency: str
    spend: Decimal
    lines: int
    missing: tuple[str, ...]
    owner: str | None


@dataclass(frozen=True)
class Filled:
    """How many lines (and how much spend) one source filled one tag on."""

    source: str
    enricher: str
    tag: str
    currency: str
    lines: int
    spend: Decimal


@dataclass(frozen=True)
class TagReport:
    run: str
    period: str
    required: tuple[str, ...]
    owner_tag: str
    total: tuple[Compliance, ...]
    by_account: tuple[Compliance, ...]
    by_cost_center: tuple[Compliance, ...]
    trend: tuple[Compliance, ...]  # key: the period of each run
    top_untagged: tuple[Untagged, ...]
    filled: tuple[Filled, ...] = field(default=())
    #: Cost-center names from the policy, shown beside the ids in the table and Markdown.
    names: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        def plain(row: Any) -> dict[str, Any]:
            return (
                row.as_json()
                if isinstance(row, Compliance)
                else {
                    k: format(v, "f") if isinstance(v, Decimal) else list(v) if isinstance(v, tuple) else v
                    for k, v in asdict(row).items()
                }
            )

        return {
            "run": self.run,
            "period": self.period,
            "required": list(self.required),
            "owner_tag": self.owner_tag,
            **{
                name: [plain(r) for r in getattr(self, name)]
                for name in ("total", "by_account", "by_cost_center", "trend", "top_untagged", "filled")
            },
        }


def _pct(part: Decimal, whole: Decimal) -> Decimal | None:
    return None if whole == 0 else (100 * part / whole).quantize(PERCENT)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def tag_report(
    runs: Sequence[str | Path], policies: Policy | PolicySet, *, top: int = 10, required: Sequence[str] = ()
) -> TagReport:
    """The compliance of the last of ``runs`` (output directories, oldest first), with the trend
    over all of them; ``spec.tags`` of the policy governing the last run's period says what is
    required, unless ``required`` names the tags (normalised as the policy normalises keys)."""
    directories = [Path(r) for r in runs]
    if not directories:
        raise InputError("give at least one run directory")
    policy = (
        policies if isinstance(policies, Policy) else policies.for_period(Period.parse(_period_of(directories[-1])))
    )
    required = tuple(policy.tags.normalize_key(t) for t in required) or required_tags(policy)
    if not required:
        raise InputError(f"policy {policy.name} lists no spec.tags.required; there is nothing to comply with")
    owner_tag = policy.tags.normalize_key(_spec_tags(policy).get("owner", DEFAULT_OWNER_TAG))
    trend = []
    for directory in directories:  # the last connection stays open for the details
        con = _lines(directory, policy, required, owner_tag)
        trend += [_with_key(c, _period_of(directory)) for c in _grouped(con, "'all'")]
    [(run_id, period)] = con.execute("SELECT any_value(run_id), any_value(period) FROM manifest").fetchall()
    untagged = con.sql(f"""
        SELECT coalesce(resource_id, '(no resource id)'), coalesce(account, '-'), currency, sum(amount),
               count(DISTINCT line),
               list_distinct(flatten(list(missing))), max(owner)
        FROM lines WHERE NOT compliant GROUP BY ALL ORDER BY sum(amount) DESC, 1 LIMIT {int(top)}
    """).fetchall()
    filled = _filled(con, directories[-1])
    return TagReport(
        run_id,
        period,
        required,
        owner_tag,
        total=tuple(_grouped(con, "'all'")),
        by_account=tuple(_grouped(con, "coalesce(account, '-')")),
        by_cost_center=tuple(_grouped(con, "cost_center")),
        trend=tuple(sorted(trend, key=lambda c: c.key)),
        top_untagged=tuple(Untagged(r, a, c, _exact(s), n, tuple(sorted(m)), o) for r, a, c, s, n, m, o in untagged),
        filled=filled,
        names={cc.id: cc.name for cc in policy.cost_centers},
    )


def by_cost_center(directory: str | Path, policy: Policy) -> tuple[Compliance, ...]:
    """The run's compliance per cost center and currency, as the tag report has it: what
    finance's ``mode: auto`` reads. Empty when ``policy`` requires no tags or ``directory``
    holds no ``focus_allocated.parquet`` and ``manifest.json`` (a ledger kept on its own)."""
    directory = Path(directory)
    if not required_tags(policy) or not all((directory / f).is_file() for f in (FOCUS_FILE, "manifest.json")):
        return ()
    return tag_report([directory], policy).by_cost_center


def required_tags(policy: Policy) -> tuple[str, ...]:
    """The canonical keys ``spec.tags.required`` lists (empty: the policy requires none)."""
    return tuple(policy.tags.normalize_key(t) for t in _spec_tags(policy).get("required", []))


def _spec_tags(policy: Policy) -> dict[str, Any]:
    tags: dict[str, Any] = policy.document.get("spec", {}).get("tags", {})
    return tags


def _period_of(directory: Path) -> str:
    manifest = directory / "manifest.json"
    if not manifest.exists():
        raise InputError(f"{directory}: no manifest.json; is it the --out directory of a run?")
    return str(json.loads(manifest.read_text(encoding="utf-8"))["period"])


def _with_key(row: Compliance, key: str) -> Compliance:
    return Compliance(key, row.currency, row.lines, row.compliant_lines, row.spend, row.compliant_spend)


def _exact(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(value)


def _lines(directory: Path, policy: Policy, required: tuple[str, ...], owner_tag: str) -> Any:
    """A DuckDB connection holding ``lines``: one row per direct allocation of a line, with
    the line's compliance, its missing tags and its owner."""
    focus, manifest = directory / FOCUS_FILE, directory / "manifest.json"
    if not focus.exists() or not manifest.exists():
        raise InputError(
            f"{directory}: no {FOCUS_FILE} and manifest.json; is it the --out directory of a run "
            "with the focus-allocated exporter?"
        )
    con = connect()
    described = json.loads(manifest.read_text(encoding="utf-8"))
    con.execute("CREATE TABLE manifest AS SELECT ? AS run_id, ? AS period", [described["run_id"], described["period"]])
    con.execute(f"CREATE VIEW focus AS SELECT * FROM read_parquet({sql_text(str(focus))})")
    cost = sql_name(policy.cost_column)
    texts = [row[0] for row in con.sql("SELECT DISTINCT Tags FROM focus").fetchall()]
    con.register("tag_facts", _tag_facts(texts, policy, required, owner_tag))
    con.execute(f"""
        CREATE TABLE lines AS
        SELECT f.x_SourceId || '#' || f.x_SourceRow AS line, f.x_SourceId AS source_id, f.x_SourceRow AS source_row,
               f.SubAccountId AS account, f.ResourceId AS resource_id, f.x_CostCenterId AS cost_center,
               f.BillingCurrency AS currency, abs(f.{cost}) AS amount, t.compliant, t.missing, t.owner
        FROM focus f JOIN tag_facts t ON f.Tags IS NOT DISTINCT FROM t.tags
        WHERE json_extract(f.AllocatedMethodDetails, '$.stage')::INTEGER = 0
    """)
    return con


def _tag_facts(texts: Sequence[str | None], policy: Policy, required: tuple[str, ...], owner_tag: str) -> pa.Table:
    """Per distinct ``Tags`` text: compliant, the required tags missing, and the owner tag's value."""
    compliant, missing, owners = [], [], []
    for text in texts:
        try:
            raw = json.loads(text) if text else {}
        except ValueError:
            raw = {}
        tags = {
            policy.tags.normalize_key(k): str(v).strip()
            for k, v in (raw.items() if isinstance(raw, dict) else ())
            if v is not None and str(v).strip() != ""
        }
        gaps = [t for t in required if t not in tags]
        compliant.append(not gaps)
        missing.append(gaps)
        owners.append(tags.get(owner_tag))
    return pa.table(
        {
            "tags": pa.array(texts, pa.string()),
            "compliant": compliant,
            "missing": pa.array(missing, pa.list_(pa.string())),
            "owner": pa.array(owners, pa.string()),
        }
    )


def _grouped(con: Any, key: str) -> list[Compliance]:
    rows = con.sql(f"""
        SELECT {key} AS key, currency, count(DISTINCT line), count(DISTINCT line) FILTER (compliant),
               sum(amount), coalesce(sum(amount) FILTER (compliant), 0)
        FROM lines GROUP BY ALL ORDER BY 1, 2
    """).fetchall()
    return [Compliance(k, c, n, m, _exact(s), _exact(cs)) for k, c, n, m, s, cs in rows]


def _filled(con: Any, directory: Path) -> tuple[Filled, ...]:
    table = enrichment_table_path(directory)
    if table is None:
        return ()
    rows = con.sql(f"""
        WITH e AS (SELECT * FROM read_parquet({sql_text(str(table))})),
        spend AS (SELECT source_id, source_row, currency, sum(amount) AS amount FROM lines GROUP BY ALL)
        SELECT e.source, e.enricher, e.tag, s.currency, count(*), sum(s.amount)
        FROM e JOIN spend s ON s.source_id = e.x_SourceId AND s.source_row = e.x_SourceRow
        GROUP BY ALL ORDER BY 1, 3, 4
    """).fetchall()
    return tuple(Filled(src, enr, tag, cur, n, _exact(s)) for src, enr, tag, cur, n, s in rows)


# -- rendering ----------------------------------------------------------------------------


def _compliance_rows(report: TagReport) -> list[tuple[str, Compliance]]:
    return (
        [("total", c) for c in report.total]
        + [("account", c) for c in report.by_account]
        + [("cost_center", c) for c in report.by_cost_center]
        + [("trend", c) for c in report.trend]
    )


def render_json(report: TagReport) -> str:
    return json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n"


def render_csv(report: TagReport) -> str:
    """One table with a ``section`` column, so a spreadsheet can filter each part."""
    header = [
        "section",
        "key",
        "currency",
        "lines",
        "compliant_lines",
        "pct_lines",
        "spend",
        "compliant_spend",
        "pct_spend",
        "missing",
        "owner",
        "source",
        "enricher",
        "tag",
    ]
    rows: list[list[Any]] = []
    for section, c in _compliance_rows(report):
        rows.append(
            [
                section,
                c.key,
                c.currency,
                c.lines,
                c.compliant_lines,
                _text(c.pct_lines) or "",
                c.spend,
                c.compliant_spend,
                _text(c.pct_spend) or "",
                "",
                "",
                "",
                "",
                "",
            ]
        )
    for u in report.top_untagged:
        rows.append(
            [
                "untagged",
                u.resource_id,
                u.currency,
                u.lines,
                0,
                "",
                u.spend,
                0,
                "",
                " ".join(u.missing),
                u.owner or "",
                "",
                "",
                "",
            ]
        )
    for f in report.filled:
        rows.append(
            [
                "filled",
                f"{f.source}/{f.tag}",
                f.currency,
                f.lines,
                "",
                "",
                f.spend,
                "",
                "",
                "",
                "",
                f.source,
                f.enricher,
                f.tag,
            ]
        )
    return csv_text(header, rows)  # the one CSV writer: CR quoted, formulas defused


def _pct_text(value: Decimal | None) -> str:
    return "-" if value is None else f"{value}%"


def _sections(report: TagReport) -> list[tuple[str, list[str], list[list[str]]]]:
    compliance_header = ["", "currency", "lines", "compliant", "by count", "spend", "compliant spend", "by spend"]

    def rows(items: Sequence[Compliance], names: Mapping[str, str] | None = None) -> list[list[str]]:
        return [
            [
                display.cost_center(c.key, names) if names is not None else c.key,
                c.currency,
                str(c.lines),
                str(c.compliant_lines),
                _pct_text(c.pct_lines),
                display.money(c.spend, c.currency, code=False),
                display.money(c.compliant_spend, c.currency, code=False),
                _pct_text(c.pct_spend),
            ]
            for c in items
        ]

    return [
        ("By account", ["account", *compliance_header[1:]], rows(report.by_account)),
        ("By cost center", ["cost center", *compliance_header[1:]], rows(report.by_cost_center, report.names)),
        ("Trend", ["period", *compliance_header[1:]], rows(report.trend)),
        (
            "Top untagged resources by spend",
            ["resource", "account", "currency", "spend", "lines", "missing", "owner"],
            [
                [
                    u.resource_id,
                    u.account,
                    u.currency,
                    display.money(u.spend, u.currency, code=False),
                    str(u.lines),
                    ", ".join(u.missing),
                    u.owner or "-",
                ]
                for u in report.top_untagged
            ],
        ),
        (
            "Gaps filled by enrichers",
            ["source", "enricher", "tag", "currency", "lines", "spend"],
            [
                [f.source, f.enricher, f.tag, f.currency, str(f.lines), display.money(f.spend, f.currency, code=False)]
                for f in report.filled
            ],
        ),
    ]


def _headline(report: TagReport) -> list[str]:
    return [
        f"{c.currency}: {c.compliant_lines}/{c.lines} lines ({_pct_text(c.pct_lines)}), "
        f"{display.money(c.compliant_spend, c.currency)} of {display.money(c.spend, c.currency)} spend "
        f"({_pct_text(c.pct_spend)}) carry {', '.join(report.required)}"
        for c in report.total
    ]


def render_table(report: TagReport) -> str:
    lines = [f"tag compliance, run {report.run} ({report.period})", *_headline(report)]
    for title, header, rows in _sections(report):
        lines += ["", title]
        if not rows:
            lines.append("  (none)")
            continue
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
        for row in [header, *rows]:
            lines.append("  " + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def render_markdown(report: TagReport) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        f"## Tag compliance ({report.period})",
        "",
        f"Run `{report.run}`.",
        "",
        *(f"- {line}" for line in _headline(report)),
    ]
    for title, header, rows in _sections(report):
        lines += ["", f"### {title}", ""]
        if not rows:
            lines.append("None.")
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def as_alert(report: TagReport) -> Alert:
    """The report as one notifier message (kind ``tag-report``): the Markdown as its text, the
    total spend as its amount, so chat, webhook and email notifiers deliver it unchanged."""
    [*totals] = report.total
    spend = sum((c.spend for c in totals), Decimal(0))
    details = {f"pct_spend_{c.currency}": _text(c.pct_spend) or "" for c in totals}
    return Alert(
        "tag-report", report.period, "*", spend, render_markdown(report), details={"run_id": report.run, **details}
    )


RENDERERS = {"table": render_table, "json": render_json, "csv": render_csv, "markdown": render_markdown}
