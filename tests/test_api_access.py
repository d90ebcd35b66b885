"""Tokens, roles, uploads over the GraphQL multipart spec, CSRF and the body limit."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from fundtrack.api.testing import Api
from fundtrack.auth.tables import ApiToken
from fundtrack.auth.tokens import create_token, hash_secret
from fundtrack.cli import main
from fundtrack.ledger import tables as m
from tests.conftest import shared_file

FCDO = "iati-activity/iati-flattener-fixtures/fcdo-activity.xml"  # reported by GB-GOV-1
CANADA = "iati-activity/iati-flattener-fixtures/canada-activity.xml"  # reported by CA-3

IMPORT = """mutation($file: Upload!, $dry: Boolean!) {
  importReport(input: {file: $file, dryRun: $dry}) {
    status message counts errors { code message }
    issues { severity code location message }
    batch { id status publisherRef } } }"""
CSRF = {"GraphQL-Preflight": "1"}


def upload(api: Api, rel: str, token: str | None, *, dry: bool = False,
           headers: dict[str, str] | None = None):
    path = shared_file(rel)
    ops = {"query": IMPORT, "variables": {"file": None, "dry": dry}}
    hdrs = dict(CSRF if headers is None else headers)
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    return api.post(None, headers=hdrs, data={
        "operations": json.dumps(ops), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": (path.name, path.read_bytes(), "application/xml")})


def n_flows(engine) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(m.Flow)).scalar_one()


@pytest.fixture
def api(db_url: str) -> Api:
    return Api(db_url, max_upload_bytes=2_000_000)


def test_tokens_are_stored_hashed_and_cli_creates_them(engine, db_url, monkeypatch) -> None:
    monkeypatch.setenv("FUNDTRACK_DATABASE_URL", db_url)
    out = CliRunner().invoke(main, ["token", "create", "--role", "reporter", "--org", "GB-GOV-1"])
    assert out.exit_code == 0, out.output
    secret = out.stdout.strip().splitlines()[-1]
    assert secret.startswith("ft_")
    with engine.connect() as c:
        stored = c.execute(select(ApiToken.secret_sha256)).scalars().all()
    assert stored == [hash_secret(secret)] and secret not in stored
    bad = CliRunner().invoke(main, ["token", "create", "--role", "reporter"])
    assert bad.exit_code != 0 and "needs at least one organisation" in bad.output


def test_reporter_uploads_own_report_and_is_refused_for_another(api: Api, engine) -> None:
    _, fcdo = create_token(engine, "reporter", ["GB-GOV-1"], "fcdo staff")
    # someone else's report: refused, nothing written
    r = upload(api, CANADA, fcdo)
    assert r.status_code == 200, r.text
    out = r.json()["data"]["importReport"]
    assert out["status"] == "refused" and out["errors"][0]["code"] == "NOT_PERMITTED"
    assert "CA-3" in out["message"]
    assert n_flows(engine) == 0
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.ImportBatch)).scalar_one() == 0
    # dry run of its own report: counted, nothing written
    dry = upload(api, FCDO, fcdo, dry=True).json()["data"]["importReport"]
    assert dry["status"] == "dry-run" and dry["counts"]["flows"] > 0 and dry["batch"] is None
    assert n_flows(engine) == 0
    # its own report: applied
    ok = upload(api, FCDO, fcdo).json()["data"]["importReport"]
    assert ok["status"] == "applied" and ok["errors"] == []
    assert ok["batch"]["publisherRef"] == "GB-GOV-1"
    assert n_flows(engine) == ok["counts"]["flows"] == dry["counts"]["flows"]
    batch_id = ok["batch"]["id"]
    # another reporter may not revert it; the owner may
    _, other = create_token(engine, "reporter", ["CA-3"])
    q = """mutation($id: ID!) { revertImport(input: {id: $id}) {
             errors { code message } batch { status } } }"""
    refused = api.query(q, {"id": batch_id}, token=other)["revertImport"]
    assert refused["errors"][0]["code"] == "NOT_PERMITTED"
    assert n_flows(engine) > 0
    done = api.query(q, {"id": batch_id}, token=fcdo)["revertImport"]
    assert done["errors"] == [] and done["batch"]["status"] == "reverted"
    assert n_flows(engine) == 0


def test_anonymous_and_reporter_mutations_are_refused(api: Api, engine) -> None:
    r = upload(api, FCDO, None)
    assert "needs an API token" in r.json()["errors"][0]["message"]
    assert n_flows(engine) == 0
    q = 'mutation { upsertOrganization(input: {ref: "XM-OCHA-CBPF-AFG", isPooledFund: true}) ' \
        '{ created organization { ref isPooledFund } } }'
    assert "needs an API token" in api.error(q)
    _, rep = create_token(engine, "reporter", ["GB-GOV-1"])
    assert "needs an admin token" in api.error(q, token=rep)
    _, admin = create_token(engine, "admin")
    made = api.query(q, token=admin)["upsertOrganization"]
    assert made == {"created": True, "organization": {"ref": "XM-OCHA-CBPF-AFG",
                                                      "isPooledFund": True}}
    edit = api.query('mutation { upsertOrganization(input: {ref: "XM-OCHA-CBPF-AFG", '
                     'name: "Afghanistan Humanitarian Fund"}) { created organization '
                     '{ name isPooledFund } } }', token=admin)["upsertOrganization"]
    assert edit == {"created": False, "organization": {"name": "Afghanistan Humanitarian Fund",
                                                       "isPooledFund": True}}
    r = api.post({"query": "{ flows { totalCount } }"},
                 headers={"Authorization": "Bearer ft_nonsense"})
    assert r.status_code == 401


def test_upload_needs_csrf_header_and_respects_body_limit(api: Api, engine) -> None:
    _, admin = create_token(engine, "admin")
    r = upload(api, FCDO, admin, headers={})
    assert r.status_code == 400 and "non-simple header" in r.text
    small = Api(api.settings.database_url, max_upload_bytes=5000)
    r = upload(small, FCDO, admin)
    assert r.status_code == 413 and "limit of 5000 bytes" in r.text
    assert n_flows(engine) == 0
    # the server keeps answering
    assert small.query("{ flows { totalCount } }")["flows"]["totalCount"] == 0


def test_chunked_upload_without_content_length_is_413(api: Api, engine) -> None:
    """A body streamed in chunks (no Content-Length) is cut off at the limit: 413, nothing written."""
    _, admin = create_token(engine, "admin")
    small = Api(api.settings.database_url, max_upload_bytes=5000)

    async def chunks():
        for _ in range(100):  # 100 x 1 kB, far above the 5,000-byte limit
            yield b'{"query": "{ flows { totalCount } }", "x": "' + b"a" * 1000 + b'"}'

    r = small.post(None, headers={"Authorization": f"Bearer {admin}",
                                  "Content-Type": "application/json"}, content=chunks())
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413 and "limit of 5000 bytes" in r.text
    assert n_flows(engine) == 0
    assert small.query("{ flows { totalCount } }")["flows"]["totalCount"] == 0
