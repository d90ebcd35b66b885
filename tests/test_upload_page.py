"""The upload screen and ``importReport`` for donor staff.

- a spreadsheet is uploaded **with its column mapping** through ``importReport``
  (``mapping: Upload``), dry run then for real, with exact sums; without the mapping it
  is refused with the list of formats and no command-line flag in the message;
- the upload page lists the formats of the **installed importer plugins** (the example
  plugin's included), and names no command-line flag or command.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fundtrack.api.testing import Api
from fundtrack.auth.tokens import create_token
from fundtrack.ledger import tables as m
from fundtrack.money import money_sum
from fundtrack.plugins import importers
from tests.mappings_example import docs_mapping, ministry_sheet

ROOT = Path(__file__).resolve().parents[1]
IMPORT = """mutation($input: ImportReportInput!) { importReport(input: $input) {
    status message counts errors { code message } issues { severity location message }
    batch { id number status } } }"""
CSRF = {"GraphQL-Preflight": "1"}


def upload(api: Api, token: str, sheet: Path, mapping: str | None, *, dry: bool) -> dict:
    variables = {"input": {"file": None, "dryRun": dry}}
    files = {"0": (sheet.name, sheet.read_bytes(), "application/octet-stream")}
    paths = {"0": ["variables.input.file"]}
    if mapping is not None:
        variables["input"]["mapping"] = None
        files["1"] = ("ministry-grants.toml", mapping.encode(), "text/plain")
        paths["1"] = ["variables.input.mapping"]
    r = api.post(None, headers={**CSRF, "Authorization": f"Bearer {token}"}, data={
        "operations": json.dumps({"query": IMPORT, "variables": variables}),
        "map": json.dumps(paths)}, files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body.get("errors"), body
    return body["data"]["importReport"]


def test_spreadsheet_with_its_mapping_through_import_report(engine, db_url, tmp_path) -> None:
    _, token = create_token(engine, "admin", label="grants team")
    api = Api(db_url)
    sheet = ministry_sheet(tmp_path / "grants-2024.xlsx")

    refused = upload(api, token, sheet, None, dry=True)
    assert refused["status"] == "rejected"
    assert "format not recognised" in refused["message"] and "spreadsheet" in refused["message"]
    assert "--" not in refused["message"]  # no command-line flag on a web page

    dry = upload(api, token, sheet, docs_mapping(), dry=True)
    assert dry["status"] == "dry-run", dry
    assert (dry["counts"]["flows"], dry["counts"]["skipped"]) == (2, 0)
    assert dry["batch"] is None
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Flow)).scalar_one() == 0

    done = upload(api, token, sheet, docs_mapping(), dry=False)
    assert done["status"] == "applied", done
    assert done["issues"] == []
    with engine.connect() as c:
        n, total = c.execute(select(func.count(), money_sum(m.Flow.amount))
                             .where(m.Flow.batch_id == done["batch"]["number"])).one()
        batch = c.execute(select(m.ImportBatch.importer)).scalar_one()
    assert (n, total, batch) == (2, Decimal("370000.00"), "spreadsheet")
    assert done["batch"]["status"] == "applied"


def test_a_broken_mapping_is_explained(engine, db_url, tmp_path) -> None:
    _, token = create_token(engine, "admin", label="grants team")
    out = upload(Api(db_url), token, ministry_sheet(tmp_path / "g.xlsx"),
                 docs_mapping().replace('amount = "Amount (EUR)"', 'amont = "Amount (EUR)"'),
                 dry=True)
    assert out["status"] == "rejected"
    assert "did you mean 'amount'" in out["message"]
    assert "ministry-grants.toml" in out["message"] + json.dumps(out["issues"])


def test_upload_page_lists_the_installed_formats_and_no_cli(db_url) -> None:
    html = Api(db_url).get("/upload").text
    options = dict(re.findall(r'<option value="([a-z0-9_]+)">([^<]+)</option>', html))
    installed = importers()
    assert set(options) == set(installed)
    assert "simple_grants" in options  # the example plugin, a third party
    assert options["iati"] == installed["iati"].title.replace("'", "&#39;")
    assert 'id="mapping"' in html and 'type="file"' in html
    text = re.sub(r"<script.*?</script>|<[^>]+>", " ", html, flags=re.S)
    assert not re.search(r"--[a-z]", text), "a command-line flag on the upload page"
    assert "fundtrack token" not in text


@pytest.mark.parametrize("name", ["upload.js", "api.js"])
def test_upload_scripts_name_no_cli_flag(name: str) -> None:
    js = (ROOT / "fundtrack" / "web" / "static" / name).read_text(encoding="utf-8")
    assert not re.search(r"[\"'][^\"']*--[a-z]+[^\"']*[\"']", js)
