"""``fundtrack sync`` against a local server replaying the Registry, the Datastore and FTS.

No internet: :mod:`tests.sync_server` serves recorded-shape answers (CKAN
``package_search``; Solr ``activity/select``; the real FTS pages of ../shared/data with
their ``nextLink`` pointed at the local server) and real IATI files as the downloads,
with the faults the real services show: paging, 304, 429 + Retry-After, 500 then
success, a connection cut mid-body, a changed file, a moved URL, a withdrawn dataset,
an empty listing. Runs on SQLite and PostgreSQL (``FUNDTRACK_TEST_DATABASE_URL``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine, func, select

from fundtrack.db import make_engine
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.sync.config import ConfigError, parse_config
from fundtrack.sync.http import FetchError, HttpClient, HttpSettings
from fundtrack.sync.runner import run_sync
from fundtrack.sync.tables import SyncDocument, SyncRun
from tests.conftest import shared_file
from tests.sync_server import FIXTURES, ReplayServer, ckan_package_search

FAST = {"min_interval_seconds": 0, "backoff_seconds": 0.01, "retries": 3}
REPO = Path(__file__).resolve().parents[1]

# What the four recorded datasets hold (counted by importing the files by hand).
ACTIVITIES = {"usaid-798": 108, "usaid-bo": 63, "dfid-al": 8, "dfid-us": 1}
FLOWS = {"usaid-798": 622, "usaid-bo": 304, "dfid-al": 41, "dfid-us": 2}


@pytest.fixture
def srv():
    with ReplayServer() as server:
        yield server


def registry_site(srv: ReplayServer) -> list[dict[str, Any]]:
    """Serve the recorded Registry listing and its four real IATI files; return the
    datasets (tests change them between syncs)."""
    text = (FIXTURES / "registry_package_search.json").read_text("utf-8")
    datasets = json.loads(text.replace("{BASE}", srv.base))["result"]["results"]
    for d in datasets:
        rel = d.pop("_shared_file")  # which real file the resource URL serves (not CKAN's)
        srv.replay.files[_path(d)] = shared_file(rel).read_bytes()
    srv.replay.apis["/api/3/action/package_search"] = ckan_package_search(lambda: datasets)
    return datasets


def _path(d: dict[str, Any]) -> str:
    return urllib.parse.urlsplit(d["resources"][0]["url"]).path


def _by_name(datasets: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(d for d in datasets if d["name"] == name)


def registry_config(srv: ReplayServer, **extra: Any):
    return parse_config({"http": FAST, "source": [{
        "name": "registry", "type": "iati-registry", "url": f"{srv.base}/api/3/action",
        "publishers": ["usaid", "dfid"], "rows": 1, **extra}]})


def current(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table).where(
            table.superseded_by.is_(None), *where)).scalar_one()


def snapshot(engine: Engine) -> dict[str, Any]:
    """The ledger and the sync state as they stand, without surrogate ids."""
    a, f, b, d = (m.Activity.__table__, m.Flow.__table__, m.ImportBatch.__table__,
                  SyncDocument.__table__)
    with engine.connect() as c:
        return {
            "activities": sorted(c.execute(select(
                a.c.reporting_org_ref, a.c.iati_identifier, a.c.title, b.c.file_name,
                b.c.source_url).join(b, b.c.id == a.c.batch_id)
                .where(a.c.superseded_by.is_(None))).all()),
            "flows": sorted(map(repr, c.execute(select(
                f.c.reporting_org_ref, f.c.external_id, f.c.kind, f.c.amount, f.c.currency,
                f.c.value_date, f.c.provider_ref, f.c.receiver_ref, f.c.amount_usd,
                b.c.source_url).join(b, b.c.id == f.c.batch_id)
                .where(f.c.superseded_by.is_(None))).all())),
            "batches": sorted(c.execute(select(b.c.file_name, b.c.sha256, b.c.status,
                                               b.c.source_url, b.c.importer)).all()),
            "state": sorted(c.execute(select(d.c.doc_key, d.c.url, d.c.sha256, d.c.etag,
                                             d.c.status)).all()),
        }


def test_registry_publisher_imports_all_then_a_second_sync_downloads_nothing(engine, srv):
    datasets = registry_site(srv)
    faults = srv.replay.faults
    faults["/api/3/action/package_search"] = [("status", 429, 1)]
    faults[_path(_by_name(datasets, "usaid-bo"))] = [("status", 500)]
    faults[_path(_by_name(datasets, "dfid-al"))] = [("cut", 1000)]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    [s] = run_sync(engine, registry_config(srv), sleep=sleep)
    assert (s.status, s.counts["listed"], s.counts["downloaded"], s.counts["imported"],
            s.counts["failed"]) == ("ok", 4, 4, 4, 0), s.line()
    # 429 waited its Retry-After (1 s); the 500 and the cut body were retried after backoff
    assert sorted(slept) == [0.01, 0.01, 1.0]
    cut = [h for h in srv.replay.hits if h.status == -200]
    assert len(cut) == 1 and cut[0].body_bytes == 1000
    # paging: rows=1, each publisher's two datasets on two pages
    listing = [(h.query.get("fq"), h.query["start"]) for h in srv.replay.hits
               if h.path.endswith("package_search") and h.status == 200]
    assert listing == [("organization:usaid", "0"), ("organization:usaid", "1"),
                       ("organization:dfid", "0"), ("organization:dfid", "1")]
    assert current(engine, m.Activity) == sum(ACTIVITIES.values()) == 180
    assert current(engine, m.Flow) == sum(FLOWS.values()) == 969
    # every flow's provenance names the URL it came from
    f, b = m.Flow.__table__, m.ImportBatch.__table__
    with engine.connect() as c:
        by_url = dict(c.execute(select(b.c.source_url, func.count()).join(
            f, f.c.batch_id == b.c.id).group_by(b.c.source_url)).all())
    assert by_url == {_by_name(datasets, n)["resources"][0]["url"]: FLOWS[n] for n in FLOWS}

    before, hits = snapshot(engine), len(srv.replay.hits)
    [s2] = run_sync(engine, registry_config(srv), sleep=sleep)
    assert (s2.status, s2.counts["not_modified"], s2.counts["downloaded"],
            s2.counts["imported"], s2.counts["bytes_downloaded"]) == ("ok", 4, 0, 0, 0)
    second = srv.replay.hits[hits:]
    files = [h for h in second if h.path.startswith("/files/")]
    assert [h.status for h in files] == [304] * 4
    assert all("If-None-Match" in h.headers for h in files)
    assert snapshot(engine) == before
    with engine.connect() as c:
        runs = c.execute(select(SyncRun.status, SyncRun.imported, SyncRun.not_modified)
                         .order_by(SyncRun.id)).all()
    assert runs == [("ok", 4, 0), ("ok", 0, 4)]


def _changed_albania(original: bytes) -> tuple[bytes, str, str]:
    """The Albania file as its publisher might re-publish it: the last activity dropped,
    the first transaction's value changed. Returns (bytes, dropped id, new value)."""
    root = etree.fromstring(original)
    acts = root.findall("iati-activity")
    dropped = acts[-1].findtext("iati-identifier").strip()
    root.remove(acts[-1])
    value = root.find("iati-activity/transaction/value")
    value.text = "123456.78"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), dropped, "123456.78"


