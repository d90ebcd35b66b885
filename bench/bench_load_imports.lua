-- wrk script for bench/bench_load_imports.py: the query of bench/graphql_post.lua, and a count
-- of answers that are not 2xx or carry GraphQL `errors` (both count as errors).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"query":"{ flows(first: 10, where: {kind: {_eq: DISBURSEMENT}}) { totalCount nodes { amount currency valueDate provider { ref } } } }"}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  gql_errors = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 or string.find(body, '"errors"', 1, true) then
    gql_errors = gql_errors + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("gql_errors")
  end
  io.write(string.format("RESULT requests=%d seconds=%.2f connect=%d read=%d write=%d status=%d timeout=%d bad_answers=%d p50=%.1f p90=%.1f p99=%.1f max=%.1f\n",
    summary.requests, summary.duration / 1e6, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, bad,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
