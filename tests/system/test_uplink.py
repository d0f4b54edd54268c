"""The agent's streams to its coordinators (core/agent/agent_uplink.c).

Against troika-coord: the node and every check's latest state arrive, the
samples are re-exported with the node label, and a coordinator restarted
while the agent runs 500 checks has every check's latest state again
within seconds; the only loss is metric samples, dropped oldest-first
beyond max_queued_samples and counted the same on both sides.

Against a coordinator written with python3-grpcio (Google's gRPC core,
not our code): Hello's content, Welcome's heartbeat taking effect, every
command outcome (fencing token, deadline, unknown check/action, bad
arguments, failure, a repeated id answered without running twice), a new
Hello after SIGHUP, and a silent coordinator left and reconnected to.
"""
import os
import queue
import signal
import socket
import threading
import time
import urllib.request
from concurrent import futures

import grpc
import pytest

from conftest import BUILD_DIR, NODE1, free_port, parse_metrics, wait_for
from grpc_echo import SANITIZER_REPORT, generate_modules
from test_grpc_client import make_certs

COORD = os.path.join(BUILD_DIR, "core", "coord", "troika-coord")


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    _, agent_pb2, admin_pb2 = generate_modules(tmp_path_factory.mktemp("pb"))
    return agent_pb2, admin_pb2


class Listener:
    """A TCP listener that accepts and closes, for tcp checks; close() makes
    its checks see 'connection refused'."""

    def __init__(self, host=NODE1):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(4096)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class CoordProc:
    """troika-coord on fixed ports, so that a restart comes back where the
    agent looks for it."""

    def __init__(self, procs, workdir, pb, heartbeat="1s", extra="", creds=None):
        self.procs = procs
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.target = f"{NODE1}:{self.grpc_port}"
        self.conf = workdir / "coord.yaml"
        self.conf.write_text(
            f"node: {{name: coord-t}}\nlisten: \"{self.target}\"\n"
            f"metrics: {{listen: \"{NODE1}:{self.http_port}\"}}\n"
            f"agents: {{heartbeat: {heartbeat}}}\nlog: {{level: debug}}\n" + extra)
        self.log = workdir / "coord.log"
        self.proc = None
        agent_pb2, admin_pb2 = pb
        self.admin_pb2 = admin_pb2
        self.channel = (grpc.secure_channel(self.target, creds) if creds
                        else grpc.insecure_channel(self.target))
        self.status_rpc = self.channel.unary_unary(
            "/troika.v1.Admin/GetStatus",
            request_serializer=admin_pb2.GetStatusRequest.SerializeToString,
            response_deserializer=admin_pb2.GetStatusResponse.FromString)

    def start(self):
        self.proc = self.procs.start([COORD, "--config", str(self.conf)], self.log)
        wait_for(self.healthy, 10, what="troika-coord /healthz")

    def healthy(self):
        assert self.proc.poll() is None, f"troika-coord exited:\n{self.log_text()}"
        try:
            with urllib.request.urlopen(f"http://{NODE1}:{self.http_port}/healthz",
                                        timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self):
        with urllib.request.urlopen(f"http://{NODE1}:{self.http_port}/metrics",
                                    timeout=5) as r:
            return parse_metrics(r.read().decode())

    def node(self, name):
        r = self.status_rpc(self.admin_pb2.GetStatusRequest(nodes=[name]), timeout=5)
        return r.nodes[0] if r.nodes else None

    def stop(self):
        rc = self.procs.stop(self.proc, timeout=30)
        log = self.log_text()
        for marker in SANITIZER_REPORT:
            assert marker not in log, log[log.index(marker) - 200:][:4000]
        assert rc == 0, f"troika-coord exited {rc}:\n{log[-4000:]}"

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def coordinators_yaml(*targets, **opts):
    text = "coordinators:\n  targets:\n" + "".join(f'    - "{t}"\n' for t in targets)
    return text + "".join(f"  {k}: {v}\n" for k, v in opts.items())


