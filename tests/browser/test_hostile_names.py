"""Names that are HTML or JavaScript in disguise do not break the pages (issue 18, item 6).

An organisation name goes into the Sankey's embedded JSON. ``</`` was escaped but
``<!--`` was not, and ``USAID<!--<script>`` put the HTML parser in "script data escaped"
mode: the ``</script>`` after the JSON no longer ended the element, and the rest of the
page (chart, table, footer) vanished for everyone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fundtrack.db import make_engine
from fundtrack.ingest.pipeline import import_file
from tests.browser.conftest import serve

HOSTILE = "USAID<!--<script>"
LINE_SEP = "Fund\u2028\u2029 & <b>bold</b> </script>"
FILE = f"""<?xml version="1.0" encoding="UTF-8"?>
<iati-activities version="2.03"><iati-activity default-currency="USD">
 <iati-identifier>XX-AGENCY-1</iati-identifier>
 <reporting-org ref="XX-AGENCY" type="21"><narrative>{LINE_SEP.replace("&", "&amp;").replace("<", "&lt;")}</narrative></reporting-org>
 <title><narrative>T</narrative></title>
 <transaction><transaction-type code="1"/><transaction-date iso-date="2021-02-01"/>
  <value value-date="2021-02-01">1000</value>
  <provider-org ref="US-GOV-1"><narrative>{HOSTILE.replace("<", "&lt;")}</narrative></provider-org></transaction>
 <transaction><transaction-type code="3"/><transaction-date iso-date="2021-03-01"/>
  <value value-date="2021-03-01">600</value><recipient-country code="CO"/></transaction>
</iati-activity></iati-activities>
"""


@pytest.fixture(scope="module")
def hostile_live(chromium_path: str, db_factory: Any, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[str]:
    db_url = db_factory.new_url()
    engine = make_engine(db_url)
    path = tmp_path_factory.mktemp("hostile") / "hostile.xml"
    path.write_text(FILE)
    assert import_file(engine, path).status == "applied"
    engine.dispose()
    with serve(db_url, path.parent / "uvicorn.log") as url:
        yield url


def test_organisation_named_usaid_comment_script_shows_the_whole_sankey_page(
        hostile_live: str, page: Any, artifacts: Path) -> None:
    page.goto(hostile_live + "/sankey?year=2021")
    page.wait_for_selector("#sankey[data-ready='1']")
    # the chart, the table after the embedded JSON and the footer are all there
    assert page.locator("#sankey .sankey-link").count() == 2
    assert page.locator("#bands tbody tr").count() == 2
    assert page.locator("footer").count() == 1
    cells = page.eval_on_selector_all("#bands tbody td:first-child", "tds => tds.map(t => t.innerText)")
    assert cells == [f"donor {HOSTILE} (US-GOV-1)", f"{LINE_SEP} (XX-AGENCY)"]
    # the chart's own labels are the names, byte for byte (JSON.parse gave them back)
    labels = page.evaluate("JSON.parse(document.getElementById('sankey-data').textContent).labels")
    assert f"donor {HOSTILE} (US-GOV-1)" in labels and f"{LINE_SEP} (XX-AGENCY)" in labels
    # no element was injected: the only <b> and <script> elements are the page's own
    assert page.locator("main b").count() == 0
    assert page.js_errors == []
    page.screenshot(path=str(artifacts / "sankey-hostile-name.png"), full_page=True)