def test_changed_file_replaces_its_activities(engine, srv):
    datasets = registry_site(srv)
    run_sync(engine, registry_config(srv))
    al = _by_name(datasets, "dfid-al")
    changed, dropped, new_value = _changed_albania(srv.replay.files[_path(al)])
    with engine.connect() as c:
        dropped_flows = c.execute(select(func.count()).select_from(m.Flow).join(m.Activity).where(
            m.Activity.iati_identifier == dropped)).scalar_one()
    srv.replay.files[_path(al)] = changed
    al["metadata_modified"] = "2026-12-01T10:00:00.000000"

    [s] = run_sync(engine, registry_config(srv))
    assert (s.counts["downloaded"], s.counts["not_modified"], s.counts["imported"]) == (1, 3, 1)
    a = m.Activity
    assert current(engine, a, a.reporting_org_ref == "GB-GOV-1") == 7
    assert current(engine, a, a.iati_identifier == dropped) == 0
    assert current(engine, a) == 179
    with engine.connect() as c:
        amounts = c.execute(select(m.Flow.amount).where(
            m.Flow.superseded_by.is_(None), m.Flow.reporting_org_ref == "GB-GOV-1")).scalars().all()
        new_batch = c.execute(select(SyncDocument.batch_id).where(
            SyncDocument.doc_key == al["id"])).scalar_one()
    assert len(amounts) == FLOWS["dfid-al"] - dropped_flows
    assert [v for v in amounts if v == Decimal(new_value)] == [Decimal(new_value)]
    # the publisher puts the earlier file back: its batch is current again (the newer
    # batch is reverted; nothing is imported twice)
    srv.replay.files[_path(al)] = shared_file(
        "iati-activity/dfid-albania-oipa-media/5e87f792-3d59-4f06-afcf-a8efa8523553.xml").read_bytes()
    [s2] = run_sync(engine, registry_config(srv))
    assert (s2.counts["downloaded"], s2.counts["unchanged"], s2.counts["imported"]) == (1, 1, 0)
    assert current(engine, a, a.reporting_org_ref == "GB-GOV-1") == 8
    assert current(engine, m.Flow) == 969
    with engine.connect() as c:
        assert c.execute(select(m.ImportBatch.status).where(
            m.ImportBatch.id == new_batch)).scalar_one() == "reverted"


