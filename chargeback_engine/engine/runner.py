"""``Engine``: the public entry point. One policy set, one period, one run.

A run collects its inputs into the FOCUS cost table (:mod:`~chargeback_engine.engine.inputs`),
parses the tags the policy reads into columns (:mod:`~chargeback_engine.engine.tag_columns`), lets
the kernel compile the policy onto the data plane and resolve once per outcome
(:mod:`~chargeback_engine.engine.kernel`), checks conservation, and only then hands the
:class:`~chargeback_engine.engine.result.RunResult` to the exporters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pluggy
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.canonical import canonical_json, sha256_hex
from chargeback_engine.components import CollectedSource, Exporter
from chargeback_engine.engine.dataplane import DataPlane, RunInfo
from chargeback_engine.engine.duck import DuckDBPlane
from chargeback_engine.engine.inputs import (
    Input,
    collect,
    combine,
    manifest_entry,
    read_carried,
    run_collector,
)
from chargeback_engine.engine.kernel import Kernel
from chargeback_engine.engine.memory import release_arrow_memory
from chargeback_engine.engine.outputs import check_writable, write_outputs
from chargeback_engine.engine.result import RunResult
from chargeback_engine.engine.tag_columns import TagColumns, with_tag_columns
from chargeback_engine.enrich.apply import enrich_records
from chargeback_engine.errors import ConservationError, InputError
from chargeback_engine.focus import TIMESTAMP
from chargeback_engine.logs import get_logger
from chargeback_engine.money import LEDGER_SCALE
from chargeback_engine.periods import Period
from chargeback_engine.plugins import (
    Registered,
    build_registry,
    call_each,
    get_plugin_manager,
)
from chargeback_engine.policy.loader import load_policies
from chargeback_engine.policy.policy_model import Policy, PolicySet

log = get_logger(__name__)

#: Exporters a run writes when neither the caller nor the policy's ``spec.exports`` names any.
DEFAULT_EXPORTERS = ("allocations", "decisions", "summary", "schedule")

Progress = Callable[[str], None]


def _engine_version() -> str:
    from importlib.metadata import version

    return version("chargeback-engine")


class Engine:
    """Runs policies over cost data. The CLI's ``run`` is one call to :meth:`run`.

    ``policies`` is a :class:`PolicySet`, one :class:`Policy`, or paths to load;
    ``plugins`` is the plugin manager whose components the run uses and whose observer
    hooks it calls; it defaults to every installed plugin (allow- and block-lists applied).
    ``plane`` is the data plane: ``"duckdb"``, ``"spark"`` (the active session, else
    ``local[2]``), or a factory of :class:`DataPlane` for any other.
    """

    def __init__(
        self,
        policies: PolicySet | Policy | str | Path | Sequence[str | Path],
        plugins: pluggy.PluginManager | None = None,
        *,
        plane: str | Callable[[], DataPlane] = "duckdb",
        exporters: Sequence[str] | None = None,
    ):
        self.plugins = get_plugin_manager() if plugins is None else plugins
        self.registry = build_registry(self.plugins)
        if isinstance(policies, Policy):
            policies = PolicySet((policies,))
        elif not isinstance(policies, PolicySet):  # validated against this engine's components only
            policies = load_policies([policies] if isinstance(policies, str | Path) else policies, self.registry)
        self.policies = policies
        self._data_plane = _plane_factory(plane)
        self.exporters = None if exporters is None else tuple(exporters)

    def exports(self, policy: Policy, extra: Iterable[str] = ()) -> list[tuple[str, Mapping[str, Any]]]:
        """The exporters a run of ``policy`` writes, each with its options: those given to
        the engine, else the defaults and the policy's ``spec.exports``; then ``extra``."""
        chosen: dict[str, Mapping[str, Any]] = {}
        if self.exporters is not None:
            chosen.update((name, {}) for name in self.exporters)
        else:
            chosen.update((name, {}) for name in DEFAULT_EXPORTERS)
            for entry in policy.document.get("spec", {}).get("exports", []):
                chosen[entry["exporter"]] = {k: v for k, v in entry.items() if k != "exporter"}
        spec = policy.document.get("spec", {})
        if spec.get("enrich"):
            chosen.setdefault("enrichment", {})  # what the inventory filled, for explain
        if spec.get("tags", {}).get("required"):
            chosen.setdefault("focus-allocated", {})  # the source lines' tags, for the tag-compliance report
        for name in extra:
            chosen.setdefault(name, {})
        return list(chosen.items())

    def _collect_from(self, name: str, config: Mapping[str, Any], period: Period) -> list[CollectedSource]:
        return run_collector(self.registry.registered("collectors", name), name, config, period)

    # -- the run ---------------------------------------------------------------------
    def run(
        self,
        inputs: Iterable[Input],
        period: Period | str,
        out: str | Path | None = None,
        progress: Progress | None = None,
        carry: Iterable[str | Path] = (),
        export: Iterable[str] = (),
    ) -> RunResult:
        """Allocate ``inputs`` for ``period``; write the outputs to ``out`` when given.

        ``carry`` names ``schedule.parquet`` files of earlier runs: their amortization parts
        for ``period`` join this period's ledger (already allocated, category ``amortized``).
        ``export`` names exporters to write besides the chosen ones (see :meth:`exports`).
        """
        step = progress or (lambda _: None)
        if out is not None:  # an unwritable --out fails before anything is allocated
            check_writable(out)
        period = Period.parse(period) if isinstance(period, str) else period
        policy = self.policies.for_period(period)
        exporters = (
            [(self._exporter(name), options) for name, options in self.exports(policy, export)]
            if out is not None
            else []
        )  # an unknown one fails first
        step("collect")
        sources = collect(
            inputs,
            policy.document.get("spec", {}).get("sources", []),
            lambda name, config: self._collect_from(name, config, period),
        )
        infos = [manifest_entry(s) for s in sources]
        carried, carried_infos = read_carried(carry, period)
        infos += carried_infos
        records = combine(sources)  # empties ``sources``
        records = enrich_records(records, policy, self.registry, period, infos)  # appends its snapshots to infos
        kernel = Kernel(policy, self.registry, period)
        _check_currencies(records, kernel)
        _check_period(records, period, policy.document.get("spec", {}).get("out_of_period", "error"))
        _check_magnitude(records, policy.cost_column)
        layout = TagColumns.for_fields(kernel.tag_fields)
        records = with_tag_columns(records, policy.tags, layout)
        version = _engine_version()
        identity = canonical_json([version, policy.content_hash, str(period), sorted(i.sha256 for i in infos)])
        run_id = "r-" + sha256_hex(identity)[:24]
        info = RunInfo(run_id, period, policy.cost_column, policy.version, policy.content_hash)
        log.info("run.start", run_id=run_id, period=str(period), policy=policy.name, rows=records.num_rows)

        plane = self._data_plane()
        try:
            rows = plane.load(records, info)
            del records  # the plane holds the line items now
            release_arrow_memory()
            decisions = kernel.allocate(plane, layout, step)
            step("check")
            _check_conservation(plane.balances())
            store = plane.finish()
        finally:
            plane.close()
        store.add_carried(carried)
        kernel_decisions = kernel.decision_table(decisions)
        result = RunResult(run_id, period, policy, kernel_decisions, tuple(infos), version, store, rows)
        _check_identity(result)
        call_each(self.plugins, "chargeback_decisions_recorded", run_id=run_id, decisions=kernel_decisions)
        if out is not None:
            result = write_outputs(result, Path(out), exporters, step)
        log.info("run.done", run_id=run_id, decisions=kernel_decisions.num_rows)
        return result

    def _exporter(self, name: str) -> Registered[Exporter]:
        return self.registry.registered("exporters", name)