def tcp_checks(prefix, n, port, interval):
    return "".join(f"  - {{name: {prefix}-{i}, plugin: tcp, host: {NODE1}, "
                   f"port: {port}, interval: {interval}, timeout: {interval}}}\n"
                   for i in range(n))


def statuses(node):
    """{check: (status name, run)} of a GetStatus node."""
    return {c.check: (c.status, c.run) for c in node.checks}


def test_reports_to_troika_coord(agent, procs, tmp_path, pb):
    agent_pb2, _ = pb
    coord = CoordProc(procs, tmp_path, pb)
    coord.start()
    up = Listener()
    checks = tcp_checks("up", 3, up.port, "500ms")
    checks += (f"  - {{name: down, plugin: tcp, host: {NODE1}, port: {free_port()}, "
               f"interval: 500ms, timeout: 500ms}}\n")
    checks += ("  - name: act\n    plugin: actor\n    interval: 1s\n"
               "    service: {manager: exec, restart: [/bin/true]}\n")
    agent.write(checks, extra=coordinators_yaml(coord.target, heartbeat="1s"))
    agent.start()

    def arrived():
        n = coord.node("test-node")
        if n is None or not n.connected:
            return None
        s = statuses(n)
        if len(s) != 5 or any(run == 0 for _, run in s.values()):
            return None
        return n
    node = wait_for(arrived, 10, what="the node and 5 checks at the coordinator")
    s = statuses(node)
    for i in range(3):
        assert s[f"up-{i}"][0] == agent_pb2.CHECK_STATUS_OK
    assert s["down"][0] == agent_pb2.CHECK_STATUS_CRITICAL
    # The agent's own view agrees (0 OK, 2 CRITICAL there).
    assert agent.status("up-0") == 0 and agent.status("down") == 2
    by_name = {c.check: c for c in node.checks}
    assert by_name["down"].evidence == agent_pb2.EVIDENCE_CERTAIN
    assert by_name["down"].plugin == "tcp" and "refused" in by_name["down"].message
    assert node.agent_version == "0.1.0"

    # Samples, re-exported with node, check and plugin labels.
    def sample():
        return coord.metrics().get(("troika_tcp_connect_seconds", frozenset(
            {"node": "test-node", "check": "up-1", "plugin": "tcp"}.items())))
    wait_for(lambda: sample() is not None, 10, what="a re-exported sample")
    assert agent.value("troika_agent_coordinator_connected",
                       coordinator=coord.target) == 1
    assert agent.value("troika_agent_coordinator_streams_total",
                       coordinator=coord.target) == 1
    sent = agent.value("troika_agent_coordinator_results_sent_total",
                       coordinator=coord.target)
    assert sent >= 5
    up.close()
    coord.stop()
    # The agent notices and says so; it keeps checking.
    wait_for(lambda: agent.value("troika_agent_coordinator_connected",
                                 coordinator=coord.target) == 0, 10,
             what="the agent noticing the coordinator left")
    assert agent.proc.poll() is None


