"""The static HTML dashboard: one self-contained file, no network, no CDN.

The page embeds the dashboard data (exactly what ``chargeback report json`` prints) and a
small inline script that draws SVG charts from it, so the file opens offline anywhere.
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any


def dashboard_html(data: dict[str, Any]) -> str:
    """The page for ``data``; every ``<`` is escaped so no data value can end the script element."""
    payload = json.dumps(data, sort_keys=True).replace("<", "\\u003c")
    template = files("chargeback_engine.insight").joinpath("templates/dashboard.html").read_text(encoding="utf-8")
    return template.replace("__DATA__", payload)


def write_dashboard(data: dict[str, Any], path: str | Path) -> Path:
    """Write the dashboard atomically: a reader never sees half a page."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(dashboard_html(data))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