def test_moved_url_is_the_same_dataset(engine, srv):
    datasets = registry_site(srv)
    run_sync(engine, registry_config(srv))
    bo = _by_name(datasets, "usaid-bo")
    body = srv.replay.files.pop(_path(bo))
    bo["resources"][0]["url"] = f"{srv.base}/files/moved/usaid/usaid-bo.xml"
    srv.replay.files["/files/moved/usaid/usaid-bo.xml"] = body
    before = snapshot(engine)

    [s] = run_sync(engine, registry_config(srv))
    assert (s.counts["downloaded"], s.counts["unchanged"], s.counts["imported"],
            s.counts["withdrawn"]) == (1, 1, 0, 0), s.line()
    after = snapshot(engine)
    assert after["activities"] == before["activities"] and after["batches"] == before["batches"]
    with engine.connect() as c:
        rows = c.execute(select(SyncDocument.doc_key, SyncDocument.url)).all()
    assert len(rows) == 4
    assert dict(rows)[bo["id"]] == f"{srv.base}/files/moved/usaid/usaid-bo.xml"
    # and the next sync asks the new URL conditionally: nothing downloaded
    [s2] = run_sync(engine, registry_config(srv))
    assert (s2.counts["downloaded"], s2.counts["not_modified"]) == (0, 4)


def test_withdrawn_dataset_is_withdrawn_by_a_revertable_batch_and_comes_back(engine, srv):
    datasets = registry_site(srv)
    run_sync(engine, registry_config(srv))
    al = _by_name(datasets, "dfid-al")
    datasets.remove(al)

    [s] = run_sync(engine, registry_config(srv))
    assert (s.status, s.counts["withdrawn"], s.counts["not_modified"]) == ("ok", 1, 3)
    a = m.Activity
    assert current(engine, a, a.reporting_org_ref == "GB-GOV-1") == 0
    assert current(engine, a) == 172
    b = m.ImportBatch.__table__
    with engine.connect() as c:
        w = c.execute(select(b).where(b.c.importer == "sync-withdraw")).mappings().one()
    assert w["status"] == "applied" and w["source_url"] == al["resources"][0]["url"]
    assert (w["counts"]["withdrawn_activities"], w["counts"]["withdrawn_flows"],
            w["counts"]["withdrawn_budgets"]) == (8, 41, 14)
    assert w["file_name"] == "withdrawn: dfid-al.xml"

    datasets.append(al)  # listed again: the withdrawal is reverted, nothing re-downloaded
    [s2] = run_sync(engine, registry_config(srv))
    assert (s2.counts["withdrawn"], s2.counts["downloaded"], s2.counts["not_modified"]) == (0, 0, 4)
    assert current(engine, a) == 180
    with engine.connect() as c:
        assert c.execute(select(b.c.status).where(b.c.id == w["id"])).scalar_one() == "reverted"


