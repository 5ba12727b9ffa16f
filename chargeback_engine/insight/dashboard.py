"""The static HTML dashboard: self-contained files, no network, no CDN.

Each page embeds its data and a small inline script that draws SVG charts from it, so the
files open offline anywhere. The overview embeds exactly what ``chargeback report json``
prints; each cost center gets a page of its own beside it (trend, top services and
resources, invoice, anomalies), the showback page a team lead opens, linked from the
overview's legends and team list.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from chargeback_engine.canonical import sha256_hex
from chargeback_engine.durable_files import write_atomic


def dashboard_html(data: dict[str, Any]) -> str:
    """The page for ``data``; every ``<`` is escaped so no data value can end the script element."""
    payload = json.dumps(data, sort_keys=True).replace("<", "\\u003c")
    template = files("chargeback_engine.insight").joinpath("templates/dashboard.html").read_text(encoding="utf-8")
    return template.replace("__DATA__", payload)


def page_name(overview: Path, cost_center: str) -> str:
    """``dashboard-CC-1001.html``: a safe file name; an id that had to change gets a short hash to stay unique."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", cost_center)
    if safe != cost_center:
        safe += "-" + sha256_hex(cost_center)[:8]
    return f"{overview.stem}-{safe}.html"


def write_dashboard(data: dict[str, Any], path: str | Path) -> Path:
    """Write the overview at ``path`` and a page per cost center beside it; returns the overview.

    Each file is written atomically with the mode any new file gets (0666 less the umask),
    so a web server can serve it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    teams = [{**c, "page": page_name(path, c["id"])} for c in data.get("cost_centers", [])]
    overview = {**data, "cost_centers": teams}
    for team in teams:
        page = {key: data[key] for key in ("period", "currency", "currency_digits", "as_of", "names", "periods")}
        html = dashboard_html({**page, "page": team["id"], "overview": path.name, "cost_centers": [team]})
        write_atomic(path.parent / team["page"], html.encode("utf-8"))
    write_atomic(path, dashboard_html(overview).encode("utf-8"))  # last: its links then all resolve
    return path
