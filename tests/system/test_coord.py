"""troika-coord against python3-grpcio agents and admin clients (Google's
gRPC core, code nobody here wrote): Hello, check results, metric batches
and heartbeats on Agent/Connect; Admin/GetStatus from the view; /metrics
through promtool with the re-exported samples labelled by node; a
disconnected agent kept with its last state; bad streams refused with
the right status while a good agent carries on. Every coordinator is
stopped with SIGTERM and must exit 0 without sanitizer reports."""
import os
import queue
import signal
import struct
import subprocess
import threading
import time
import urllib.request

import grpc
import pytest

from conftest import BUILD_DIR, NODE1, free_port, parse_metrics, wait_for
from grpc_echo import SANITIZER_REPORT, RawH2, frame, generate_modules, grpc_message

COORD = os.path.join(BUILD_DIR, "core", "coord", "troika-coord")
SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "coord.yaml")
CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "config")
GOLDEN = sorted(f for f in os.listdir(CONFIG_DIR)
                if f.startswith("coord-") and f.endswith(".yaml"))


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    _, agent_pb2, admin_pb2 = generate_modules(tmp_path_factory.mktemp("pb"))
    return agent_pb2, admin_pb2


class Coord:
    def __init__(self, procs, workdir, pb, heartbeat="30m", timeout="1h", extra="",
                 creds=None):
        self.procs = procs
        self.dir = workdir
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.target = f"{NODE1}:{self.grpc_port}"
        self.log = workdir / "coord.log"
        self.conf = workdir / "coord.yaml"
        # The sample as it is, on this test's addresses.
        text = open(SAMPLE).read()
        text = text.replace("127.0.0.1:7443", self.target)
        text = text.replace("127.0.0.1:9465", f"{NODE1}:{self.http_port}")
        # Tests count messages: no heartbeat unless a test wants them.
        text = text.replace("heartbeat: 5s", f"heartbeat: {heartbeat}")
        text = text.replace("timeout: 15s", f"timeout: {timeout}")
        assert self.target in text and str(self.http_port) in text
        self.conf.write_text(text + extra)
        self.proc = procs.start([COORD, "--config", str(self.conf)], self.log)
        wait_for(self.healthy, 10, what="troika-coord /healthz")
        self.channel = (grpc.secure_channel(self.target, creds) if creds
                        else grpc.insecure_channel(self.target))
        agent_pb2, admin_pb2 = pb
        self.connect = self.channel.stream_stream(
            "/troika.v1.Agent/Connect", request_serializer=agent_pb2.AgentMessage.SerializeToString,
            response_deserializer=agent_pb2.CoordinatorMessage.FromString)
        # Bytes as they are, for messages no protobuf library would make.
        self.connect_raw = self.channel.stream_stream(
            "/troika.v1.Agent/Connect", request_serializer=lambda b: b,
            response_deserializer=agent_pb2.CoordinatorMessage.FromString)
        self.status_rpc = self.channel.unary_unary(
            "/troika.v1.Admin/GetStatus",
            request_serializer=admin_pb2.GetStatusRequest.SerializeToString,
            response_deserializer=admin_pb2.GetStatusResponse.FromString)
        self.watch_rpc = self.channel.unary_stream(
            "/troika.v1.Admin/WatchEvents",
            request_serializer=admin_pb2.WatchEventsRequest.SerializeToString,
            response_deserializer=admin_pb2.Event.FromString)
        self.admin_pb2 = admin_pb2

    def healthy(self):
        assert self.proc.poll() is None, f"troika-coord exited:\n{self.log_text()}"
        try:
            with urllib.request.urlopen(f"http://{NODE1}:{self.http_port}/healthz",
                                        timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics_text(self):
        with urllib.request.urlopen(f"http://{NODE1}:{self.http_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metrics(self):
        return parse_metrics(self.metrics_text())

    def value(self, name, **labels):
        return self.metrics().get((name, frozenset(labels.items())))

    def watch(self, after_seq=0, nodes=(), kinds=(), timeout=20):
        return self.watch_rpc(self.admin_pb2.WatchEventsRequest(
            after_seq=after_seq, nodes=nodes, kinds=kinds), timeout=timeout)

    def status(self, *nodes):
        return self.status_rpc(self.admin_pb2.GetStatusRequest(nodes=nodes), timeout=5)

    def node(self, name):
        nodes = [n for n in self.status().nodes if n.node == name]
        return nodes[0] if nodes else None

    def got(self, kind, n):
        """Wait until n messages of a kind arrived: messages of one stream
        are handled in order, so all sent before them are in the view."""
        wait_for(lambda: self.value("troika_coord_agent_messages_received_total",
                                    kind=kind) == n, 10, what=f"{n} {kind} messages")

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self):
        self.channel.close()
        rc = self.procs.stop(self.proc, timeout=30)
        log = self.log_text()
        for marker in SANITIZER_REPORT:
            assert marker not in log, log[log.index(marker) - 200:][:4000]
        assert rc == 0, f"troika-coord exited {rc}:\n{log[-4000:]}"


@pytest.fixture
def coord(procs, tmp_path, pb):
    c = Coord(procs, tmp_path, pb)
    yield c
    c.stop()


class Stream:
    """One agent stream: send() queues a message, recv() reads a reply."""
    END = object()

    def __init__(self, method, timeout=30):
        self.q = queue.Queue()
        self.call = method(self._gen(), timeout=timeout)

    def _gen(self):
        while True:
            m = self.q.get()
            if m is Stream.END:
                return
            yield m

    def send(self, *msgs):
        for m in msgs:
            self.q.put(m)

    def recv(self):
        return next(self.call)

    def close(self):
        self.q.put(Stream.END)

    def outcome(self):
        """(code, details) once the coordinator ended the stream."""
        try:
            for _ in self.call:
                pass
        except grpc.RpcError:
            pass
        return self.call.code(), self.call.details()


def hello(agent_pb2, node, checks=("web", "db"), start=123):
    return agent_pb2.AgentMessage(hello=agent_pb2.Hello(
        node=node, version="0.1.0", start_time_unix_nano=start, fencing_token=7,
        plugins=[agent_pb2.Plugin(name="tcp", version="1",
                                  actions=[agent_pb2.Action(name="restart")])],
        checks=[agent_pb2.Check(name=c, plugin="tcp", interval_nano=10**9) for c in checks]))


def result(agent_pb2, check, status, run, message="", fields=()):
    return agent_pb2.AgentMessage(check_result=agent_pb2.CheckResult(
        check=check, plugin="tcp", status=status, message=message, run=run,
        evidence=agent_pb2.EVIDENCE_CERTAIN if status == agent_pb2.CHECK_STATUS_CRITICAL
        else agent_pb2.EVIDENCE_UNSPECIFIED,
        duration_nano=1500000, time_unix_nano=1700000000 * 10**9 + run,
        fields=[agent_pb2.Label(name=k, value=v) for k, v in fields]))


def batch(agent_pb2, samples, dropped=0):
    return agent_pb2.AgentMessage(metric_batch=agent_pb2.MetricBatch(
        time_unix_nano=1, dropped_samples=dropped,
        samples=[agent_pb2.Sample(name=n, value=v, type=t, help=h,
                                  labels=[agent_pb2.Label(name=k, value=x)
                                          for k, x in labels.items()])
                 for n, labels, v, t, h in samples]))


def beat(agent_pb2, seq):
    return agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat(seq=seq, time_unix_nano=1))