def test_empty_or_much_smaller_listing_withdraws_nothing(engine, srv):
    datasets = registry_site(srv)
    run_sync(engine, registry_config(srv))
    kept = list(datasets)
    datasets.clear()  # the Registry briefly lists nothing

    [s] = run_sync(engine, registry_config(srv))
    assert (s.status, s.counts["withdrawn"], s.counts["listed"]) == ("failed", 0, 0)
    assert [e["key"] for e in s.errors] == ["listing:usaid", "listing:dfid"]
    assert "holds 0 datasets, the last good listing 2: fewer than 50%" in s.errors[0]["error"]
    assert current(engine, m.Activity) == 180

    # half of the last good listing is not "far fewer" (threshold: fewer than 50 %)
    datasets.extend(d for d in kept if d["name"] != "usaid-bo")
    [s2] = run_sync(engine, registry_config(srv))
    assert (s2.status, s2.counts["withdrawn"]) == ("ok", 1)
    assert current(engine, m.Activity) == 180 - ACTIVITIES["usaid-bo"]


def test_interrupted_sync_resumed_gives_the_same_database(db_factory, srv, tmp_path):
    datasets = registry_site(srv)
    config_file = tmp_path / "sync.toml"
    config_file.write_text(
        "[http]\nmin_interval_seconds = 0\nbackoff_seconds = 0.01\nretries = 3\n\n"
        "[[source]]\nname = \"registry\"\ntype = \"iati-registry\"\n"
        f"url = \"{srv.base}/api/3/action\"\npublishers = [\"usaid\", \"dfid\"]\nrows = 1\n")
    whole_url, cut_url = db_factory.new_url(), db_factory.new_url()
    whole, cut = make_engine(whole_url), make_engine(cut_url)
    try:
        run_sync(whole, registry_config(srv))

        # kill -9 the command while it downloads the third dataset
        release, arrived = threading.Event(), threading.Event()
        srv.replay.faults[_path(_by_name(datasets, "dfid-al"))] = [("hang", release, arrived)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "fundtrack.cli", "sync", "--config", str(config_file),
             "--quiet"], cwd=REPO, env={**os.environ, "FUNDTRACK_DATABASE_URL": cut_url},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert arrived.wait(60), proc.communicate(timeout=5)[0]
        finally:
            proc.kill()
            proc.wait()
            release.set()
        assert current(cut, m.Activity) == ACTIVITIES["usaid-798"] + ACTIVITIES["usaid-bo"]
        with cut.connect() as c:
            assert c.execute(select(SyncRun.status)).scalars().all() == ["running"]

        [s] = run_sync(cut, registry_config(srv))
        assert (s.status, s.counts["not_modified"], s.counts["imported"]) == ("ok", 2, 2)
        assert snapshot(cut) == snapshot(whole)
        with cut.connect() as c:
            assert c.execute(select(SyncRun.status).order_by(SyncRun.id)).scalars().all() == [
                "interrupted", "ok"]
    finally:
        whole.dispose()
        cut.dispose()
        db_factory.drop(whole_url)
        db_factory.drop(cut_url)


FTS_PAGES = ["custom-search-locationid-1-year-2020.json",
             "custom-search-locationid-1-year-2020-page-2.json",
             "custom-search-locationid-1-year-2020-page-3.json"]
GITHUB = "https://github.com/OCHA-DAP/hdx-scraper-fts/raw/main/tests/fixtures/input/"


def fts_site(srv: ReplayServer) -> list[bytes]:
    """The three real Afghanistan 2020 pages, their nextLink pointing at the next page here."""
    pages = []
    for name in FTS_PAGES:
        body = shared_file(f"fts-json/{name}").read_bytes()
        for n, nxt in ((2, FTS_PAGES[1]), (3, FTS_PAGES[2])):
            body = body.replace((GITHUB + nxt).encode(),
                                f"{srv.base}/v1/public/fts/flow?locationid=1&page={n}&year=2020"
                                .encode())
        pages.append(body)

    def answer(q: dict[str, str]) -> tuple[int, Any]:
        assert (q["locationid"], q["year"]) == ("1", "2020")
        return 200, pages[int(q.get("page", 1)) - 1]

    srv.replay.apis["/v1/public/fts/flow"] = answer
    return pages


