"""The per-document caches (cost estimate) never answer for other variables or another
query: a repeated query is refused or served exactly as the first; the connection
look-ahead (not cached) follows the variables too."""

from __future__ import annotations

from fundtrack.api.memo import MISS, Lru, variables_key
from fundtrack.api.testing import Api


def test_lru_forgets_the_least_recently_used() -> None:
    lru = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)
    assert lru.get("b") is MISS
    assert lru.get("a") == 1 and lru.get("c") == 3


def test_variables_key() -> None:
    assert variables_key(None) == variables_key({}) == ""
    assert variables_key({"a": 1, "b": [2]}) == variables_key({"b": [2], "a": 1})
    assert variables_key({"f": object()}) is None
    assert variables_key({"s": "x" * 5000}) is None


def test_cost_depends_on_variables_even_when_cached(loaded_url: str) -> None:
    api = Api(loaded_url)
    q = """query($n: Int) { flows(first: $n) { nodes { id kind amount currency valueDate
             transactionDate amountUsd usdRate usdRateDate usdRateSource reportingOrgRef externalId
             ref sectorVocabulary sectorCode recipientCountry recipientRegion aidType earmarking
             flowType financeType tiedStatus humanitarian description sourceLocation current
             provider { ref name } activity { title sectors { code } policyMarkers { code } } } } }"""
    for _ in range(2):
        ok = api.raw(q, {"n": 5})
        assert "errors" not in ok and len(ok["data"]["flows"]["nodes"]) == 5
        refused = api.raw(q, {"n": 500})
        assert refused["errors"][0]["message"].startswith("query cost ")
        assert "above the cost limit of 15000" in refused["errors"][0]["message"]


def test_skip_with_variables_changes_the_look_ahead(loaded_url: str) -> None:
    api = Api(loaded_url, fast_executor=True)
    q = """query($skip: Boolean!) { flows(first: 3) { nodes { id
             activity @skip(if: $skip) { iatiIdentifier } } } }"""
    for _ in range(2):
        shown = api.raw(q, {"skip": False})["data"]["flows"]["nodes"]
        hidden = api.raw(q, {"skip": True})["data"]["flows"]["nodes"]
        assert all(n["activity"]["iatiIdentifier"] for n in shown)
        assert all("activity" not in n for n in hidden)
        assert [n["id"] for n in shown] == [n["id"] for n in hidden]
