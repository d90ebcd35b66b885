"""SQL for the questions people ask: flow filters, dimensions, aggregates, traces.

No GraphQL here (a test checks that nothing outside ``fundtrack.api`` imports strawberry):
the API, the pages (``fundtrack.web``) and the exports all call this package, so one
question gets the same SQL whichever way it is asked.
"""