def _plane_factory(plane: str | Callable[[], DataPlane]) -> Callable[[], DataPlane]:
    """The factory ``Engine(plane=...)`` names: a plane's name, or the factory itself."""
    if callable(plane):
        return plane
    if plane == "duckdb":
        return DuckDBPlane
    if plane == "spark":
        from chargeback_engine.engine.spark import SparkPlane  # pyspark is optional

        return SparkPlane
    raise ValueError(f"unknown data plane {plane!r}: use 'duckdb', 'spark' or a factory")


def _check_currencies(records: pa.Table, kernel: Kernel) -> None:
    """One currency per run, or a dated exchange rate for every other one."""
    currencies = pc.unique(records["BillingCurrency"]).to_pylist()
    if None in currencies:
        raise InputError("some line items have no BillingCurrency")
    if len(currencies) > 1 and not kernel.policy.document.get("spec", {}).get("exchange_rates"):
        raise InputError(
            f"the inputs hold {len(currencies)} currencies ({', '.join(sorted(currencies))}); "
            "a run needs one currency, or dated exchange_rates in the policy"
        )
    if len(currencies) > 1:
        for currency in currencies:
            kernel.exchange_rate(currency)


def _check_period(records: pa.Table, period: Period, out_of_period: str) -> None:
    """Every line belongs to the run period, unless the policy charges the others to it
    (``spec.out_of_period: charge-to-run-period``; amortized parts dated before the run
    period are then charged to it too). A run with no line of its own period is refused
    either way: it would report another month's bill as this one's."""
    start = records["ChargePeriodStart"]
    first = pa.scalar(datetime.combine(period.start, time(), UTC), TIMESTAMP)
    inside = pc.greater_equal(start, first)
    if (period.year, period.month) < (9999, 12):  # the last representable month has no end
        inside = pc.and_(inside, pc.less(start, pa.scalar(datetime.combine(period.end, time(), UTC), TIMESTAMP)))
    outside = records.filter(pc.invert(pc.fill_null(inside, False)))
    if outside.num_rows == records.num_rows:
        months = sorted({t.strftime("%Y-%m") for t in pc.unique(outside["ChargePeriodStart"]).to_pylist() if t})
        raise InputError(
            f"no line item is charged in {period}: the inputs hold {', '.join(months[:6]) or 'no dates'}"
            f"{' …' if len(months) > 6 else ''}; run the period they belong to"
        )
    if outside.num_rows and out_of_period == "error":
        first = outside.slice(0, 1).to_pylist()[0]
        month = first["ChargePeriodStart"].strftime("%Y-%m") if first["ChargePeriodStart"] else "no date"
        raise InputError(
            f"{first['x_SourceId']}: row {first['x_SourceRow']}: ChargePeriodStart is in {month}, not in "
            f"the run period {period} ({outside.num_rows} such line(s)); run their own period, or set "
            "spec.out_of_period: charge-to-run-period to charge them to this one"
        )


