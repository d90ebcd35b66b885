"""No N+1: a page of flows with nested objects costs the same statements for 10 or 500."""

from __future__ import annotations

from sqlalchemy import event

from fundtrack.api.testing import Api

PAGE = """query($n: Int) { flows(first: $n, where: {activity: {sector: {code: {_is_null: false}}}}) {
  nodes { id amount
    provider { ref name organization { name } }
    receiver { ref name organization { name } }
    activity { iatiIdentifier title sectors { code percentage }
               policyMarkers { code significance } genderSignificance } } } }"""


def test_statements_do_not_grow_with_page_size(loaded_url: str) -> None:
    api = Api(loaded_url)
    engine = api.app.state.engine
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(_conn, _cursor, statement, *_args):  # noqa: ANN001
        if not statement.lstrip().upper().startswith(("BEGIN", "SET", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    def run(n: int) -> int:
        statements.clear()
        nodes = api.query(PAGE, {"n": n})["flows"]["nodes"]
        assert len(nodes) == n
        assert sum(1 for x in nodes if x["activity"]["sectors"]) == n
        return len(statements)

    small, large = run(10), run(500)
    assert small == large
    # page, activities, sectors, markers, organisations (provider+receiver share a batch)
    assert large <= 6, large