def test_fts_sync_follows_every_page_and_equals_an_import_by_hand(engine, db_factory, srv):
    fts_site(srv)
    config = parse_config({"http": FAST, "source": [{
        "name": "fts-afg", "type": "fts", "url": f"{srv.base}/v1/public/fts/flow",
        "locations": [1], "years": [2020]}]})
    [s] = run_sync(engine, config)
    assert (s.status, s.counts["listed"], s.counts["imported"]) == ("ok", 3, 3), s.line()
    pages = [h.query.get("page", "1") for h in srv.replay.hits if h.status == 200]
    assert pages == ["1", "2", "3"]

    hand_url = db_factory.new_url()
    hand = make_engine(hand_url)
    try:
        for name in FTS_PAGES:
            assert import_file(hand, shared_file(f"fts-json/{name}")).status == "applied"
        f = m.Flow.__table__
        cols = [f.c.reporting_org_ref, f.c.external_id, f.c.kind, f.c.amount, f.c.currency,
                f.c.value_date, f.c.amount_usd, f.c.usd_rate, f.c.provider_ref,
                f.c.receiver_ref, f.c.recipient_country, f.c.description]
        got, want = [], []
        for e, out in ((engine, got), (hand, want)):
            with e.connect() as c:
                out.extend(sorted(map(repr, c.execute(
                    select(*cols).where(f.c.superseded_by.is_(None))).all())))
        assert got == want
        assert current(engine, m.Flow) == current(hand, m.Flow) == 484
    finally:
        hand.dispose()
        db_factory.drop(hand_url)
    # a second sync: every page answers 304, the stored next links are followed
    before, hits = snapshot(engine), len(srv.replay.hits)
    [s2] = run_sync(engine, config)
    assert (s2.counts["listed"], s2.counts["not_modified"], s2.counts["imported"]) == (3, 3, 0)
    assert [h.status for h in srv.replay.hits[hits:]] == [304, 304, 304]
    assert snapshot(engine) == before
    with engine.connect() as c:
        urls = set(c.execute(select(m.ImportBatch.source_url)).scalars())
    assert urls == {f"{srv.base}/v1/public/fts/flow?locationid=1&year=2020",
                    f"{srv.base}/v1/public/fts/flow?locationid=1&page=2&year=2020",
                    f"{srv.base}/v1/public/fts/flow?locationid=1&page=3&year=2020"}


