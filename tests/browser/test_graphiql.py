"""GraphiQL renders from the package alone: every request stays on our own server.

Why: the IDE used to pull React and GraphiQL from unpkg, so offline (or behind a strict
firewall) ``/graphql`` showed "Loading..." and "Cookies is not defined". The test blocks
nothing; it records every request the page makes and fails on any that leaves the
server, then runs a query through the rendered editor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def test_graphiql_renders_offline_and_runs_a_query(live: dict[str, Any], page: Any,
                                                   artifacts: Path) -> None:
    requested: list[str] = []
    failed: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(live["url"] + "/graphql?q=" + "%7B%20flows%20%7B%20totalCount%20%7D%20%7D")
    page.wait_for_selector(".graphiql-container .graphiql-editors")
    assert page.evaluate("typeof window.GraphiQL") == "function"
    page.click(".graphiql-execute-button")
    page.wait_for_function(
        "document.querySelector('.result-window') && "
        "document.querySelector('.result-window').innerText.includes('totalCount')")
    result = page.inner_text(".result-window")
    page.screenshot(path=str(artifacts / "graphiql.png"))
    ours = urlsplit(live["url"]).netloc
    external = [u for u in requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                and urlsplit(u).netloc != ours]
    assert external == []
    assert failed == []
    assert any("/static/graphiql/graphiql.min.js" in u for u in requested)
    assert '"totalCount"' in result
    assert page.js_errors == []
