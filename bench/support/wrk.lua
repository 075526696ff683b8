-- wrk script: POST the same small JSON body the node driver sends; print a JSON summary line.
wrk.method = "POST"
wrk.body = '{"model":"gpt-bench","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
local extra = os.getenv("BENCH_WRK_HEADER")
if extra and extra ~= "" then
  local k, v = extra:match("^([^:]+):%s*(.*)$")
  wrk.headers[k] = v
end

done = function(summary, latency, requests)
  local e = summary.errors
  local errs = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format(
    'WRKJSON {"requests":%d,"durationUs":%d,"errors":%d,"p50us":%d,"p99us":%d,"p999us":%d,"meanUs":%.1f}\n',
    summary.requests, summary.duration, errs, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.mean))
end
