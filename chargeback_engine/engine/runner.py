"""``Engine``: the public entry point. One policy set, one period, one run.

A run collects the inputs into the FOCUS cost table, lets the kernel decide once per
distinct match key, has the data plane apply the decisions and shared-cost stages in bulk,
checks conservation, and only then hands the result to the exporters.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from functools import cached_property
from glob import glob
from pathlib import Path
from typing import Any

import numpy as np
import pluggy
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog

from chargeback_engine.components import (
    Amortize,
    CollectedSource,
    DirectCostBasis,
    Exporter,
    Resolution,
)
from chargeback_engine.engine.dataplane import DataPlane, RunInfo
from chargeback_engine.engine.duck import DuckDBPlane
from chargeback_engine.engine.kernel import Decision, Kernel, _digest, split_table
from chargeback_engine.engine.store import LINE, RunStore, one_chunk, sql_text
from chargeback_engine.enrich.apply import enrich_records
from chargeback_engine.errors import ConservationError, InputError
from chargeback_engine.focus import COST_TABLE_SCHEMA, conform, encoded
from chargeback_engine.ledger import LEDGER_SCHEMA
from chargeback_engine.money import LEDGER_QUANTUM
from chargeback_engine.periods import Period
from chargeback_engine.plugins import (
    Registered,
    Registry,
    build_registry,
    call_each,
    get_plugin_manager,
    reported,
)
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
    """A finished, conserved run: its decisions, what went in, and a store that holds the
    line items and the ledger (stream them, or query them as SQL, through :attr:`store`;
    or read them as Arrow tables: :attr:`ledger`, :attr:`allocations`, :attr:`schedule`
    and :attr:`records`)."""

    run_id: str
    period: Period
    policy: Policy
    decisions: pa.Table
    inputs: tuple[InputInfo, ...]
    engine_version: str
    store: RunStore
    input_rows: int
    outputs: tuple[Path, ...] = field(default=())

    @property
    def in_period(self) -> str:
        """The ``where`` of ledger rows charged to the run period."""
        return f"period = '{self.period}'"

    @property
    def later(self) -> str:
        """The ``where`` of amortization parts for later periods."""
        return f"period > '{self.period}'"

    # -- the ledger as Arrow, materialised on first use ----------------------------------
    @cached_property
    def ledger(self) -> pa.Table:
        """Every row, including amortization parts of later periods and carried parts."""
        return self.store.ledger().read_all().cast(LEDGER_SCHEMA)

    @cached_property
    def allocations(self) -> pa.Table:
        """Ledger rows charged to the run period."""
        return self.store.ledger(self.in_period).read_all().cast(LEDGER_SCHEMA)

    @cached_property
    def schedule(self) -> pa.Table:
        """Amortization parts for later periods: what they will receive."""
        return self.store.ledger(self.later).read_all().cast(LEDGER_SCHEMA)

    @cached_property
    def records(self) -> pa.Table:
        """The line items, in load order."""
        return self.store.table(f"SELECT * EXCLUDE ({LINE}) FROM records ORDER BY {LINE}", schema=COST_TABLE_SCHEMA)

    def summary_query(self) -> str:
        """cost_center, currency, amount for the run period, sorted; the unallocated bucket is
        always there (at zero in every currency, or in the policy's when nothing is charged)."""
        unallocated = sql_text(self.policy.unallocated)
        return f"""
            WITH totals AS (
                SELECT cost_center, currency, sum(amount) AS amount FROM ledger_amounts WHERE {self.in_period} GROUP BY ALL
            ), currencies AS (
                SELECT DISTINCT currency FROM totals
                UNION SELECT {sql_text(self.policy.currency)} WHERE NOT EXISTS (SELECT 1 FROM totals)
            )
            SELECT * FROM totals
            UNION ALL
            SELECT {unallocated}, currency, CAST(0 AS DECIMAL(38,10)) FROM currencies c
            WHERE NOT EXISTS (SELECT 1 FROM totals t WHERE t.cost_center = {unallocated} AND t.currency = c.currency)
            ORDER BY cost_center, currency
        """

    def summary(self) -> list[tuple[str, str, Decimal]]:
        """(cost center, currency, amount) for the run period, the unallocated bucket included."""
        return [(cc, currency, _exact(amount)) for cc, currency, amount in self.store.sql(self.summary_query()).fetchall()]

    def totals(self) -> dict[str, dict[str, Decimal]]:
        """Per currency: input, allocated to the run period, deferred to later periods, and
        carried in from earlier schedules (allocated + deferred = input + carried)."""
        cost = '"' + self.policy.cost_column.replace('"', '""') + '"'
        rows = self.store.sql(f"""
            WITH i AS (SELECT BillingCurrency AS currency, sum({cost}) AS input FROM records GROUP BY ALL),
            l AS (
                SELECT currency,
                       sum(amount) FILTER ({self.in_period}) AS allocated,
                       sum(amount) FILTER ({self.later}) AS deferred,
                       sum(amount) FILTER (run_id <> {sql_text(self.run_id)}) AS carried
                FROM ledger_amounts GROUP BY ALL
            )
            SELECT coalesce(i.currency, l.currency), input, allocated, deferred, carried
            FROM i FULL OUTER JOIN l ON i.currency = l.currency ORDER BY 1
        """).fetchall()
        return {currency: {"input": _exact(i), "allocated": _exact(a), "deferred": _exact(d), "carried": _exact(c)}
                for currency, i, a, d, c in rows}

    def count(self, where: str = "TRUE") -> int:
        """Ledger rows matching ``where`` (SQL over :data:`~chargeback_engine.engine.store.AMOUNT_COLUMNS`)."""
        return int(self.store.scalar(f"SELECT count(*) FROM ledger_amounts WHERE {where}"))


def use_jemalloc_pool() -> None:
    """Make jemalloc pyarrow's memory pool for this process, unless ``ARROW_DEFAULT_MEMORY_POOL``
    names one. jemalloc hands freed memory back within about a second; mimalloc (pyarrow's
    default on Linux) keeps it for reuse, which DuckDB's allocations cannot use: at 1M lines
    the run's peak RSS was 0.18 GB lower side by side. For programs that own their process (the CLI, the
    benchmark); the library itself leaves its host's pool alone."""
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    with contextlib.suppress(NotImplementedError):  # pyarrow built without jemalloc (Windows)
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def release_arrow_memory() -> None:
    """Hand the memory pyarrow has freed back to the system. Its allocator keeps freed pages
    for reuse, but DuckDB allocates with its own, so without this the copies made while
    reading the inputs, or by one exporter, would count towards the run's peak until it ends."""
    pa.default_memory_pool().release_unused()


def _exact(total: Decimal | None) -> Decimal:
    """A SQL total at the ledger's scale (a missing total is zero)."""
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
                collected = self._collect_from(FILE_COLLECTOR, {"paths": [str(item)]}, period)
                sources.extend(collected)
                for file in _files(Path(item)):
                    infos.append(InputInfo(str(file), file_sha256(file), -1, path=str(file)))
        for entry in policy.document.get("spec", {}).get("sources", []):
            name = entry.get("collector") or entry.get("type")
            collected = self._collect_from(name, entry, period)
            sources.extend(collected)
            infos.extend(_info(s) for s in collected)
        return sources, infos

    def _collect_from(self, name: str, config: Mapping[str, Any], period: Period) -> list[CollectedSource]:
        registered = self.registry.registered("collectors", name)
        with reported("collector", registered, name):
            return list(registered.component.collect(config, period))

    # -- the run ---------------------------------------------------------------------
    def run(self, inputs: Iterable[Input], period: Period | str, out: str | Path | None = None,
            progress: Progress | None = None, carry: Iterable[str | Path] = ()) -> RunResult:
        """Allocate ``inputs`` for ``period``; write the outputs to ``out`` when given.

        ``carry`` names ``schedule.parquet`` files of earlier runs: their amortization parts
        for ``period`` join this period's ledger (already allocated, category ``amortized``).
        """
        step = progress or (lambda _: None)
        exporters = [self._exporter(n) for n in self.exporters] if out is not None else []  # unknown: fail first
        period = Period.parse(period) if isinstance(period, str) else period
        policy = self.policies.for_period(period)
        step("collect")
        sources, infos = self._collect(inputs, policy, period)
        carried, carried_infos = _carried(carry, period)
        infos += carried_infos
        records = _combine(sources)  # empties ``sources``
        records = enrich_records(records, policy, self.registry, period, infos)  # appends its snapshots to infos
        kernel = Kernel(policy, self.registry, period)
        _check_currencies(records, kernel)
        version = _engine_version()
        run_id = "r-" + _digest(version, policy.content_hash, str(period), sorted(i.sha256 for i in infos))[:24]
        info = RunInfo(run_id, period, policy.cost_column, policy.version, policy.content_hash)
        log.info("run.start", run_id=run_id, period=str(period), policy=policy.name, rows=records.num_rows)

        plane = self._data_plane()
        try:
            rows = plane.load(records, info)
            del records  # the plane holds the line items now
            release_arrow_memory()
            decisions = self._allocate(plane, kernel, step)
            step("check")
            _check_conservation(plane.balances())
            store = plane.finish()
        finally:
            plane.close()
        store.add_carried(carried)
        kernel_decisions = kernel.decision_table(decisions)
        if self.plugin_manager is not None:
            call_each(self.plugin_manager, "chargeback_decisions_recorded", run_id=run_id, decisions=kernel_decisions)
        infos = [i if i.rows >= 0 else InputInfo(i.source_id, i.sha256, _rows_of(store, i), i.path) for i in infos]
        result = RunResult(run_id, period, policy, kernel_decisions, tuple(infos), version, store, rows)
        if out is not None:
            from chargeback_engine.exporters.write import write_outputs

            result = write_outputs(result, Path(out), exporters, step)
        log.info("run.done", run_id=run_id, decisions=kernel_decisions.num_rows)
        return result

    def _exporter(self, name: str) -> Registered[Exporter]:
        return self.registry.registered("exporters", name)

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
        infos.append(InputInfo(f"schedule:{path}", file_sha256(path), due.num_rows, path=str(path)))
    return pa.concat_tables(tables), infos


def _is_deferred(resolution: Any) -> bool:
    while isinstance(resolution, Amortize):
        resolution = resolution.then
    return isinstance(resolution, DirectCostBasis)


def _combine(sources: list[CollectedSource]) -> pa.Table:
    """The sources' line items as one table, each column in one chunk, as the data plane
    holds them. ``sources`` is emptied, and each column of each source let go as soon as
    it is combined: a month read from many files is never held twice."""
    tables = [_with_provenance(conform(s.table), s.source_id) for s in sources]
    sources.clear()
    if not tables or sum(t.num_rows for t in tables) == 0:
        raise InputError("no line items: the inputs are empty")
    if any(not t.schema.equals(tables[0].schema) for t in tables):  # text held two ways: encode it
        tables = [encoded(t) for t in tables]
    schema, columns = tables[0].schema, []
    for name in schema.names:
        columns.append(one_chunk(pa.chunked_array([c for t in tables for c in t[name].chunks], schema.field(name).type)))
        tables = [t.drop_columns([name]) for t in tables]
    return pa.Table.from_arrays(columns, schema=schema)


def _with_provenance(table: pa.Table, source_id: str) -> pa.Table:
    """Every line must name its source and row; fill what a collector left empty."""
    if table["x_SourceId"].null_count:
        table = table.set_column(table.schema.get_field_index("x_SourceId"), "x_SourceId",
                                 pc.fill_null(table["x_SourceId"], source_id))
    if table["x_SourceRow"].null_count:
        rows = pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))
        table = table.set_column(table.schema.get_field_index("x_SourceRow"), "x_SourceRow",
                                 pc.coalesce(table["x_SourceRow"], rows))
    return table


