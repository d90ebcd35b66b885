#!/usr/bin/env bash
# Loopback load test: a small GraphQL query against `fundtrack serve --workers 2`.
#   bench/bench_load.sh postgresql://postgres@127.0.0.1:5432/DB [seconds] [connections]
# DB must hold data (e.g. the shared IATI files imported). Needs Debian's wrk.
# Bounded: one run of the given seconds, on 127.0.0.1 only; the server is stopped after.
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${1:?database URL}"; SECS="${2:-20}"; CONNS="${3:-16}"; PORT=8799
FUNDTRACK_DATABASE_URL="$URL" .venv/bin/fundtrack serve --host 127.0.0.1 --port "$PORT" \
  --workers 2 >/tmp/fundtrack-load-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.5; done
curl -s -X POST -H 'content-type: application/json' \
  -d '{"query":"{ flows(first: 10, where: {kind: {_eq: DISBURSEMENT}}) { totalCount } }"}' \
  "http://127.0.0.1:$PORT/graphql"; echo
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/graphql_post.lua "http://127.0.0.1:$PORT/graphql"
