#!/bin/sh
# troika's main job on this machine: build, then run a coordinator
# (conf/coord.yaml, alone: no quorum) and the agent with the sample
# configuration (conf/agent.yaml), which watches nginx and the host through
# the tcp, http, process and exec plugins and reports to that coordinator.
# Starts a local nginx if nothing answers on 127.0.0.1:80, and stops it
# again on exit. Ctrl-C stops.
set -eu
cd "$(dirname "$0")/.."

sh contrib/install-deps.sh
umask 022
cmake --preset default >/dev/null
cmake --build --preset default -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

started_nginx=""
if ! curl -fsS -o /dev/null --max-time 2 http://127.0.0.1/ 2>/dev/null; then
	echo "quickstart: no web server on 127.0.0.1:80, starting nginx"
	nginx -g 'daemon on;'
	started_nginx=1
fi

agent_pid=""
coord_pid=""
cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" || true
	[ -n "$coord_pid" ] && kill "$coord_pid" 2>/dev/null && wait "$coord_pid" || true
	if [ -n "$started_nginx" ]; then
		nginx -s quit 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 0' INT TERM

build/core/coord/troika-coord --config conf/coord.yaml &
coord_pid=$!
echo "quickstart: agent metrics at http://127.0.0.1:9464/metrics, health at http://127.0.0.1:9464/healthz"
echo "quickstart: coordinator (gRPC 127.0.0.1:7443) re-exports them, labelled by node, at http://127.0.0.1:9465/metrics"
echo "quickstart: reload with: kill -HUP <agent pid>; stop with Ctrl-C"
build/core/agent/troika-agent --config conf/agent.yaml --plugin-dir build/plugins &
agent_pid=$!
wait "$agent_pid"
