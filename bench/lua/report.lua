-- Shared by the bench scripts (loaded with dofile): done() prints one line
-- "BENCH_JSON {...}" that bench.py reads: requests, seconds, errors and
-- latency percentiles in milliseconds.
function done(summary, latency, requests)
	local e = summary.errors
	local errors = e.connect + e.read + e.write + e.status + e.timeout
	io.write(string.format(
		'BENCH_JSON {"requests":%d,"seconds":%.6f,"errors":%d,"status_errors":%d,' ..
		'"p50_ms":%.4f,"p99_ms":%.4f,"p999_ms":%.4f}\n',
		summary.requests, summary.duration / 1e6, errors, e.status,
		latency:percentile(50) / 1000, latency:percentile(99) / 1000,
		latency:percentile(99.9) / 1000))
end