def test_datastore_query_is_counted_then_fetched_page_by_page(engine, srv, monkeypatch):
    recorded = json.loads((FIXTURES / "datastore_activity_select.json").read_text("utf-8"))
    pages = [shared_file("iati-activity/usaid-798.xml").read_bytes(),
             shared_file("iati-activity/usaid-bo.xml").read_bytes()]

    def select_(q: dict[str, str]) -> tuple[int, Any]:
        answer = json.loads(json.dumps(recorded))
        answer["responseHeader"]["params"]["q"] = q["q"]
        answer["response"]["numFound"] = 171
        return 200, answer

    def iati(q: dict[str, str]) -> tuple[int, Any]:
        assert q["sort"] == "iati_identifier asc" and q["rows"] == "108"
        return 200, pages[int(q["start"]) // 108]

    srv.replay.apis["/datastore/activity/select"] = select_
    srv.replay.apis["/datastore/activity/iati"] = iati
    monkeypatch.setenv("IATI_DATASTORE_KEY", "k-123")
    query = "reporting_org_ref:\"US-GOV-1\" AND recipient_country_code:(BO)"
    config = parse_config({"http": FAST, "source": [{
        "name": "ds", "type": "iati-datastore", "url": f"{srv.base}/datastore",
        "query": query, "rows": 108}]})
    [s] = run_sync(engine, config)
    assert (s.status, s.counts["listed"], s.counts["imported"]) == ("ok", 2, 2), s.line()
    assert current(engine, m.Activity) == 171
    assert {h.headers.get("Ocp-Apim-Subscription-Key") for h in srv.replay.hits} == {"k-123"}
    assert [h.query["start"] for h in srv.replay.hits if h.path.endswith("/iati")] == ["0", "108"]
    [s2] = run_sync(engine, config)
    assert (s2.counts["not_modified"], s2.counts["imported"]) == (2, 0)


def test_sync_runs_in_the_api_and_on_the_import_history_page(db_url, srv):
    from fundtrack.api.testing import Api

    datasets = registry_site(srv)
    engine = make_engine(db_url)
    srv.replay.faults[_path(_by_name(datasets, "dfid-us"))] = [("status", 404)]
    [s] = run_sync(engine, registry_config(srv))
    engine.dispose()
    assert (s.status, s.counts["imported"], s.counts["failed"]) == ("failed", 3, 1)
    api = Api(db_url)
    data = api.query("{ syncRuns { totalCount nodes { source sourceType status listed "
                     "downloaded imported failed errors { key url error } } } "
                     "importBatches(first: 10) { nodes { fileName sourceUrl } } }")
    run = data["syncRuns"]["nodes"][0]
    assert data["syncRuns"]["totalCount"] == 1
    assert (run["source"], run["sourceType"], run["status"], run["listed"], run["imported"],
            run["failed"]) == ("registry", "iati-registry", "failed", 4, 3, 1)
    us = _by_name(datasets, "dfid-us")
    assert run["errors"] == [{"key": us["id"], "url": us["resources"][0]["url"],
                              "error": f"{us['resources'][0]['url']}: HTTP 404 Not Found"}]
    assert {b["fileName"]: b["sourceUrl"] for b in data["importBatches"]["nodes"]} == {
        f"{n}.xml": _by_name(datasets, n)["resources"][0]["url"]
        for n in ("usaid-798", "usaid-bo", "dfid-al")}
    html = api.get("/imports").text
    assert "Sync runs" in html and "HTTP 404 Not Found" in html
    assert _by_name(datasets, "usaid-bo")["resources"][0]["url"] in html


def test_http_client_gives_up_after_its_retries_and_fetches_http_only(srv):
    srv.replay.files["/x.xml"] = b"<x/>"
    srv.replay.faults["/x.xml"] = [("status", 503)] * 3
    client = HttpClient(HttpSettings(min_interval_seconds=0, backoff_seconds=0.01, retries=2))
    with pytest.raises(FetchError, match=r"HTTP 503 Service Unavailable \(gave up after 3 attempts\)"):
        client.get(f"{srv.base}/x.xml")
    got = client.get(f"{srv.base}/x.xml")  # the fourth answer is the file
    assert got.read_bytes() == b"<x/>" and got.sha256 is not None
    got.discard()
    with pytest.raises(FetchError, match="only http and https"):
        client.get("file:///etc/passwd")


def test_rate_limit_spaces_requests_to_one_host(srv):
    srv.replay.files["/x.xml"] = b"<x/>"
    client = HttpClient(HttpSettings(min_interval_seconds=0.3))
    t0 = time.monotonic()
    for _ in range(3):
        client.get(f"{srv.base}/x.xml").discard()
    assert time.monotonic() - t0 >= 0.6


@pytest.mark.parametrize(("data", "says"), [
    ({"source": []}, "no [[source]] configured"),
    ({"source": [{"name": "a"}]}, "needs a `name` and a `type`"),
    ({"http": {"speed": 1}, "source": [{"name": "a", "type": "fts"}]}, "unknown key(s) speed"),
    ({"source": [{"name": "a", "type": "fts"}, {"name": "a", "type": "fts"}]}, "two sources"),
])
def test_config_errors_say_what_is_wrong(data, says):
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert says in str(err.value)


def test_source_options_are_checked_before_anything_is_fetched(engine):
    for source, says in (({"name": "r", "type": "iati-registry", "publisher": "x"},
                          "unknown option(s) publisher"),
                         ({"name": "d", "type": "iati-datastore"}, "give a `query`"),
                         ({"name": "f", "type": "fts"}, "give `years`"),
                         ({"name": "z", "type": "ftp"}, "unknown type 'ftp'")):
        with pytest.raises(ConfigError, match="source") as err:
            run_sync(engine, parse_config({"source": [source]}))
        assert says in str(err.value)
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(SyncRun)).scalar_one() == 0


