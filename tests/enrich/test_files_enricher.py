"""The ``files`` enricher: CMDB CSV and YAML, through the contract and with located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargeback_engine.enrich import enrichment_plugin
from chargeback_engine.enrich.files_enricher import FilesEnricher
from chargeback_engine.enrich.model import TagRecord
from chargeback_engine.errors import InputError
from chargeback_engine.testing import EnricherContract


class TestFilesEnricherCsv(EnricherContract):
    plugin = enrichment_plugin
    name = "files"

    @pytest.fixture
    def options(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        path = tmp_path / "cmdb.csv"
        path.write_text("id,scope,CostCenter,owner\ni-1,,CC-1,ann\n111122223333,account,CC-9,\n", encoding="utf-8")
        return {"enricher": "files", "path": str(path)}

    @pytest.fixture
    def bad_options(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        path = tmp_path / "bad.csv"
        path.write_text("id,owner\ni-1,ann,extra\n", encoding="utf-8")
        return {"enricher": "files", "path": str(path)}


class TestFilesEnricherYaml(EnricherContract):
    plugin = enrichment_plugin
    name = "files"

    @pytest.fixture
    def options(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        path = tmp_path / "cmdb.yaml"
        path.write_text(
            "resource_groups:\n  /subscriptions/s1/resourceGroups/rg-web: {team: web}\n"
            "accounts:\n  '42': {cost-center: CC-2}\n",
            encoding="utf-8",
        )
        return {"enricher": "files", "id": "cmdb", "path": str(path)}

    @pytest.fixture
    def bad_options(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        path = tmp_path / "bad.yaml"
        path.write_text("accounts: &a\n  '42': {team: x}\nresources: *a\n", encoding="utf-8")
        return {"enricher": "files", "path": str(path)}


def test_csv_rows_become_records_with_their_scope(tmp_path: Path) -> None:
    path = tmp_path / "cmdb.csv"
    path.write_text("\ufeffid,scope,team,owner\ni-1,,web, \n42,account,,bob\n", encoding="utf-8")
    assert list(FilesEnricher().inventory({"path": str(path)})) == [
        TagRecord("resource", "i-1", {"team": "web"}),
        TagRecord("account", "42", {"owner": "bob"}),
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "name,team\nx,y\n", r"a.csv:1: no 'id' column"),
        ("b.csv", "id,team\n,web\n", r"b.csv:2: column 'id' is empty"),
        ("c.csv", "id,scope\ni-1,project\n", r"c.csv:2: scope 'project' is not one of"),
        ("d.yaml", "resources: [1, 2]\n", r"d.yaml:1:12: \$.resources: expected a mapping of id to tags"),
        ("e.yaml", "machines: {}\n", r"e.yaml:1:1: \$: expected a mapping with resources"),
        ("f.yaml", "resources:\n  i-1: {team: [a]}\n", r"f.yaml:2:8: \$.resources.i-1: expected a mapping of tag"),
        ("g.yaml", "resources:\n  i-1: !!python/object {}\n", r"g.yaml:2:8"),
    ],
)
def test_bad_cmdb_files_are_located_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        list(FilesEnricher().inventory({"path": str(tmp_path / name)}))


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the CMDB file"):
        list(FilesEnricher().inventory({"path": str(tmp_path / "nope.csv")}))