def _check_currencies(records: pa.Table, kernel: Kernel) -> None:
    """One currency per run, or a dated exchange rate for every other one."""
    currencies = pc.unique(records["BillingCurrency"]).to_pylist()
    if None in currencies:
        raise InputError("some line items have no BillingCurrency")
    if len(currencies) > 1 and not kernel.policy.document.get("spec", {}).get("exchange_rates"):
        raise InputError(f"the inputs hold {len(currencies)} currencies ({', '.join(sorted(currencies))}); "
                         "a run needs one currency, or dated exchange_rates in the policy")
    if len(currencies) > 1:
        for currency in currencies:
            kernel.exchange_rate(currency)


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


def file_sha256(path: Path) -> str:
    """``sha256:`` and the hex digest of a file, read in 1 MiB chunks (outputs can be many GB)."""
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


def _rows_of(store: RunStore, info: InputInfo) -> int:
    return int(store.scalar("SELECT count(*) FROM records WHERE x_SourceId = ?", [info.source_id]))


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
        "rows": {"input": result.input_rows, "ledger": result.count(result.in_period),
                 "schedule": result.count(result.later), "decisions": result.decisions.num_rows},
        "totals": {c: {k: format(v, "f") for k, v in t.items()} for c, t in result.totals().items()},
    }