def test_coordinator_restart_under_load(agent, procs, tmp_path, pb):
    """500 checks every 500 ms to 1 s; the coordinator is stopped, the
    state of 300 checks changes while it is away, and it is started again:
    within seconds it has every check's latest state, and the samples the
    agent dropped (queue of 1,000) are the ones both sides count."""
    agent_pb2, _ = pb
    coord = CoordProc(procs, tmp_path, pb)
    coord.start()
    steady, flip = Listener(), Listener()
    checks = tcp_checks("steady", 200, steady.port, "500ms")
    checks += tcp_checks("flip", 300, flip.port, "1s")
    agent.write(checks, extra=coordinators_yaml(coord.target, heartbeat="1s",
                                                max_queued_samples=1000))
    agent.start()

    def all_at(status):
        n = coord.node("test-node")
        if n is None or not n.connected:
            return False
        s = statuses(n)
        return (len(s) == 500 and
                all(s[f"flip-{i}"][0] == status for i in range(300)) and
                all(s[f"steady-{i}"][0] == agent_pb2.CHECK_STATUS_OK for i in range(200)))
    wait_for(lambda: all_at(agent_pb2.CHECK_STATUS_OK), 20, what="500 checks OK")

    coord.stop()
    flip.close()
    # While it is away: 300 checks turn CRITICAL, 200 keep producing
    # samples (400 a second) into a queue of 1,000.
    def agent_sees_flip_fail():
        m = agent.metrics()
        return all(m.get(("troika_check_status", frozenset(
            {"check": f"flip-{i}", "plugin": "tcp"}.items()))) == 2 for i in range(300))
    wait_for(agent_sees_flip_fail, 10, what="the agent seeing the flip checks fail")
    time.sleep(4)
    dropped_before = agent.value("troika_agent_coordinator_samples_dropped_total",
                                 coordinator=coord.target)
    assert dropped_before > 0
    assert agent.value("troika_agent_coordinator_queued_samples",
                       coordinator=coord.target) <= 1000

    t0 = time.monotonic()
    coord.start()
    wait_for(lambda: all_at(agent_pb2.CHECK_STATUS_CRITICAL), 15,
             what="every check's latest state at the restarted coordinator")
    took = time.monotonic() - t0
    print(f"coordinator restart: every check's latest state after {took:.2f} s")
    assert took < 10

    # Nothing else lost: what the agent dropped is what the coordinator
    # was told it dropped (the count rides on the next batch).
    def counted():
        dropped = agent.value("troika_agent_coordinator_samples_dropped_total",
                              coordinator=coord.target)
        told = coord.metrics().get(("troika_coord_agent_dropped_samples_total",
                                    frozenset({"node": "test-node"}.items())))
        return dropped if told == dropped else None
    dropped = wait_for(counted, 10, what="the coordinator told of every dropped sample")
    print(f"samples dropped while the coordinator was away: {dropped:.0f}")
    assert agent.value("troika_agent_coordinator_streams_total",
                       coordinator=coord.target) == 2
    steady.close()
    coord.stop()


def test_mutual_tls(agent, procs, tmp_path, pb):
    """The agent's certificate signed by the cluster CA gets it in; a CA
    that did not sign the coordinator's certificate keeps it out."""
    make_certs(tmp_path)
    creds = grpc.ssl_channel_credentials(
        root_certificates=(tmp_path / "ca.crt").read_bytes(),
        private_key=(tmp_path / "client.key").read_bytes(),
        certificate_chain=(tmp_path / "client.crt").read_bytes())
    coord = CoordProc(procs, tmp_path, pb, creds=creds, extra=(
        f"tls:\n  cert: {tmp_path}/server.crt\n  key: {tmp_path}/server.key\n"
        f"  ca: {tmp_path}/ca.crt\n"))
    coord.start()
    checks = "  - {name: act, plugin: actor, interval: 500ms}\n"
    agent.write(checks, extra=coordinators_yaml(coord.target) + (
        "  tls:\n    ca: ca.crt\n    cert: client.crt\n    key: client.key\n"))
    agent.start()
    wait_for(lambda: (n := coord.node("test-node")) is not None and n.connected and
             len(n.checks) == 1 and n.checks[0].run > 0, 10,
             what="the agent in over mutual TLS")
    assert agent.value("troika_agent_coordinator_connected", coordinator=coord.target) == 1
    procs.stop(agent.proc)

    # The wrong CA: the agent refuses the coordinator, and says why.
    agent.write(checks, extra=coordinators_yaml(coord.target) + (
        "  tls:\n    ca: other-ca.crt\n    cert: client.crt\n    key: client.key\n"))
    agent.start()
    wait_for(lambda: "certificate verify failed" in agent.log_text(), 10,
             what="the agent refusing the coordinator's certificate")
    assert agent.value("troika_agent_coordinator_connected", coordinator=coord.target) == 0
    assert not coord.node("test-node").connected
    coord.stop()


