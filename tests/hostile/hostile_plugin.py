"""A plugin that breaks every contract a plugin can break, one way per parameter.

The hostile corpus installs it as a real distribution (``chargeback-hostile``, entry point
``hostile``), so the CLI loads it as it loads any third party's; each case picks a
misbehaviour in its policy: ``{collector: hostile-source, returns: ...}``,
``{method: hostile, returns: ...}``, ``{exporter: hostile-export, returns: ...}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from chargeback_engine import hookimpl
from chargeback_engine.components import CollectedSource, Finding, Shares
from chargeback_engine.enrich.model import TagRecord, base_options
from chargeback_engine.errors import NotifyError
from chargeback_engine.testing import line_items

MODES = {"type": "string"}


class HostileCollector:
    name = "hostile-source"
    config_schema = {"type": "object", "required": ["returns"], "properties": {"returns": MODES}}

    def collect(self, config: Mapping[str, Any], period: Any) -> Any:
        returns = config["returns"]
        if returns == "raise":
            raise ConnectionResetError("the billing API hung up")
        if returns == "none":
            return None
        if returns == "dicts":
            return [{"BilledCost": "1.00"}]
        if returns == "list-table":
            return [CollectedSource("hostile", [{"BilledCost": "1.00"}], "1")]  # type: ignore[arg-type]
        table = line_items({"BilledCost": "5.00"}, source_id="hostile")
        if returns == "text-cost":
            position = table.schema.get_field_index("BilledCost")
            table = table.set_column(position, "BilledCost", pa.array(["twelve"]))
        return [CollectedSource("hostile", table, "1")]


class HostileAllocator:
    """``returns`` picks what ``resolve`` does; ``fails_in`` makes ``check`` or ``fields`` fail instead."""

    name = "hostile"
    params_schema = {
        "type": "object",
        "required": ["method"],
        "properties": {"method": {"const": "hostile"}, "returns": MODES, "fails_in": MODES},
    }

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        if params.get("fails_in") == "check":
            raise AttributeError("'NoneType' object has no attribute 'cost_centers'")
        if params.get("fails_in") == "check-returns":
            return ["this is not a finding"]  # type: ignore[list-item]
        return []

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        if params.get("fails_in") == "targets":
            return None  # type: ignore[return-value]
        return frozenset()

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        if params.get("fails_in") == "fields":
            raise KeyError("weights")
        if params.get("fails_in") == "fields-returns":
            return frozenset({42})  # type: ignore[arg-type]
        return frozenset()

    def resolve(self, params: Mapping[str, Any], context: Any) -> Any:
        returns = params.get("returns")
        if returns == "raise":
            raise ZeroDivisionError("division by zero")
        if returns == "dict":
            return {"CC-1": 1}
        if returns == "list-weights":
            return Shares([("CC-1", Decimal(1))], "a list")  # type: ignore[arg-type]
        if returns == "zero":
            return Shares({"CC-1": Decimal(0), "CC-2": Decimal(0)}, "all zero")
        if returns == "nan":
            return Shares({"CC-1": Decimal("NaN")}, "not a number")
        if returns == "float":
            return Shares({"CC-1": 0.5, "CC-2": 0.5}, "floats")
        if returns == "ghost":
            return Shares({"CC-GHOST": Decimal(1)}, "a cost center nobody declared")
        return Shares({"CC-1": Decimal(1)}, "all to CC-1")


class HostileExporter:
    name = "hostile-export"
    options_schema = {"type": "object", "properties": {"returns": MODES}}

    def export(self, result: Any, directory: Path, options: Mapping[str, Any]) -> Any:
        returns = options.get("returns")
        if returns == "raise":
            (directory / "half.csv").write_text("cost_center\n")
            raise OSError(28, "No space left on device")
        if returns == "unwritten":
            return [directory / "hostile.csv"]  # says it wrote a file it never wrote
        if returns == "none":
            (directory / "hostile.csv").write_text("ok\n")
            return None
        if returns == "outside":
            return ["/etc/passwd"]
        if returns == "generator":
            return self._fails_midway(directory)
        (directory / "hostile.csv").write_text("ok\n")
        return [directory / "hostile.csv"]

    def _fails_midway(self, directory: Path) -> Iterable[Path]:
        (directory / "hostile.csv").write_text("ok\n")
        yield directory / "hostile.csv"
        raise RuntimeError("lost the connection to the journal service")


class HostileEnricher:
    name = "hostile-inventory"
    options_schema = base_options(name, "An inventory that misbehaves.", {"returns": MODES})

    def inventory(self, options: Mapping[str, Any]) -> Any:
        if options.get("returns") == "raise":
            raise TimeoutError("the CMDB did not answer")
        if options.get("returns") == "none":
            return None
        if options.get("returns") == "bad-scope":
            return [TagRecord("galaxy", "111111111111", {"team": "web"})]  # type: ignore[arg-type]
        return [TagRecord("account", "111111111111", {"team": "web"})]


class HostileNotifier:
    """``returns: refused`` is a delivery failure reported as the contract asks (``NotifyError``)."""

    name = "hostile-notify"
    options_schema = {"type": "object", "properties": {"returns": MODES}}

    def send(self, alert: Any, options: Mapping[str, Any]) -> None:
        returns = options.get("returns", "raise")
        if returns == "refused":
            raise NotifyError("https://hooks.slack.com/services/T0/B0/SECRET-TOKEN-abc123 answered 500")
        if returns == "returns-false":
            return False  # type: ignore[return-value]
        if returns == "attribute":
            alert.channel  # noqa: B018  an Alert has no channel
        raise ConnectionRefusedError(
            "https://hooks.slack.com/services/T0/B0/SECRET-TOKEN-abc123 refused the connection"
        )


@hookimpl
def chargeback_register_collectors(register: Any) -> None:
    register(HostileCollector())


@hookimpl
def chargeback_register_allocators(register: Any) -> None:
    register(HostileAllocator())


@hookimpl
def chargeback_register_exporters(register: Any) -> None:
    register(HostileExporter())


@hookimpl
def chargeback_register_enrichers(register: Any) -> None:
    register(HostileEnricher())


@hookimpl
def chargeback_register_notifiers(register: Any) -> None:
    register(HostileNotifier())