def _check_magnitude(records: pa.Table, cost_column: str) -> None:
    """Every sum a plane forms, in any order, fits its 128-bit integers when the absolute
    amounts add up to less than 10^20 (units of 10^-18 below 1.7 x 10^38)."""
    limit = Decimal(10) ** (38 - LEDGER_SCALE)
    extremes = pc.min_max(records[cost_column]).as_py()
    largest = max((abs(v) for v in extremes.values() if v is not None), default=Decimal(0))
    if largest * records.num_rows < limit:  # the usual case, without summing in 256 bits
        return
    total = pc.sum(pc.abs(records[cost_column].cast(pa.decimal256(76, LEDGER_SCALE)))).as_py() or Decimal(0)
    if total >= limit:
        raise InputError(
            f"the inputs' {cost_column} amounts add up to {total:.6E} in absolute value; the ledger adds "
            f"amounts below 1E+{38 - LEDGER_SCALE} (DECIMAL(38, {LEDGER_SCALE})): split the run, "
            "or check the file for a misplaced decimal point"
        )


def _check_identity(result: RunResult) -> None:
    """The manifest's promise, checked on every run: allocated + deferred = input + carried."""
    for currency, t in result.totals().items():
        if t["allocated"] + t["deferred"] != t["input"] + t["carried"]:
            raise ConservationError(
                f"money is not conserved in {currency}: allocated {t['allocated']} + deferred {t['deferred']} "
                f"!= input {t['input']} + carried {t['carried']}"
            )


def _check_conservation(balances: pa.Table) -> None:
    broken = [row for row in balances.to_pylist() if row["input"] != row["ledger"]]
    if broken:
        lines = "; ".join(
            f"{r['currency']} account {r['billing_account_id']} period {r['period']}: "
            f"input {r['input']} != ledger {r['ledger']}"
            for r in broken[:5]
        )
        raise ConservationError(f"money is not conserved: {lines}")
