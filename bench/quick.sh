#!/usr/bin/env bash
# make bench-quick: redirect throughput of shortd against nginx answering
# `return 302`, of shortd with click analytics against shortd without, and
# of shortd with its rate limiters on (at rates this load never reaches,
# so every request pays for the check) against limiters off; each server
# pinned to core 0 with wrk on core 1, alternated for ROUNDS rounds of
# DURATION seconds. Prints medians and the ratios.
# Environment: LINKS (100000), ROUNDS (3), DURATION (10), CONNS (64).
set -euo pipefail
cd "$(dirname "$0")/.."
LINKS=${LINKS:-100000} ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10} CONNS=${CONNS:-64}
ncpu=$(nproc)
if [ "$ncpu" -lt 2 ]; then echo "bench-quick needs 2 cores (server on 0, wrk on 1)" >&2; exit 1; fi

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# limiters on, at rates wrk on one core never reaches
limits=(--ip-rate 100000000 --ip-burst 100000000 --notfound-rate 1000000)
export SHORTD_KEY
SHORTD_KEY=$(./shortd key create --name bench --role admin --data "$tmp/data" 2>/dev/null)
sport=$(free_port)
taskset -c 0 ./shortd --listen "127.0.0.1:$sport" --data "$tmp/data" --threads 1 --log-level warn \
	"${limits[@]}" 2> "$tmp/shortd.log" &
pids+=($!)
shortd_pid=$!
wait_port "$sport"
echo "seeding $LINKS links through the API..."
t0=$(date +%s%N)
/usr/bin/python3 bench/seed.py "$sport" "$LINKS" "$tmp/codes"
t1=$(date +%s%N)
echo "seeded in $(( (t1 - t0) / 1000000 )) ms (python client, 64 connections)"

# the same data, served without click analytics
oport=$(free_port)
taskset -c 0 ./shortd --listen "127.0.0.1:$oport" --data "$tmp/data" --threads 1 --log-level warn \
	--analytics 0 "${limits[@]}" 2> "$tmp/shortd-off.log" &
pids+=($!)
off_pid=$!
wait_port "$oport"

# the same data, with analytics, without rate limiters
lport=$(free_port)
taskset -c 0 ./shortd --listen "127.0.0.1:$lport" --data "$tmp/data" --threads 1 --log-level warn \
	--ip-rate 0 --notfound-rate 0 2> "$tmp/shortd-nolimits.log" &
pids+=($!)
nolim_pid=$!
wait_port "$lport"

nport=$(free_port)
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000000;
	keepalive_timeout 75s;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	server {
		listen 127.0.0.1:$nport;
		location / { return 302 https://example.com/bench/12345; }
	}
}
NGX
taskset -c 0 /usr/sbin/nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" &
nginx_master=$!
pids+=($!)
wait_port "$nport"
nginx_pids="$nginx_master $(pgrep -P "$nginx_master" | tr '\n' ' ')" # master and worker
hz=$(getconf CLK_TCK)

cpu_ticks() { # user+system ticks of the given pids, threads included
	local t=0 p
	for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
	echo "$t"
}

run_wrk() { # port pids... -> prints "rps p99_ms server_cores_used"
	local port=$1; shift
	CODES="$tmp/codes" taskset -c 1 wrk -t1 -c"$CONNS" -d1s -s bench/redirect.lua "http://127.0.0.1:$port" > /dev/null
	local c0 c1
	c0=$(cpu_ticks "$@")
	CODES="$tmp/codes" taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s bench/redirect.lua \
		"http://127.0.0.1:$port" > "$tmp/wrk.out"
	c1=$(cpu_ticks "$@")
	if grep -q "Non-2xx or 3xx" "$tmp/wrk.out"; then echo "errors in run:" >&2; cat "$tmp/wrk.out" >&2; exit 1; fi
	rps=$(awk '/^Requests\/sec/ {print $2}' "$tmp/wrk.out")
	p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' "$tmp/wrk.out")
	echo "$rps $p99 $(awk -v t=$((c1 - c0)) -v hz="$hz" -v d="$DURATION" 'BEGIN {print t / hz / d}')"
}

: > "$tmp/results"
for r in $(seq "$ROUNDS"); do
	read -r s_rps s_p99 s_cpu < <(run_wrk "$sport" "$shortd_pid")
	# shellcheck disable=SC2086
	read -r n_rps n_p99 n_cpu < <(run_wrk "$nport" $nginx_pids)
	read -r o_rps o_p99 o_cpu < <(run_wrk "$oport" "$off_pid")
	read -r l_rps l_p99 l_cpu < <(run_wrk "$lport" "$nolim_pid")
	printf "round %d: shortd %7.0f req/s (p99 %.3f ms, %.2f cores)   nginx %7.0f req/s (p99 %.3f ms, %.2f cores)   analytics off %7.0f req/s (%.2f cores)   limits off %7.0f req/s (%.2f cores)\n" \
		"$r" "$s_rps" "$s_p99" "$s_cpu" "$n_rps" "$n_p99" "$n_cpu" "$o_rps" "$o_cpu" "$l_rps" "$l_cpu"
	echo "$s_rps $s_p99 $s_cpu $n_rps $n_p99 $n_cpu $o_rps $o_p99 $o_cpu $l_rps $l_p99 $l_cpu" >> "$tmp/results"
done
/usr/bin/python3 - "$tmp/results" "$CONNS" <<'PY'
import statistics as st, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
med = lambda i: st.median(r[i] for r in rows)
per_core = [(r[0] / r[2]) / (r[3] / r[5]) for r in rows]
raw = [r[0] / r[3] for r in rows]
print(f"median: shortd {med(0):,.0f} req/s, {med(0) / med(2):,.0f} per server core, p99 {med(1):.3f} ms")
print(f"median: nginx  {med(3):,.0f} req/s, {med(3) / med(5):,.0f} per server core, p99 {med(4):.3f} ms")
print(f"ratio shortd/nginx: req/s {st.median(raw):.2f} (min {min(raw):.2f}, max {max(raw):.2f}); "
      f"per server core {st.median(per_core):.2f} (min {min(per_core):.2f}, max {max(per_core):.2f})")
ok = st.median(per_core) >= 1.15
print(f"target per core >= 1.15x nginx: {'met' if ok else 'NOT met'}; "
      f"p99 < 1 ms at {int(sys.argv[2]) if len(sys.argv) > 2 else 64} connections: {'met' if med(1) < 1 else 'NOT met'}")
off = [(r[6] / r[8]) / (r[3] / r[5]) for r in rows]
print(f"ratio shortd --analytics 0 / nginx per server core: median {st.median(off):.2f} "
      f"(min {min(off):.2f}, max {max(off):.2f})")
an = [r[0] / r[6] for r in rows]
an_core = [(r[0] / r[2]) / (r[6] / r[8]) for r in rows]
print(f"analytics on/off: req/s {st.median(an):.2f} (min {min(an):.2f}, max {max(an):.2f}); "
      f"per server core {st.median(an_core):.2f}; target >= 0.95: "
      f"{'met' if st.median(an_core) >= 0.95 else 'NOT met'}")
lim = [r[0] / r[9] for r in rows]
lim_core = [(r[0] / r[2]) / (r[9] / r[11]) for r in rows]
print(f"rate limits on/off: req/s {st.median(lim):.2f} (min {min(lim):.2f}, max {max(lim):.2f}); "
      f"per server core {st.median(lim_core):.2f}; target >= 0.95: "
      f"{'met' if st.median(lim_core) >= 0.95 else 'NOT met'}")
PY