def test_shipped_example_config_is_valid():
    from fundtrack.sync.config import load_config
    from fundtrack.sync.sources import source_types

    config = load_config(REPO / "deploy" / "fundtrack-sync.toml")
    types = source_types()
    assert [(s.name, s.type) for s in config.sources] == [
        ("registry-wps-donors", "iati-registry"), ("datastore-wps-afghanistan", "iati-datastore"),
        ("fts-afghanistan", "fts")]
    for s in config.sources:
        types[s.type].check(s.options)
    assert types["fts"].queries(config.sources[2].options) == [
        {"locationid": "1", "year": "2024"}, {"locationid": "1", "year": "2025"}]


def test_command_prints_a_summary_per_source_and_fails_on_failures(db_url, srv, tmp_path):
    from click.testing import CliRunner

    from fundtrack.cli import main

    datasets = registry_site(srv)
    cfg = tmp_path / "sync.toml"
    cfg.write_text("[http]\nmin_interval_seconds = 0\nbackoff_seconds = 0.01\nretries = 1\n\n"
                   "[[source]]\nname = \"registry\"\ntype = \"iati-registry\"\n"
                   f"url = \"{srv.base}/api/3/action\"\npublishers = [\"usaid\", \"dfid\"]\n")
    env = {"FUNDTRACK_DATABASE_URL": db_url}
    out = CliRunner().invoke(main, ["sync", "--config", str(cfg), "--quiet"], env=env)
    assert out.exit_code == 0, out.output
    assert out.output.startswith(
        "registry (iati-registry): ok; 4 listed, 4 downloaded (")
    assert out.output.rstrip().endswith(
        "0 not modified, 0 unchanged, 4 imported, 0 withdrawn, 0 failed")
    srv.replay.files.pop(_path(_by_name(datasets, "usaid-bo")))
    srv.replay.files[_path(_by_name(datasets, "dfid-al"))] = b"<iati-activities><oops"
    out = CliRunner().invoke(main, ["sync", "--config", str(cfg), "--quiet",
                                    "--source", "registry"], env=env)
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert lines[0] == ("registry (iati-registry): failed; 4 listed, 1 downloaded (22 bytes), "
                        "2 not modified, 0 unchanged, 0 imported, 0 withdrawn, 2 failed")
    assert "HTTP 404 Not Found" in lines[1] and "rejected:" in lines[2]
    out = CliRunner().invoke(main, ["sync", "--config", str(cfg), "--source", "nope"], env=env)
    assert out.exit_code == 1 and "no source named nope" in out.output


def test_sync_interrupted_inside_an_import_transaction_resumes_without_duplicates(
        engine, db_factory, srv, monkeypatch):
    """Ctrl-C while the third dataset's batch is being written (after its merge and its
    state row, before the commit): nothing of it stays, and the resumed run equals a run
    that was never interrupted."""
    from fundtrack.derived import steps as derived

    registry_site(srv)
    whole_url = db_factory.new_url()
    whole = make_engine(whole_url)
    try:
        run_sync(whole, registry_config(srv))
        real, calls = derived.after_import, []

        def after_import(conn, batch_id):
            calls.append(batch_id)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return real(conn, batch_id)

        monkeypatch.setattr(derived, "after_import", after_import)
        with pytest.raises(KeyboardInterrupt):
            run_sync(engine, registry_config(srv))
        monkeypatch.setattr(derived, "after_import", real)
        with engine.connect() as c:
            assert c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 2
            assert c.execute(select(func.count()).select_from(SyncDocument).where(
                SyncDocument.batch_id.is_not(None))).scalar_one() == 2
            assert c.execute(select(SyncRun.status)).scalars().all() == ["interrupted"]
        [s] = run_sync(engine, registry_config(srv))
        assert (s.counts["not_modified"], s.counts["imported"]) == (2, 2)
        assert snapshot(engine) == snapshot(whole)
    finally:
        whole.dispose()
        db_factory.drop(whole_url)
