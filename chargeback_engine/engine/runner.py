"""``Engine``: the public entry point. One policy set, one period, one run.

A run collects the inputs into the FOCUS cost table, lets the kernel decide once per
distinct match key, has the data plane apply the decisions and shared-cost stages in bulk,
checks conservation, and only then hands the result to the exporters.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from decimal import Decimal, localcontext
from glob import glob
from pathlib import Path
from typing import Any

import pluggy
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog

from chargeback_engine.components import Amortize, CollectedSource, DirectCostBasis, Resolution
from chargeback_engine.engine.dataplane import DataPlane, RunInfo
from chargeback_engine.engine.duck import DuckDBPlane
from chargeback_engine.engine.kernel import Decision, Kernel, _digest, split_table
from chargeback_engine.errors import ConservationError, InputError, PluginError
from chargeback_engine.focus import conform
from chargeback_engine.ledger import LEDGER_SCHEMA
from chargeback_engine.money import LEDGER_QUANTUM
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registry, build_registry, call_each, get_plugin_manager
from chargeback_engine.policy.loader import load_policies
from chargeback_engine.policy.model import Policy, PolicySet, Rule

log = structlog.get_logger(__name__)

#: The collector that reads FOCUS CSV/Parquet files, directories and globs.
FILE_COLLECTOR = "focus-files"
#: Exporters a run writes when none are named.
DEFAULT_EXPORTERS = ("allocations", "summary", "focus-allocated", "decisions", "schedule")

Input = str | Path | pa.Table | CollectedSource
Progress = Callable[[str], None]


@dataclass(frozen=True)
class InputInfo:
    """One input as the manifest lists it."""

    source_id: str
    sha256: str
    rows: int
    path: str | None = None
    version: str | None = None  # the collector's source version: changes when the provider restates
    details: Mapping[str, Any] = field(default_factory=dict)  # the collector's row counts, totals, paging


@dataclass(frozen=True)
class RunResult:
    """A finished, conserved run: the ledger and decisions as Arrow, plus what went in."""

    run_id: str
    period: Period
    policy: Policy
    ledger: pa.Table  # every row, including amortization parts of later periods
    decisions: pa.Table
    records: pa.Table
    inputs: tuple[InputInfo, ...]
    engine_version: str
    outputs: tuple[Path, ...] = field(default=())

    @cached_property
    def allocations(self) -> pa.Table:
        """Ledger rows charged to the run period (computed once: exporters all read it)."""
        return self.ledger.filter(pc.equal(self.ledger["period"], str(self.period)))

    @cached_property
    def schedule(self) -> pa.Table:
        """Amortization parts for later periods: what they will receive."""
        return self.ledger.filter(pc.greater(self.ledger["period"], str(self.period)))

    def summary(self) -> list[tuple[str, str, Decimal]]:
        """(cost center, currency, amount) for the run period, the unallocated bucket included."""
        totals: dict[tuple[str, str], Decimal] = {}
        grouped = self.allocations.group_by(["cost_center", "currency"]).aggregate([("amount", "sum")])
        for row in grouped.to_pylist():
            totals[(row["cost_center"], row["currency"])] = row["amount_sum"]
        currencies = sorted({c for _, c in totals}) or [self.policy.currency]
        for currency in currencies:
            totals.setdefault((self.policy.unallocated, currency), Decimal(0))
        return [(cc, cur, amount) for (cc, cur), amount in sorted(totals.items())]

    def totals(self) -> dict[str, dict[str, Decimal]]:
        """Per currency: input, allocated to the run period, deferred to later periods, and
        carried in from earlier schedules (allocated + deferred = input + carried)."""
        records, ledger = self.records, self.ledger
        carried = ledger.filter(pc.not_equal(ledger["run_id"], self.run_id))
        currencies = set(pc.unique(records["BillingCurrency"]).to_pylist()) | set(pc.unique(carried["currency"]).to_pylist())
        out: dict[str, dict[str, Decimal]] = {}
        for currency in sorted(currencies):
            def amount(table: pa.Table) -> Decimal:
                return _sum(table.filter(pc.equal(table["currency"], currency))["amount"])  # noqa: B023

            mine = pc.equal(records["BillingCurrency"], currency)
            out[currency] = {
                "input": _sum(records[self.policy.cost_column].filter(mine)),
                "allocated": amount(self.allocations),
                "deferred": amount(self.schedule),
                "carried": amount(carried),
            }
        return out


def _sum(column: pa.ChunkedArray) -> Decimal:
    total = pc.sum(column).as_py()
    with localcontext() as wide:
        wide.prec = 80  # totals of 1e18 and more have more than the default 28 digits
        return (Decimal(0) if total is None else Decimal(total)).quantize(LEDGER_QUANTUM)


def _engine_version() -> str:
    from importlib.metadata import version

    return version("chargeback-engine")


class Engine:
    """Runs policies over cost data. The CLI's ``run`` is one call to :meth:`run`.

    ``policies`` is a :class:`PolicySet`, one :class:`Policy`, or paths to load;
    ``registry`` defaults to every installed plugin (allow- and block-lists applied).
    """

    def __init__(
        self,
        policies: PolicySet | Policy | str | Path | Sequence[str | Path],
        registry: Registry | None = None,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        data_plane: Callable[[], DataPlane] = DuckDBPlane,
        exporters: Sequence[str] = DEFAULT_EXPORTERS,
        engine: str = "duckdb",
        spark_master: str | None = None,
    ):
        self.plugin_manager = plugin_manager or (get_plugin_manager() if registry is None else None)
        self.registry = registry or build_registry(self.plugin_manager)
        if isinstance(policies, Policy):
            policies = PolicySet((policies,))
        elif not isinstance(policies, PolicySet):  # validated against this engine's components only
            policies = load_policies([policies] if isinstance(policies, str | Path) else policies, self.registry)
        self.policies = policies
        self._data_plane = data_plane if engine == "duckdb" else _plane_for(engine, spark_master)
        self.exporters = tuple(exporters)

    # -- inputs ----------------------------------------------------------------------
    def _collect(self, inputs: Iterable[Input], policy: Policy, period: Period) -> tuple[list[CollectedSource], list[InputInfo]]:
        sources: list[CollectedSource] = []
        infos: list[InputInfo] = []
        for item in inputs:
            if isinstance(item, CollectedSource):
                sources.append(item)
                infos.append(_info(item))
            elif isinstance(item, pa.Table):
                source_id = item["x_SourceId"][0].as_py() if item.num_rows and "x_SourceId" in item.column_names else "table"
                sources.append(CollectedSource(source_id, item, _table_sha256(item)))
                infos.append(InputInfo(source_id, _table_sha256(item), item.num_rows))
            else:
                collected = list(self._collector(FILE_COLLECTOR).collect({"paths": [str(item)]}, period))
                sources.extend(collected)
                for file in _files(Path(item)):
                    infos.append(InputInfo(str(file), _file_sha256(file), -1, path=str(file)))
        for entry in policy.document.get("spec", {}).get("sources", []):
            name = entry.get("collector") or entry.get("type")
            collected = list(self._collector(name).collect(entry, period))
            sources.extend(collected)
            infos.extend(_info(s) for s in collected)
        return sources, infos

    def _collector(self, name: str):  # type: ignore[no-untyped-def]
        try:
            return self.registry.collector(name)
        except KeyError:
            raise PluginError(f"no collector {name!r} is registered (is its plugin installed and allowed?)") from None

    # -- the run ---------------------------------------------------------------------
    def run(self, inputs: Iterable[Input], period: Period | str, out: str | Path | None = None,
            progress: Progress | None = None, carry: Iterable[str | Path] = ()) -> RunResult:
        """Allocate ``inputs`` for ``period``; write the outputs to ``out`` when given.

        ``carry`` names ``schedule.parquet`` files of earlier runs: their amortization parts
        for ``period`` join this period's ledger (already allocated, category ``amortized``).
        """
        step = progress or (lambda _: None)
        period = Period.parse(period) if isinstance(period, str) else period
        policy = self.policies.for_period(period)
        step("collect")
        sources, infos = self._collect(inputs, policy, period)
        carried, carried_infos = _carried(carry, period)
        infos += carried_infos
        records = _combine(sources)
        _check_currencies(records, policy)
        version = _engine_version()
        run_id = "r-" + _digest(version, policy.content_hash, str(period), sorted(i.sha256 for i in infos))[:24]
        info = RunInfo(run_id, period, policy.cost_column, policy.version, policy.content_hash)
        log.info("run.start", run_id=run_id, period=str(period), policy=policy.name, rows=records.num_rows)

        kernel = Kernel(policy, self.registry, period)
        plane = self._data_plane()
        try:
            plane.load(records, info)
            decisions = self._allocate(plane, kernel, step)
            step("check")
            _check_conservation(plane.balances())
            ledger = pa.concat_tables([plane.ledger(), carried])
            loaded = plane.records()
        finally:
            plane.close()
        kernel_decisions = kernel.decision_table(decisions)
        if self.plugin_manager is not None:
            call_each(self.plugin_manager, "chargeback_decisions_recorded", run_id=run_id, decisions=kernel_decisions)
        infos = [i if i.rows >= 0 else InputInfo(i.source_id, i.sha256, _rows_of(loaded, i), i.path) for i in infos]
        result = RunResult(run_id, period, policy, ledger, kernel_decisions, loaded, tuple(infos), version)
        if out is not None:
            step("write")
            from chargeback_engine.exporters.write import write_outputs

            result = write_outputs(result, Path(out), [self._exporter(n) for n in self.exporters])
        log.info("run.done", run_id=run_id, ledger_rows=ledger.num_rows, decisions=kernel_decisions.num_rows)
        return result

    def _exporter(self, name: str):  # type: ignore[no-untyped-def]
        try:
            return self.registry.exporter(name)
        except KeyError:
            raise PluginError(f"no exporter {name!r} is registered (is its plugin installed and allowed?)") from None

    def _allocate(self, plane: DataPlane, kernel: Kernel, step: Progress) -> list[Decision]:
        """Direct allocation (deferred direct-cost decisions second), then the shared stages."""
        step("decide")
        columns = kernel.key_columns()
        keys = plane.distinct(columns) if columns else pa.table({})
        resolved: list[tuple[dict[str, Any], Rule | None, Resolution]] = []  # one per match key
        index_of: dict[tuple[tuple[str, Any], ...], int] = {}
        key_index: list[int] = []  # for every distinct row, its match key
        for row in keys.to_pylist() if columns else [{}]:
            key = kernel.key_of(row)
            identity = tuple(sorted(key.items(), key=lambda item: item[0]))
            if identity not in index_of:
                index_of[identity] = len(resolved)
                resolved.append((key, *kernel.decide(key)))
            key_index.append(index_of[identity])
        deferred = [_is_deferred(r) for _, _, r in resolved]

        def apply(phase: bool, direct_cost: pa.Table | None) -> list[Decision]:
            """Allocate the rows whose decision is (not) deferred, as ``phase`` says."""
            made = {
                i: kernel.decision(key, rule, rule.id if rule else None,
                                   rule.allocate.method if rule else "unallocated", kernel.finalize(resolution, direct_cost))
                for i, (key, rule, resolution) in enumerate(resolved) if deferred[i] is phase
            }
            if made:
                mask = [deferred[i] is phase for i in key_index]
                ids = pa.array([made[i].decision_id for i in key_index if deferred[i] is phase], pa.string())
                assignments = keys.filter(pa.array(mask)).append_column("decision_id", ids) if columns \
                    else pa.table({"decision_id": ids})
                plane.allocate(assignments, split_table(made.values()))
            return list(made.values())

        step("allocate")
        decisions = apply(False, None)
        if any(deferred):
            direct = plane.direct_cost(kernel.filter_columns(r for (_, _, r), d in zip(resolved, deferred, strict=True) if d))
            decisions += apply(True, direct)
        for index, stage in enumerate(kernel.policy.stages, start=1):
            step(f"stage {index}")
            resolution = kernel.decide_stage(stage)
            direct = plane.direct_cost(kernel.filter_columns([resolution])) if _is_deferred(resolution) else None
            final = kernel.finalize(resolution, direct)
            decision = kernel.decision({"stage": index, "pool": stage.pool}, stage, f"stage-{index}-{stage.pool}".lower(),
                                       stage.allocate.method, final)
            plane.redistribute(index, stage.pool, split_table([decision], stage_rule=True))
            decisions.append(decision)
        return decisions


def _plane_for(engine: str, spark_master: str | None) -> Callable[[], DataPlane]:
    """``engine="spark"``: a Spark data plane (local mode unless ``spark_master`` names a cluster)."""
    if engine != "spark":
        raise ValueError(f"unknown engine {engine!r}: use 'duckdb' or 'spark'")
    from chargeback_engine.engine.spark import SparkPlane

    return lambda: SparkPlane(master=spark_master)


def _carried(paths: Iterable[str | Path], period: Period) -> tuple[pa.Table, list[InputInfo]]:
    """This period's parts of earlier runs' amortization schedules."""
    tables, infos = [LEDGER_SCHEMA.empty_table()], []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"{path}: schedule not found")
        try:
            table = pq.read_table(path).select(LEDGER_SCHEMA.names).cast(LEDGER_SCHEMA)
        except (pa.ArrowException, KeyError, ValueError) as exc:
            raise InputError(f"{path}: not an amortization schedule: {exc}") from None
        due = table.filter(pc.equal(table["period"], str(period)))
        tables.append(due)
        infos.append(InputInfo(f"schedule:{path}", _file_sha256(path), due.num_rows, path=str(path)))
    return pa.concat_tables(tables), infos


def _is_deferred(resolution: Any) -> bool:
    while isinstance(resolution, Amortize):
        resolution = resolution.then
    return isinstance(resolution, DirectCostBasis)


def _combine(sources: Sequence[CollectedSource]) -> pa.Table:
    tables = [_with_provenance(conform(s.table), s.source_id) for s in sources]
    if not tables or sum(t.num_rows for t in tables) == 0:
        raise InputError("no line items: the inputs are empty")
    return pa.concat_tables(tables)


def _with_provenance(table: pa.Table, source_id: str) -> pa.Table:
    """Every line must name its source and row; fill what a collector left empty."""
    if table["x_SourceId"].null_count:
        table = table.set_column(table.schema.get_field_index("x_SourceId"), "x_SourceId",
                                 pc.fill_null(table["x_SourceId"], source_id))
    if table["x_SourceRow"].null_count:
        rows = pa.array(range(1, table.num_rows + 1), pa.int64())
        table = table.set_column(table.schema.get_field_index("x_SourceRow"), "x_SourceRow",
                                 pc.coalesce(table["x_SourceRow"], rows))
    return table


def _check_currencies(records: pa.Table, policy: Policy) -> None:
    currencies = pc.unique(records["BillingCurrency"]).to_pylist()
    if None in currencies:
        raise InputError("some line items have no BillingCurrency")
    if len(currencies) > 1 and not policy.document.get("spec", {}).get("exchange_rates"):
        raise InputError(f"the inputs hold {len(currencies)} currencies ({', '.join(sorted(currencies))}); "
                         "a run needs one currency, or dated exchange_rates in the policy")


def _check_conservation(balances: pa.Table) -> None:
    broken = [row for row in balances.to_pylist() if row["input"] != row["ledger"]]
    if broken:
        lines = "; ".join(f"{r['currency']} account {r['billing_account_id']} period {r['period']}: "
                          f"input {r['input']} != ledger {r['ledger']}" for r in broken[:5])
        raise ConservationError(f"money is not conserved: {lines}")


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    if path.exists():
        return [path]
    return sorted(Path(p) for p in glob(str(path)))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _table_sha256(table: pa.Table) -> str:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return "sha256:" + hashlib.sha256(sink.getvalue()).hexdigest()


def _info(source: CollectedSource) -> InputInfo:
    return InputInfo(source.source_id, _table_sha256(source.table), source.table.num_rows,
                     version=source.version, details=source.details)


def _rows_of(records: pa.Table, info: InputInfo) -> int:
    return pc.sum(pc.equal(records["x_SourceId"], info.source_id)).as_py() or 0


def describe(result: RunResult) -> Mapping[str, Any]:
    """The manifest's content (without the outputs list), for exporters and the CLI."""
    return {
        "engine": {"name": "chargeback-engine", "version": result.engine_version},
        "run_id": result.run_id,
        "period": str(result.period),
        "policy": {"name": result.policy.name, "version": result.policy.version, "hash": result.policy.content_hash},
        "inputs": [{"source_id": i.source_id, "path": i.path, "sha256": i.sha256, "rows": i.rows,
                    **({"version": i.version, "details": dict(i.details)} if i.version else {})}
                   for i in result.inputs],
        "rows": {"input": result.records.num_rows, "ledger": result.allocations.num_rows,
                 "schedule": result.schedule.num_rows, "decisions": result.decisions.num_rows},
        "totals": {c: {k: format(v, "f") for k, v in t.items()} for c, t in result.totals().items()},
    }