class PyCoordinator:
    """A coordinator in python3-grpcio: records what the agent sends and
    lets the test script the replies."""

    def __init__(self, pb, heartbeat_ns=0, token=5):
        self.agent_pb2 = pb[0]
        self.heartbeat_ns = heartbeat_ns
        self.token = token
        self.received = queue.Queue()
        self.streams = []          # one queue of replies per stream
        self.stream_count = 0
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.stream_stream_rpc_method_handler(
            self._connect, request_deserializer=self.agent_pb2.AgentMessage.FromString,
            response_serializer=self.agent_pb2.CoordinatorMessage.SerializeToString)
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("troika.v1.Agent", {"Connect": handler}),))
        self.port = self.server.add_insecure_port(f"{NODE1}:0")
        self.server.start()
        self.target = f"{NODE1}:{self.port}"

    def _connect(self, requests, context):
        replies = queue.Queue()
        with self.lock:
            self.streams.append(replies)
            self.stream_count += 1
            stream = self.stream_count

        def reader():
            try:
                for m in requests:
                    self.received.put((stream, m))
            except grpc.RpcError:
                pass
            replies.put(None)
        threading.Thread(target=reader, daemon=True).start()
        while True:
            m = replies.get()
            if m is None:
                return
            yield m

    def send(self, msg, stream=None):
        with self.lock:
            q = self.streams[(stream or self.stream_count) - 1]
        q.put(msg)

    def welcome(self, stream=None):
        self.send(self.agent_pb2.CoordinatorMessage(welcome=self.agent_pb2.Welcome(
            coordinator="py", version="test", heartbeat_interval_nano=self.heartbeat_ns,
            fencing_token=self.token)), stream)

    def command(self, id, check, action, *args, token=None, deadline=0, stream=None):
        self.send(self.agent_pb2.CoordinatorMessage(command=self.agent_pb2.Command(
            id=id, fencing_token=self.token if token is None else token, check=check,
            action=action, args=list(args), deadline_unix_nano=deadline,
            coordinator="py")), stream)

    def next(self, kind, timeout=10, where=None):
        """The next message of a kind (others are skipped), with its stream."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} within {timeout} s")
            try:
                stream, m = self.received.get(timeout=left)
            except queue.Empty:
                continue
            if m.WhichOneof("body") == kind and (where is None or where(getattr(m, kind))):
                return stream, getattr(m, kind)

    def stop(self):
        self.server.stop(0)


def seen(py, checks, timeout=10):
    """Wait until a result of every one of checks arrived."""
    got = set()
    end = time.monotonic() + timeout
    while got != checks:
        got.add(py.next("check_result", timeout=max(0.1, end - time.monotonic()))[1].check)
    return got


def test_python_coordinator(agent, pb):
    agent_pb2, _ = pb
    py = PyCoordinator(pb, heartbeat_ns=200_000_000, token=5)
    try:
        checks = ("  - name: act\n    plugin: actor\n    interval: 1s\n"
                  "  - name: act2\n    plugin: actor\n    interval: 1s\n")
        # The agent's own heartbeat is 5s: Welcome's 200 ms must win.
        uplink = coordinators_yaml(py.target, heartbeat="5s", timeout="6s")
        agent.write(checks, extra=uplink)
        agent.start()
        stream, hello = py.next("hello")
        assert hello.node == "test-node"
        assert [c.name for c in hello.checks] == ["act", "act2"]
        assert list(hello.checks[0].actions) == ["echo", "fail", "slow"]
        assert hello.checks[0].interval_nano == 10**9
        actor = [p for p in hello.plugins if p.name == "actor"][0]
        assert [a.name for a in actor.actions] == ["echo", "fail", "slow"]
        assert actor.actions[0].max_args == 3
        assert hello.start_time_unix_nano > 0 and hello.fencing_token == 0
        # Nothing but the Hello before the Welcome.
        time.sleep(1.5)
        assert py.received.empty()
        py.welcome()
        seen(py, {"act", "act2"})

        # Heartbeats every 200 ms on an otherwise silent stream.
        t0 = time.monotonic()
        _, hb1 = py.next("heartbeat")
        _, hb2 = py.next("heartbeat")
        assert hb2.seq == hb1.seq + 1
        assert time.monotonic() - t0 < 2

        outcome = agent_pb2.CommandOutcome

        def answer(id, want, **kw):
            _, r = py.next("command_result", where=lambda r: r.id == id, **kw)
            assert outcome.Name(r.outcome) == want, (r.message, outcome.Name(r.outcome))
            return r

        py.command("c1", "act", "echo", "x", "y")
        answer("c1", "COMMAND_OUTCOME_ACCEPTED")
        r = answer("c1", "COMMAND_OUTCOME_SUCCEEDED")
        assert {f.name: f.value for f in r.fields} == {"arg0": "x", "arg1": "y"}
        assert r.fencing_token == 5
        # A repeated id: the kept answer, no second run.
        py.command("c1", "act", "echo", "x", "y")
        r2 = answer("c1", "COMMAND_OUTCOME_SUCCEEDED")
        assert r2.time_unix_nano == r.time_unix_nano
        py.command("c2", "act", "echo", token=4)
        r = answer("c2", "COMMAND_OUTCOME_REJECTED_STALE_TOKEN")
        assert "lower than 5" in r.message
        py.command("c3", "nosuch", "echo", token=7)
        answer("c3", "COMMAND_OUTCOME_REJECTED_UNKNOWN_CHECK")
        assert agent.value("troika_agent_fencing_token") == 7
        py.command("c4", "act", "echo", token=6)
        answer("c4", "COMMAND_OUTCOME_REJECTED_STALE_TOKEN")
        py.command("c5", "act", "echo", token=7, deadline=time.time_ns() - 10**9)
        answer("c5", "COMMAND_OUTCOME_REJECTED_EXPIRED")
        py.command("c6", "act", "explode", token=7)
        answer("c6", "COMMAND_OUTCOME_REJECTED_UNKNOWN_ACTION")
        py.command("c7", "act", "echo", "1", "2", "3", "4", token=7)
        answer("c7", "COMMAND_OUTCOME_REJECTED_INVALID_ARGUMENTS")
        py.command("c8", "act2", "fail", token=7)
        answer("c8", "COMMAND_OUTCOME_ACCEPTED")
        answer("c8", "COMMAND_OUTCOME_FAILED")
        last_command = time.monotonic()
        m = agent.metrics()
        for name, n in (("succeeded", 1), ("failed", 1), ("accepted", 2),
                        ("rejected_stale_token", 2), ("rejected_expired", 1)):
            assert m[("troika_agent_commands_total",
                      frozenset({"outcome": name}.items()))] == n, name

        # SIGHUP with a check more: a new Hello on the same stream, then
        # every check's latest result again.
        agent.write(checks + "  - name: act3\n    plugin: actor\n    interval: 1s\n",
                    extra=uplink)
        agent.proc.send_signal(signal.SIGHUP)
        s2, hello2 = py.next("hello")
        assert s2 == stream and [c.name for c in hello2.checks] == ["act", "act2", "act3"]
        assert hello2.fencing_token == 7
        assert hello2.start_time_unix_nano == hello.start_time_unix_nano
        seen(py, {"act", "act2", "act3"})

        # A coordinator that goes silent (no heartbeat, nothing) is left
        # after the timeout (the agent's 6 s: three of Welcome's 200 ms
        # heartbeats would be less, and the configured floor wins), and
        # reconnected to after the backoff (about 1 s).
        _, hello3 = py.next("hello", timeout=30)
        waited = time.monotonic() - last_command
        assert 5.5 < waited < 12, waited
        assert agent.value("troika_agent_coordinator_silences_total",
                           coordinator=py.target) == 1
        assert hello3.start_time_unix_nano == hello.start_time_unix_nano
        py.welcome()
        seen(py, {"act", "act2", "act3"})
    finally:
        py.stop()