def test_sample_config_checks(tmp_path):
    r = subprocess.run([COORD, "--config", SAMPLE, "--check-config", "--print"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # The recovery sections' printing is the golden tests' (coord-05-local).
    assert r.stdout.startswith('node:\n  name: "coord-1"\nlisten: "127.0.0.1:7443"\n'
                               'metrics:\n  listen: "127.0.0.1:9465"\n'
                               'agents:\n  heartbeat: 5s\n  timeout: 15s\n'
                               'log:\n  level: info\n  target: stderr\n'
                               'store: local\nquorum: 1\n')
    bad = tmp_path / "bad.yaml"
    bad.write_text('listen: "127.0.1.1:1"\nnode:\n  nmae: x\nlog: {level: loud}\n')
    r = subprocess.run([COORD, "--config", str(bad), "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr == (f"{bad}:3:3: unknown key 'nmae' in node\n"
                        f"{bad}:4:14: level: expected err, warning, info or debug, got 'loud'\n")
    # The daemon itself refuses to start with it, and with no file at all.
    r = subprocess.run([COORD, "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "unknown key 'nmae'" in r.stderr
    r = subprocess.run([COORD, "--config", str(tmp_path / "none.yaml")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "No such file or directory" in r.stderr


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_config(name, tmp_path):
    """tests/config/coord-NN-*.yaml through --check-config --print, as
    run-golden.sh does for the agent: the output (exit 0) or the errors
    (exit 1) must equal coord-NN-*.ok or .err; and what --print shows
    loads back to the same."""
    base = os.path.join(CONFIG_DIR, name[:-len(".yaml")])
    r = subprocess.run([COORD, "--config", name, "--check-config", "--print"],
                       cwd=CONFIG_DIR, capture_output=True, text=True, timeout=30)
    if os.path.exists(base + ".ok"):
        assert (r.returncode, r.stderr) == (0, "")
        assert r.stdout == open(base + ".ok").read()
        again = tmp_path / "printed.yaml"
        again.write_text(r.stdout)
        r2 = subprocess.run([COORD, "--config", str(again), "--check-config", "--print"],
                            capture_output=True, text=True, timeout=30)
        assert (r2.returncode, r2.stdout) == (0, r.stdout)
    else:
        assert (r.returncode, r.stdout) == (1, "")
        assert r.stderr == open(base + ".err").read()


def test_agent_stream_status_and_metrics(coord, pb):
    agent_pb2, admin_pb2 = pb
    CRIT, OK = agent_pb2.CHECK_STATUS_CRITICAL, agent_pb2.CHECK_STATUS_OK
    s = Stream(coord.connect)
    s.send(hello(agent_pb2, "node-1"))
    w = s.recv()
    assert w.WhichOneof("body") == "welcome"
    assert w.welcome.coordinator == "coord-1"
    assert w.welcome.fencing_token == 7
    assert w.welcome.heartbeat_interval_nano == 30 * 60 * 10**9
    s.send(result(agent_pb2, "db", CRIT, 1, "connection refused", [("errno", "ECONNREFUSED")]),
           result(agent_pb2, "web", OK, 1, "ok"),
           result(agent_pb2, "db", OK, 2, "back"),
           batch(agent_pb2, [
               ("redis_connected_clients", {"check": "db", "plugin": "redis"}, 5,
                agent_pb2.METRIC_TYPE_GAUGE, "Connected clients."),
               ("redis_commands_processed_total", {"check": "db", "plugin": "redis"}, 1234,
                agent_pb2.METRIC_TYPE_COUNTER, "Commands processed."),
               ("bad name", {}, 1, agent_pb2.METRIC_TYPE_GAUGE, ""),
               # promtool would refuse the page with it.
               ("requests", {}, 1, agent_pb2.METRIC_TYPE_COUNTER, ""),
           ], dropped=3),
           beat(agent_pb2, 1))
    coord.got("heartbeat", 1)
    st = coord.status()
    assert (st.coordinator, st.leader, st.leader_name, st.quorum, st.store) == (
        "coord-1", True, "coord-1", True, admin_pb2.STORE_KIND_LOCAL)
    assert [n.node for n in st.nodes] == ["node-1"]
    n = st.nodes[0]
    assert n.connected and n.agent_version == "0.1.0" and n.agent_start_time_unix_nano == 123
    assert n.last_seen_unix_nano > 0
    # In the Hello's order, the latest result of each.
    assert [(c.check, c.status, c.run, c.message) for c in n.checks] == [
        ("web", OK, 1, "ok"), ("db", OK, 2, "back")]

    # A second node; GetStatus filters by node.
    s2 = Stream(coord.connect)
    s2.send(hello(agent_pb2, "node-2", checks=("db",)),
            result(agent_pb2, "db", CRIT, 9, "connection refused",
                   [("errno", "ECONNREFUSED")]), beat(agent_pb2, 1))
    assert s2.recv().WhichOneof("body") == "welcome"
    coord.got("heartbeat", 2)
    assert [n.node for n in coord.status().nodes] == ["node-1", "node-2"]
    only = coord.status("node-2").nodes
    assert [n.node for n in only] == ["node-2"]
    c = only[0].checks[0]
    assert (c.check, c.plugin, c.status, c.evidence, c.run) == (
        "db", "tcp", CRIT, agent_pb2.EVIDENCE_CERTAIN, 9)
    assert [(f.name, f.value) for f in c.fields] == [("errno", "ECONNREFUSED")]
    assert len(coord.status("node-3").nodes) == 0

    text = coord.metrics_text()
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode() + text
    m = parse_metrics(text)

    def v(name, **labels):
        return m.get((name, frozenset(labels.items())))
    assert v("troika_check_status", node="node-1", check="db", plugin="tcp") == 0
    assert v("troika_check_status", node="node-1", check="web", plugin="tcp") == 0
    assert v("troika_check_status", node="node-2", check="db", plugin="tcp") == 2
    assert v("redis_connected_clients", node="node-1", check="db", plugin="redis") == 5
    assert v("redis_commands_processed_total", node="node-1", check="db",
             plugin="redis") == 1234
    assert "# TYPE redis_commands_processed_total counter" in text
    assert "# HELP redis_connected_clients Connected clients." in text
    assert v("troika_coord_agent_dropped_samples_total", node="node-1") == 3
    assert v("troika_coord_samples_dropped_total", reason="invalid") == 2
    assert not any(k[0] == "requests" for k in m)
    assert v("troika_coord_agent_streams") == 2
    assert v("troika_coord_agent_streams_started_total") == 2
    assert v("troika_coord_nodes", state="connected") == 2
    assert v("troika_coord_node_connected", node="node-2") == 1
    assert v("troika_coord_agent_messages_received_total", kind="hello") == 2
    assert v("troika_coord_agent_messages_received_total", kind="check_result") == 4
    assert v("troika_coord_agent_messages_received_total", kind="metric_batch") == 1
    assert v("troika_coord_agent_messages_received_total", kind="heartbeat") == 2
    assert v("troika_coord_agent_received_bytes_total", kind="hello") > 0
    assert v("troika_coord_agent_message_handling_seconds_count") == 9
    assert v("troika_coord_status_requests_total") == 4
    lab = dict(grpc_type="bidi_stream", grpc_service="troika.v1.Agent", grpc_method="Connect")
    assert v("grpc_server_started_total", **lab) == 2
    assert v("grpc_server_msg_received_total", **lab) == 9
    assert v("grpc_server_msg_sent_total", **lab) == 2
    assert v("troika_grpc_server_connections") >= 1
    assert v("troika_grpc_server_received_bytes_total") > 0
    assert v("troika_coord_info", coordinator="coord-1", version="0.1.0", store="local") == 1

    # The agent ends its stream: node-1 stays, disconnected, with its
    # last state and samples.
    s.close()
    assert s.outcome()[0] == grpc.StatusCode.OK
    wait_for(lambda: not coord.node("node-1").connected, 5, what="node-1 disconnected")
    n = coord.node("node-1")
    assert [(c.check, c.status, c.run) for c in n.checks] == [("web", OK, 1), ("db", OK, 2)]
    assert coord.node("node-2").connected
    m = coord.metrics()
    assert m[("troika_coord_node_connected", frozenset({("node", "node-1")}))] == 0
    assert m[("troika_coord_nodes", frozenset({("state", "disconnected")}))] == 1
    assert m[("troika_coord_agent_streams", frozenset())] == 1
    assert m[("redis_connected_clients", frozenset(
        {("node", "node-1"), ("check", "db"), ("plugin", "redis")}))] == 5
    # It comes back (same agent process): state and samples kept, and
    # new results replace the old ones.
    s = Stream(coord.connect)
    s.send(hello(agent_pb2, "node-1"), result(agent_pb2, "web", CRIT, 2, "refused"),
           beat(agent_pb2, 1))
    assert s.recv().WhichOneof("body") == "welcome"
    coord.got("heartbeat", 3)
    n = coord.node("node-1")
    assert n.connected
    assert [(c.check, c.status, c.run) for c in n.checks] == [("web", CRIT, 2), ("db", OK, 2)]
    assert coord.value("redis_connected_clients", node="node-1", check="db",
                       plugin="redis") == 5
    # A killed agent (stream cancelled, no half-close) is disconnected too.
    s2.call.cancel()
    wait_for(lambda: not coord.node("node-2").connected, 5, what="node-2 disconnected")
    assert coord.node("node-2").checks[0].run == 9
    s.close()
    assert s.outcome()[0] == grpc.StatusCode.OK


def test_bad_streams_refused_good_one_unharmed(coord, pb):
    agent_pb2, _ = pb
    OK = agent_pb2.CHECK_STATUS_OK
    good = Stream(coord.connect)
    good.send(hello(agent_pb2, "good", checks=("web",)))
    assert good.recv().WhichOneof("body") == "welcome"

    def refused(method, *msgs):
        s = Stream(method, timeout=10)
        s.send(*msgs)
        code, details = s.outcome()
        return code, details

    # The first message must be a Hello.
    assert refused(coord.connect, beat(agent_pb2, 1)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "the first message must be a Hello")
    assert refused(coord.connect, result(agent_pb2, "web", OK, 1)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "the first message must be a Hello")
    # Bytes that are no AgentMessage (a wire type that does not exist).
    assert refused(coord.connect_raw, b"\x0f\xff\xff") == (
        grpc.StatusCode.INVALID_ARGUMENT, "cannot parse AgentMessage")
    # A field of the wrong wire type: hello (1) as a varint.
    assert refused(coord.connect_raw, b"\x08\x01") == (
        grpc.StatusCode.INVALID_ARGUMENT, "cannot parse AgentMessage")
    # An empty message parses but has no body.
    assert refused(coord.connect_raw, b"") == (
        grpc.StatusCode.INVALID_ARGUMENT, "AgentMessage without a body")
    # Hello without a node name, or with a repeated check.
    bad = hello(agent_pb2, "")
    assert refused(coord.connect, bad)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert refused(coord.connect, hello(agent_pb2, "dup", checks=("a", "a")))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    # A Hello that renames the stream's node.
    assert refused(coord.connect, hello(agent_pb2, "x"), hello(agent_pb2, "y")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "a Hello may not change the node name of a stream")
    # A result without a check name.
    assert refused(coord.connect, hello(agent_pb2, "z"), result(agent_pb2, "", OK, 1)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "CheckResult needs a check name")
    # Oversized: over the 4 MiB limit, refused at its prefix.
    big = agent_pb2.AgentMessage(hello=agent_pb2.Hello(node="big", version="v" * (5 << 20)))
    code, _ = refused(coord.connect, big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # An unknown method.
    with pytest.raises(grpc.RpcError) as e:
        coord.channel.unary_unary("/troika.v1.Admin/Nope")(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # A GetStatusRequest that does not parse.
    with pytest.raises(grpc.RpcError) as e:
        coord.channel.unary_unary("/troika.v1.Admin/GetStatus")(b"\x0f", timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # The good stream never noticed.
    good.send(result(agent_pb2, "web", OK, 5, "fine"), beat(agent_pb2, 1))
    # The refused stream that began with a heartbeat counted one too.
    coord.got("heartbeat", 2)
    n = coord.node("good")
    assert n.connected and n.checks[0].run == 5
    m = coord.metrics()

    def err(code):
        return m.get(("troika_coord_agent_stream_errors_total",
                      frozenset({("grpc_code", code)})), 0)
    assert err("FAILED_PRECONDITION") == 2
    assert err("INVALID_ARGUMENT") == 7
    assert m[("troika_coord_agent_messages_received_total",
              frozenset({("kind", "invalid")}))] == 3
    assert m[("grpc_server_handled_total", frozenset({
        ("grpc_type", "bidi_stream"), ("grpc_service", "troika.v1.Agent"),
        ("grpc_method", "Connect"), ("grpc_code", "RESOURCE_EXHAUSTED")}))] == 1
    # Five more: the log keeps to 10 lines per 10 s, the metrics count all.
    for _ in range(5):
        assert refused(coord.connect, beat(agent_pb2, 1))[0] == \
            grpc.StatusCode.FAILED_PRECONDITION
    assert coord.value("troika_coord_agent_stream_errors_total",
                       grpc_code="FAILED_PRECONDITION") == 7
    assert coord.log_text().count("agent stream from") == 10
    # Refused streams that said Hello are disconnected nodes now.
    wait_for(lambda: not coord.node("x").connected, 5, what="x disconnected")
    assert coord.node("") is None and coord.node("dup") is None
    good.close()
    assert good.outcome()[0] == grpc.StatusCode.OK


def test_node_without_checks(coord, pb):
    """A web node with nothing configured yet: in the status, no checks."""
    agent_pb2, _ = pb
    s = Stream(coord.connect)
    s.send(hello(agent_pb2, "node-0", checks=()))
    assert s.recv().WhichOneof("body") == "welcome"
    assert [(n.node, n.connected, len(n.checks)) for n in coord.status().nodes] == [
        ("node-0", True, 0)]
    s.close()
    assert s.outcome()[0] == grpc.StatusCode.OK


def test_newer_stream_takes_over(coord, pb):
    agent_pb2, _ = pb
    OK = agent_pb2.CHECK_STATUS_OK
    old = Stream(coord.connect)
    old.send(hello(agent_pb2, "n1", checks=("web",)))
    assert old.recv().WhichOneof("body") == "welcome"
    # The agent reconnects before the old stream is noticed dead.
    new = Stream(coord.connect)
    new.send(hello(agent_pb2, "n1", checks=("web",)), result(agent_pb2, "web", OK, 2),
             beat(agent_pb2, 1))
    assert new.recv().WhichOneof("body") == "welcome"
    coord.got("heartbeat", 1)
    # The old stream is told so at its next message, and its end does
    # not disconnect the node.
    old.send(result(agent_pb2, "web", OK, 1))
    assert old.outcome() == (grpc.StatusCode.ABORTED,
                             "a newer stream of this node replaced this one")
    n = coord.node("n1")
    assert n.connected and n.checks[0].run == 2
    new.close()
    assert new.outcome()[0] == grpc.StatusCode.OK
    wait_for(lambda: not coord.node("n1").connected, 5, what="n1 disconnected")


def test_heartbeats_and_silent_agents(procs, tmp_path, pb):
    agent_pb2, _ = pb
    coord = Coord(procs, tmp_path, pb, heartbeat="200ms", timeout="1s")
    try:
        s = Stream(coord.connect)
        s.send(hello(agent_pb2, "n1", checks=("web",)),
               result(agent_pb2, "web", agent_pb2.CHECK_STATUS_OK, 1))
        w = s.recv()
        assert w.welcome.heartbeat_interval_nano == 200 * 10**6
        # The agent keeps talking; the coordinator, with nothing to say,
        # sends a heartbeat every 200 ms, never an answer to the agent's.
        stop = threading.Event()

        def talk():
            seq = 0
            while not stop.wait(0.1):
                seq += 1
                s.send(beat(agent_pb2, seq))
        t = threading.Thread(target=talk)
        t.start()
        t0 = time.monotonic()
        seqs = []
        for _ in range(4):
            m = s.recv()
            assert m.WhichOneof("body") == "heartbeat"
            seqs.append(m.heartbeat.seq)
        elapsed = time.monotonic() - t0
        assert seqs == [1, 2, 3, 4]
        # 4 heartbeats at 200 ms, give or take a 50 ms tick.
        assert 0.55 < elapsed < 2.5, elapsed
        assert coord.node("n1").connected
        # The agent falls silent (its process hangs): after 1 s the stream
        # is ended and the node shown disconnected, its state kept.
        stop.set()
        t.join()
        t0 = time.monotonic()
        code, details = s.outcome()
        assert code == grpc.StatusCode.UNAVAILABLE
        assert details.startswith("no message from the agent for 1.")
        assert 0.7 < time.monotonic() - t0 < 3
        wait_for(lambda: not coord.node("n1").connected, 5, what="n1 disconnected")
        n = coord.node("n1")
        assert [(c.check, c.run) for c in n.checks] == [("web", 1)]
        # A stream that never says anything is ended the same way.
        q = Stream(coord.connect)
        assert q.outcome()[0] == grpc.StatusCode.UNAVAILABLE
        assert coord.value("troika_coord_agent_stream_errors_total",
                           grpc_code="UNAVAILABLE") == 2
    finally:
        coord.stop()


def test_shutdown_ends_agent_streams_at_once(procs, tmp_path, pb):
    agent_pb2, _ = pb
    coord = Coord(procs, tmp_path, pb)
    s = Stream(coord.connect)
    s.send(hello(agent_pb2, "n1"))
    assert s.recv().WhichOneof("body") == "welcome"
    t0 = time.monotonic()
    watch = coord.watch()
    wait_for(lambda: coord.value("grpc_server_msg_received_total", grpc_type="server_stream",
                                 grpc_service="troika.v1.Admin",
                                 grpc_method="WatchEvents") == 1, 10, what="the watch")
    coord.proc.send_signal(signal.SIGTERM)
    # Not after the 5 s grace: agents turn to other coordinators at once.
    assert s.outcome() == (grpc.StatusCode.UNAVAILABLE, "coordinator shutting down")
    with pytest.raises(grpc.RpcError) as e:
        next(watch)
    assert (e.value.code(), e.value.details()) == (
        grpc.StatusCode.UNAVAILABLE, "coordinator shutting down")
    coord.proc.wait(10)
    assert time.monotonic() - t0 < 3
    coord.stop()


def test_tls(procs, tmp_path, pb):
    agent_pb2, _ = pb
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=coord",
                    "-addext", f"subjectAltName=IP:{NODE1}"],
                   check=True, capture_output=True, timeout=60)
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    coord = Coord(procs, tmp_path, pb, creds=creds,
                  extra=f"tls:\n  cert: {cert}\n  key: {key}\n")
    try:
        s = Stream(coord.connect)
        s.send(hello(agent_pb2, "tls-node"))
        assert s.recv().welcome.coordinator == "coord-1"
        assert coord.node("tls-node").connected
        s.close()
        assert s.outcome()[0] == grpc.StatusCode.OK
        # A client speaking h2c to the TLS port gets nowhere.
        plain = grpc.insecure_channel(coord.target)
        with pytest.raises(grpc.RpcError) as e:
            plain.unary_unary("/troika.v1.Admin/GetStatus")(b"", timeout=3)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        plain.close()
    finally:
        coord.stop()
    # A key that is not there: the coordinator does not start.
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'listen: "{NODE1}:{free_port()}"\n'
                   f"tls:\n  cert: {cert}\n  key: {tmp_path}/none.pem\n")
    r = subprocess.run([COORD, "--config", str(bad)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, r.stderr
    assert "none.pem" in r.stderr


def test_many_agents_at_once_beside_bad_streams(coord, pb):
    """20 agents stream at once while 20 bad streams come and go: every
    result of every agent arrives, each bad stream gets its status."""
    agent_pb2, _ = pb
    OK = agent_pb2.CHECK_STATUS_OK
    nodes, runs = 20, 50
    errors, codes = [], []

    def agent(i):
        try:
            s = Stream(coord.connect)
            s.send(hello(agent_pb2, f"node-{i:02d}", checks=("web",)))
            assert s.recv().WhichOneof("body") == "welcome"
            for r in range(1, runs + 1):
                s.send(result(agent_pb2, "web", OK, r),
                       batch(agent_pb2, [("web_requests_total", {"check": "web"}, r,
                                          agent_pb2.METRIC_TYPE_COUNTER, "Requests.")]))
            s.send(beat(agent_pb2, 1))
            wait_for(lambda: [c.run for c in coord.node(f"node-{i:02d}").checks] == [runs],
                     30, what=f"node-{i:02d} run {runs}")
            s.close()
            assert s.outcome()[0] == grpc.StatusCode.OK
        except Exception as e:  # reported below, with the others
            errors.append(e)

    def bad(i):
        s = Stream(coord.connect_raw)
        s.send(b"\x0f\xff" if i % 2 else b"")
        codes.append(s.outcome()[0])
    threads = [threading.Thread(target=agent, args=(i,)) for i in range(nodes)]
    threads += [threading.Thread(target=bad, args=(i,)) for i in range(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * nodes
    wait_for(lambda: not any(n.connected for n in coord.status().nodes), 10,
             what="every node disconnected")
    st = coord.status()
    assert [n.node for n in st.nodes] == [f"node-{i:02d}" for i in range(nodes)]
    assert all(n.checks[0].run == runs for n in st.nodes)
    text = coord.metrics_text()
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    m = parse_metrics(text)
    assert m[("troika_coord_agent_messages_received_total",
              frozenset({("kind", "check_result")}))] == nodes * runs
    assert m[("troika_coord_agent_messages_received_total",
              frozenset({("kind", "metric_batch")}))] == nodes * runs
    assert m[("troika_coord_agent_messages_received_total",
              frozenset({("kind", "invalid")}))] == nodes
    for i in range(nodes):
        assert m[("web_requests_total", frozenset(
            {("node", f"node-{i:02d}"), ("check", "web")}))] == runs
    assert m[("troika_coord_agent_streams", frozenset())] == 0


def test_watch_events(coord, pb):
    agent_pb2, admin_pb2 = pb
    OK, CRIT = agent_pb2.CHECK_STATUS_OK, agent_pb2.CHECK_STATUS_CRITICAL
    live = coord.watch()
    other = coord.watch(nodes=["node-9"], timeout=2)
    # after_seq 0 means events from when the request arrives on.
    wait_for(lambda: coord.value("grpc_server_msg_received_total", grpc_type="server_stream",
                                 grpc_service="troika.v1.Admin",
                                 grpc_method="WatchEvents") == 2, 10, what="the watches")
    # The coordinator's own events at start (leader, quorum) come first.
    base = int(coord.value("troika_coord_events_total"))
    s = Stream(coord.connect)
    s.send(hello(agent_pb2, "node-1", checks=("db",)))
    assert s.recv().WhichOneof("body") == "welcome"
    s.send(result(agent_pb2, "db", OK, 1, "fine"),
           result(agent_pb2, "db", OK, 2, "fine"),     # no change: no event
           result(agent_pb2, "db", CRIT, 3, "connection refused"))
    s.close()
    assert s.outcome()[0] == grpc.StatusCode.OK
    got = [next(live) for _ in range(4)]
    assert [(e.seq - base, e.kind, e.node, e.check) for e in got] == [
        (1, "node_connected", "node-1", ""), (2, "check_status", "node-1", "db"),
        (3, "check_status", "node-1", "db"), (4, "node_disconnected", "node-1", "")]
    assert [e.severity for e in got] == [
        admin_pb2.SEVERITY_INFO, admin_pb2.SEVERITY_INFO, admin_pb2.SEVERITY_CRITICAL,
        admin_pb2.SEVERITY_WARNING]
    assert got[1].message == "db on node-1: none -> ok: fine"
    assert got[2].message == "db on node-1: ok -> critical: connection refused"
    assert {f.name: f.value for f in got[2].fields} == {
        "from": "ok", "to": "critical", "plugin": "tcp", "evidence": "certain"}
    assert {f.name: f.value for f in got[3].fields} == {"grpc_code": "OK"}
    assert all(e.time_unix_nano > 0 for e in got)
    # Later, from a seq on, only some kinds.
    past = coord.watch(after_seq=base + 1, kinds=["check_status"], timeout=2)
    assert [next(past).seq - base for _ in range(2)] == [2, 3]
    with pytest.raises(grpc.RpcError) as e:
        next(past)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Nothing for a node that said nothing.
    with pytest.raises(grpc.RpcError) as e:
        next(other)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert coord.value("troika_coord_events_total") == base + 4
    # A request that does not parse.
    with pytest.raises(grpc.RpcError) as e:
        next(coord.channel.unary_stream("/troika.v1.Admin/WatchEvents")(b"\x0f", timeout=5))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    live.cancel()



def test_watcher_too_slow_is_cut_off(coord, pb):
    """A watcher that reads nothing holds at most about 64 KiB queued; once
    the ring (1024 events) passed it by, it is told RESOURCE_EXHAUSTED as
    soon as it reads again, so that it resumes from what it saw."""
    agent_pb2, admin_pb2 = pb
    lab = dict(grpc_type="server_stream", grpc_service="troika.v1.Admin",
               grpc_method="WatchEvents")
    c = RawH2(NODE1, coord.grpc_port)
    c.handshake(window=0)  # the coordinator may send it no DATA at all
    c.request(1, "/troika.v1.Admin/WatchEvents",
              grpc_message(admin_pb2.WatchEventsRequest().SerializeToString()))
    wait_for(lambda: coord.value("grpc_server_msg_received_total", **lab) == 1, 10,
             what="the watch")
    base = int(coord.value("troika_coord_events_total"))
    s = Stream(coord.connect)
    s.send(hello(agent_pb2, "flappy", checks=("db",)))
    assert s.recv().WhichOneof("body") == "welcome"
    n = 3000
    for r in range(1, n + 1):
        s.send(result(agent_pb2, "db", agent_pb2.CHECK_STATUS_OK if r % 2
                      else agent_pb2.CHECK_STATUS_CRITICAL, r, "flap"))
    wait_for(lambda: coord.value("troika_coord_events_total") == base + n + 1, 30,
             what="the events")
    assert coord.value("grpc_server_handled_total", grpc_code="RESOURCE_EXHAUSTED",
                       **lab) is None
    # What waits for the watcher is bounded: its queue, not the 3001 events.
    assert 0 < coord.value("troika_grpc_server_buffered_bytes") < 128 * 1024
    # It reads again: what was queued goes out, then the cut-off.
    c.send(frame(0x8, 0, 0, struct.pack(">I", 1 << 30)) +
           frame(0x8, 0, 1, struct.pack(">I", 1 << 30)))
    wait_for(lambda: coord.value("grpc_server_handled_total",
                                 grpc_code="RESOURCE_EXHAUSTED", **lab) == 1, 10,
             what="the cut-off")
    c.close()
    s.close()
    assert s.outcome()[0] == grpc.StatusCode.OK
