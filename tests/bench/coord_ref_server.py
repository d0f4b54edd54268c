#!/usr/bin/python3
"""coord_ref_server: the reference for bench_coord_throughput.py. A minimal
troika.v1 server on Debian's python3-grpcio (Google's gRPC core with its
Python binding), written as anyone would with the stock library, so the
same load generator (coord_load) can drive it and troika-coord alike:

- Agent/Connect: Hello is answered with Welcome; each CheckResult replaces
  the node's latest result of that check in a dict and is counted; a
  check's first result, or one with another status, is an event.
- Admin/WatchEvents: events as they happen (kinds and nodes filters), from
  a bounded queue per watcher; a watcher that falls 1024 events behind is
  ended with RESOURCE_EXHAUSTED, as troika-coord does.
- /metrics (plain HTTP, its own thread): the two counters the benchmark
  reads, with troika-coord's names.

It does less than troika-coord (no log line per event, no handling-time
histogram, no refusals of malformed streams): it is the floor of what a
Python server costs, not a port.

    coord_ref_server.py --listen HOST:PORT --metrics HOST:PORT
                        [--workers N] [--pb-dir DIR]

The Python modules are made with protoc --python_out at start, into
--pb-dir or a temporary directory removed at exit (grpc_tools is not
installed, so the services are wired with generic handlers).
"""
import argparse
import http.server
import importlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
WATCH_QUEUE = 1024
STATUS_NAMES = {0: "none", 1: "ok", 2: "warning", 3: "critical", 4: "unknown"}


def generate_modules(outdir):
    subprocess.run(["protoc", f"--python_out={outdir}", f"-I{os.path.join(SRC, 'proto')}",
                    "troika/v1/agent.proto", "troika/v1/admin.proto"], check=True)
    sys.path.insert(0, outdir)
    return (importlib.import_module("troika.v1.agent_pb2"),
            importlib.import_module("troika.v1.admin_pb2"))


class Watcher:
    def __init__(self, req):
        self.q = queue.Queue(WATCH_QUEUE)
        self.nodes = set(req.nodes)
        self.kinds = set(req.kinds)
        self.overrun = False

    def wants(self, ev):
        return ((not self.nodes or ev.node in self.nodes) and
                (not self.kinds or ev.kind in self.kinds))


class RefServer:
    def __init__(self, agent_pb2, admin_pb2):
        self.apb = agent_pb2
        self.dpb = admin_pb2
        self.lock = threading.Lock()
        self.nodes = {}          # node -> {check: CheckResult}
        self.results = 0
        self.seq = 0
        self.watchers = []

    def emit(self, kind, severity, node, check, message, fields):
        """Under self.lock."""
        self.seq += 1
        ev = self.dpb.Event(seq=self.seq, time_unix_nano=time.time_ns(), kind=kind,
                            severity=severity, node=node, check=check, message=message,
                            fields=[self.apb.Label(name=k, value=v) for k, v in fields])
        for w in self.watchers:
            if w.overrun or not w.wants(ev):
                continue
            try:
                w.q.put_nowait(ev)
            except queue.Full:
                w.overrun = True

    def connect(self, requests, context):
        node = None
        for m in requests:
            body = m.WhichOneof("body")
            if body == "hello":
                if not m.hello.node:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Hello needs a node name")
                with self.lock:
                    if node is None or node != m.hello.node:
                        self.emit("node_connected", self.dpb.SEVERITY_INFO, m.hello.node, "",
                                  f"node {m.hello.node} connected", [("peer", context.peer())])
                    node = m.hello.node
                    self.nodes.setdefault(node, {})
                yield self.apb.CoordinatorMessage(welcome=self.apb.Welcome(
                    coordinator="ref", version="0", heartbeat_interval_nano=5 * 10**9,
                    fencing_token=m.hello.fencing_token))
            elif node is None:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              "the first message must be a Hello")
            elif body == "check_result":
                r = m.check_result
                with self.lock:
                    checks = self.nodes[node]
                    prev = checks.get(r.check)
                    checks[r.check] = r
                    self.results += 1
                    if prev is None or prev.status != r.status:
                        frm = STATUS_NAMES.get(prev.status if prev else 0, "none")
                        to = STATUS_NAMES.get(r.status, "none")
                        sev = (self.dpb.SEVERITY_INFO if r.status == 1 else
                               self.dpb.SEVERITY_WARNING if r.status == 2 else
                               self.dpb.SEVERITY_CRITICAL)
                        self.emit("check_status", sev, node, r.check,
                                  f"{r.check} on {node}: {frm} -> {to}: {r.message}",
                                  [("from", frm), ("to", to), ("plugin", r.plugin)])

    def watch(self, req, context):
        w = Watcher(req)
        with self.lock:
            self.watchers.append(w)
        try:
            while context.is_active():
                if w.overrun:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  "too slow: events were lost")
                try:
                    ev = w.q.get(timeout=0.5)
                except queue.Empty:
                    continue
                yield ev
        finally:
            with self.lock:
                self.watchers.remove(w)

    def metrics_text(self):
        with self.lock:
            results, seq = self.results, self.seq
        return ("# TYPE troika_coord_agent_messages_received_total counter\n"
                f'troika_coord_agent_messages_received_total{{kind="check_result"}} {results}\n'
                "# TYPE troika_coord_events_total counter\n"
                f"troika_coord_events_total {seq}\n")


def serve_metrics(ref, host, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ref.metrics_text().encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def hostport(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, type=hostport)
    ap.add_argument("--metrics", required=True, type=hostport)
    ap.add_argument("--workers", type=int, default=200,
                    help="threads; every open stream holds one")
    ap.add_argument("--pb-dir")
    args = ap.parse_args()

    own_dir = None
    pb_dir = args.pb_dir
    if pb_dir is None:
        pb_dir = own_dir = tempfile.mkdtemp(prefix="troika-ref-pb-")
    try:
        agent_pb2, admin_pb2 = generate_modules(pb_dir)
        ref = RefServer(agent_pb2, admin_pb2)
        from concurrent import futures
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
        server.add_generic_rpc_handlers([
            grpc.method_handlers_generic_handler("troika.v1.Agent", {
                "Connect": grpc.stream_stream_rpc_method_handler(
                    ref.connect, request_deserializer=agent_pb2.AgentMessage.FromString,
                    response_serializer=agent_pb2.CoordinatorMessage.SerializeToString)}),
            grpc.method_handlers_generic_handler("troika.v1.Admin", {
                "WatchEvents": grpc.unary_stream_rpc_method_handler(
                    ref.watch, request_deserializer=admin_pb2.WatchEventsRequest.FromString,
                    response_serializer=admin_pb2.Event.SerializeToString)}),
        ])
        server.add_insecure_port(f"{args.listen[0]}:{args.listen[1]}")
        server.start()
        httpd = serve_metrics(ref, *args.metrics)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        print(f"serving on {args.listen[0]}:{args.listen[1]}", flush=True)
        while not stop.wait(1):
            pass
        httpd.shutdown()
        server.stop(0).wait()
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
