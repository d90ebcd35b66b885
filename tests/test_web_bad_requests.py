"""Client mistakes on the pages answer 400 saying what was wrong; an outage answers 503.

Issue 18, item 8 (web side). Each of these was a bare "Internal Server Error" (or, for
exports, a 200 whose stream broke off), on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import pytest

from fundtrack.api.testing import Api
from fundtrack.ingest.pipeline import import_file
from tests.conftest import SHARED

SAMPLE = SHARED / "iati-activity/dportal-covid19-2021/dportal_8.xml"


@pytest.fixture
def api(db_url: str, engine) -> Api:
    assert import_file(engine, SAMPLE).status == "applied"
    return Api(db_url)


@pytest.mark.parametrize("path", ["/", "/sankey", "/donor", "/fund"])
def test_superscript_two_as_year_is_a_400_naming_the_year(api: Api, path: str) -> None:
    r = api.get(path + "?year=%C2%B2")  # "²".isdigit() is True; int("²") raises
    assert r.status_code == 400, r.text[:300]
    assert "year must be a year such as 2021" in r.text and "&#39;²&#39;" in r.text
    assert "<footer>" in r.text  # a whole page, with the navigation and the exports


def test_superscript_two_as_year_in_an_export_is_a_400_before_any_byte(api: Api) -> None:
    r = api.get("/export.csv?year=%C2%B2")
    assert r.status_code == 400
    assert r.text.startswith("year must be a year such as 2021")


def test_twenty_digit_year_on_the_donor_card_is_a_400(api: Api) -> None:
    r = api.get("/donor?ref=X&year=99999999999999999999")
    assert r.status_code == 400, r.text[:300]
    assert "year must be a year such as 2021 (1900-2200), not &#39;99999999999999999999&#39;" in r.text


@pytest.mark.parametrize("path", ["/activity?q=%00", "/activity?id=a%00b", "/donor?ref=%00",
                                  "/sankey?donor=%00", "/?country=C%00O"])
def test_nul_in_a_page_parameter_is_a_400(api: Api, path: str) -> None:
    r = api.get(path)
    assert r.status_code == 400, r.text[:300]
    assert "must not contain control characters (found U+0000)" in r.text


@pytest.mark.parametrize("ext", ["csv", "json", "xml"])
def test_nul_in_an_export_filter_is_a_400_not_a_broken_200(api: Api, ext: str) -> None:
    r = api.get(f"/export.{ext}?donor=%00")
    assert r.status_code == 400
    assert r.text == "donor must not contain control characters (found U+0000)"


def test_an_absurdly_long_filter_value_is_a_400(api: Api) -> None:
    r = api.get("/export.csv?donor=" + "x" * 5000)
    assert r.status_code == 400
    assert r.text == "donor is 5,000 characters long; the limit is 300"


def test_good_requests_still_answer_200(api: Api) -> None:
    assert api.get("/?year=2021").status_code == 200
    assert api.get("/donor?ref=CA-3&year=2021").status_code == 200
    # a reference nothing names is a 404 that says so (not an empty card)
    r = api.get("/donor?ref=XM-DAC-7&year=2021")
    assert r.status_code == 404 and "No such organisation" in r.text
    r = api.get("/export.csv?year=2021")
    assert r.status_code == 200 and r.text.startswith("flow_id,")


@pytest.mark.parametrize("path", ["/", "/sankey", "/activity?q=UNDP", "/donor?ref=X", "/imports"])
def test_database_outage_answers_a_503_page(db_kind: str, tmp_path, path: str) -> None:
    """The database cannot be reached (a missing SQLite directory; a closed PostgreSQL
    port): the page says so with 503, not a bare 500."""
    url = (f"sqlite:///{tmp_path}/no/such/dir/x.db" if db_kind == "sqlite"
           else "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2")
    out = Api(url).get(path)
    assert out.status_code == 503, out.text[:300]
    assert "The database is unavailable just now; try again shortly." in out.text
    assert "<footer>" in out.text


def test_database_outage_on_an_export_is_a_503_before_any_byte(db_kind: str, tmp_path) -> None:
    url = (f"sqlite:///{tmp_path}/no/such/dir/x.db" if db_kind == "sqlite"
           else "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2")
    r = Api(url).get("/export.csv")
    assert r.status_code == 503
    assert r.text == "The database is unavailable just now; try again shortly."
