"""troikactl against a real troika-coord fed by python3-grpcio agents (the
Coord class and agent helpers of test_coord.py), and against fake Admin
servers written here in python3-grpcio for what a real coordinator will
not do on demand (fixed clocks, error statuses, cut-off watches, invalid
UTF-8), a socket that never answers, and TLS coordinators.

Human output is compared line for line: the expected tables are rendered
here from the expected cells (widths, alignment, no trailing spaces), and
the few cells that depend on the clock are matched by pattern first. JSON
is compared field by field, in order, with a document built here from the
same answer by python's protobuf descriptors."""
import calendar
import json
import os
import pty
import pwd
import re
import select
import signal
import socket
import subprocess
import threading
import time
from concurrent import futures

import grpc
import pytest

from conftest import BUILD_DIR, NODE1, SANITIZED, free_port, wait_for
from grpc_echo import SANITIZER_REPORT
from test_coord import Coord, Stream, hello, pb  # noqa: F401 (pb: fixture)
from test_etcd import ETCD
from test_recovery import cluster_factory  # noqa: F401 (fixture)

CTL = os.path.join(BUILD_DIR, "core", "ctl", "troikactl")
SEC = 10**9


# ---- running troikactl ----

def ctl_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TROIKA_COORDINATOR", "NO_COLOR", "SUDO_USER")}
    env.update(extra or {})
    return env


def check_sanitizers(text):
    for marker in SANITIZER_REPORT:
        assert marker not in text, text


def ctl(*args, env=None, timeout=60):
    """Run troikactl; returns (exit status, stdout, stderr) as text (the
    output must be valid UTF-8 whatever the coordinator sent)."""
    r = subprocess.run([CTL, *args], capture_output=True, timeout=timeout,
                       env=ctl_env(env))
    out, err = r.stdout.decode("utf-8"), r.stderr.decode("utf-8")
    check_sanitizers(err)
    return r.returncode, out, err


class Follow:
    """troikactl events --follow in the background, read line by line."""

    def __init__(self, *args, env=None):
        self.p = subprocess.Popen([CTL, *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=ctl_env(env))
        self.buf = b""

    def line(self, timeout=10):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no line from troikactl; got {self.buf!r}"
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                assert chunk, f"troikactl ended: {self.finish()}"
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8")

    def quiet(self, seconds):
        """Nothing more is printed for this long."""
        r, _, _ = select.select([self.p.stdout], [], [], seconds)
        assert not r and b"\n" not in self.buf, os.read(self.p.stdout.fileno(), 65536)

    def interrupt(self, timeout=5):
        self.p.send_signal(signal.SIGINT)
        return self.finish(timeout)

    def finish(self, timeout=5):
        """(exit status, rest of stdout, stderr)."""
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
            raise AssertionError(f"troikactl did not end: {err!r}")
        check_sanitizers(err.decode())
        return self.p.returncode, (self.buf + out).decode(), err.decode()


# ---- what the output must be ----

def rfc3339(ns, digits=9):
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // SEC))
    return f"{s}.{ns % SEC:09d}"[:20 + digits] + "Z" if digits else s + "Z"


def expected_json(msg):
    """A message as troikactl writes it, from python's descriptors: every
    field in proto order, enums by name, *_unix_nano times with their
    RFC 3339 sibling. Objects are tuples of pairs, so order counts."""
    from google.protobuf.descriptor import FieldDescriptor as F

    def value(f, v):
        if f.type == F.TYPE_MESSAGE:
            return expected_json(v)
        if f.type == F.TYPE_ENUM:
            names = f.enum_type.values_by_number
            return names[v].name if v in names else v
        return v
    out = []
    for f in msg.DESCRIPTOR.fields:
        if f.containing_oneof is not None and \
                msg.WhichOneof(f.containing_oneof.name) != f.name:
            continue
        v = getattr(msg, f.name)
        if f.label == F.LABEL_REPEATED:
            out.append((f.name, [value(f, x) for x in v]))
        elif f.name.endswith("_unix_nano") and f.type in (F.TYPE_FIXED64, F.TYPE_UINT64):
            out.append((f.name, v))
            out.append((f.name[:-len("_unix_nano")], rfc3339(v) if v else None))
        else:
            out.append((f.name, value(f, v)))
    return tuple(out)


def parse_json(text):
    return json.loads(text, object_pairs_hook=tuple)


def without(doc, *keys):
    return tuple((k, v) for k, v in doc if k not in keys)


def table(headers, rows, right=()):
    """A table as troikactl renders it."""
    widths = [max(len(c) for c in col) for col in zip(headers, *rows)]

    def line(cells):
        last = max((i + 1 for i, c in enumerate(cells) if c), default=0)
        out = ""
        for i in range(last):
            fill = " " * (widths[i] - len(cells[i]))
            out += "  " if i else ""
            if i in right:
                out += fill + cells[i]
            else:
                out += cells[i] + (fill if i + 1 < last else "")
        return out + "\n"
    return line(headers) + "".join(line(r) for r in rows)


def cells(line):
    return re.split(r"  +", line.strip())


def event_line(e, pb_mod):
    """An Event as troikactl prints it for people."""
    sev = pb_mod.Severity.Name(e.severity).replace("SEVERITY_", "")
    text = f"{e.seq} {rfc3339(e.time_unix_nano, 3)} {sev:<8} {e.node or '-'} {e.kind}: {e.message}"

    def val(v):
        if v and not re.search(r'[\s"=\\\x7f]', v):
            return v
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    pairs = ([("check", e.check)] if e.check else []) + [(f.name, f.value) for f in e.fields]
    if getattr(e, "coordinator", ""):
        pairs.append(("coordinator", e.coordinator))
    if pairs:
        text += "  " + " ".join(f"{k}={val(v)}" for k, v in pairs)
    return text


# ---- a cluster to look at ----

class Cluster:
    """Three agents: node-1 with an OK, a CRITICAL and a WARNING check,
    node-2 with a check that timed out, node-3 gone after one result."""

    def __init__(self, coord, pb):
        self.coord = coord
        agent_pb2, self.admin_pb2 = pb
        A = agent_pb2
        self.now = time.time_ns()
        start = self.now - (3 * 3600 + 10) * SEC

        def res(check, status, run, message, evidence=A.EVIDENCE_UNSPECIFIED, fields=(),
                timed_out=False):
            return A.AgentMessage(check_result=A.CheckResult(
                check=check, plugin="tcp", status=status, evidence=evidence, message=message,
                duration_nano=1500000, time_unix_nano=self.now - 90 * SEC, run=run,
                timed_out=timed_out, fields=[A.Label(name=k, value=v) for k, v in fields]))
        self.streams = []

        def agent(node, checks, *results):
            s = Stream(coord.connect, timeout=300)
            s.send(hello(A, node, checks=checks, start=start))
            assert s.recv().WhichOneof("body") == "welcome"
            s.send(*results)
            self.streams.append(s)
            wait_for(lambda: (n := coord.node(node)) and
                     [c.run for c in n.checks] == [r.check_result.run for r in results],
                     10, what=f"{node}'s results")
            return s
        agent("node-1", ("web", "db", "cache"),
              res("web", A.CHECK_STATUS_OK, 3, "HTTP 200 in 2 ms"),
              res("db", A.CHECK_STATUS_CRITICAL, 5, "connection refused", A.EVIDENCE_CERTAIN,
                  fields=[("uuid", "6e1c"), ("seqno", "-1")]),
              res("cache", A.CHECK_STATUS_WARNING, 2, "memory 91% used", A.EVIDENCE_AMBIGUOUS))
        agent("node-2", ("web",),
              res("web", A.CHECK_STATUS_UNKNOWN, 1, "timed out after 2s", A.EVIDENCE_AMBIGUOUS,
                  timed_out=True))
        s3 = agent("node-3", ("web",), res("web", A.CHECK_STATUS_OK, 8, "HTTP 200 in 1 ms"))
        s3.close()
        assert s3.outcome()[0] == grpc.StatusCode.OK
        wait_for(lambda: not coord.node("node-3").connected, 10, what="node-3 gone")
        wait_for(lambda: any(e.kind == "node_disconnected" and e.node == "node-3"
                             for e in self.events()),
                 10, what="node-3's node_disconnected event")

    def events(self, after=1, kinds=(), timeout=5):
        """The kept events after `after` (of these kinds), as the
        coordinator's own watch gives them: read up to the last seq it
        counts (troika_coord_events_total)."""
        last = int(self.coord.value("troika_coord_events_total") or 0)
        out = []
        if last > after:
            w = self.coord.watch(after_seq=after, timeout=timeout)
            for e in w:
                out.append(e)
                if e.seq >= last:
                    w.cancel()
                    break
        return [e for e in out if not kinds or e.kind in kinds]

    def close(self):
        for s in self.streams:
            s.close()


@pytest.fixture
def cluster(procs, tmp_path, pb):
    c = Coord(procs, tmp_path, pb)
    k = Cluster(c, pb)
    yield k
    k.close()
    c.stop()


# ---- status ----

def test_status_tables(cluster):
    coord = cluster.coord
    rc, out, err = ctl("--coordinator", coord.target, "status")
    assert (rc, err) == (0, "")
    st = coord.status()
    assert (st.store, st.leader, st.leader_name) == (
        cluster.admin_pb2.STORE_KIND_LOCAL, True, "coord-1")
    head, nodes, checks = out.split("\n\n")
    lines = head.split("\n")
    assert lines[:5] == [
        "coordinator  coord-1, version 0.1.0",
        "store        local, NO QUORUM (local store)",
        f"leader       coord-1 (this coordinator), fencing token {st.fencing_token}",
        "nodes        3, 2 connected",
        "checks       5: 2 ok, 1 warning, 1 critical, 1 unknown",
    ]
    m = re.fullmatch(r"time         (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z", lines[5])
    t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    assert abs(t - time.time()) < 30
    assert len(lines) == 6

    # The clock-dependent cells first, then every cell and column exactly.
    seen = [cells(line)[2] for line in nodes.splitlines()[1:]]
    assert all(re.fullmatch(r"\ds ago", s) for s in seen), seen
    assert nodes + "\n" == table(
        ["NODE", "CONNECTED", "LAST SEEN", "AGENT", "STARTED"],
        [["node-1", "yes", seen[0], "0.1.0", "3h ago"],
         ["node-2", "yes", seen[1], "0.1.0", "3h ago"],
         ["node-3", "NO", seen[2], "0.1.0", "3h ago"]])
    ages = [cells(line)[4] for line in checks.splitlines()[1:]]
    assert all(re.fullmatch(r"1m3\ds", a) for a in ages), ages
    assert checks == table(
        ["NODE", "CHECK", "STATUS", "EVIDENCE", "AGE", "RUNS", "MESSAGE"],
        [["node-1", "web", "OK", "-", ages[0], "3", "HTTP 200 in 2 ms"],
         ["node-1", "db", "CRITICAL", "certain", ages[1], "5", "connection refused"],
         ["node-1", "cache", "WARNING", "ambiguous", ages[2], "2", "memory 91% used"],
         ["node-2", "web", "UNKNOWN (timed out)", "ambiguous", ages[3], "1",
          "timed out after 2s"],
         ["node-3", "web", "OK", "-", ages[4], "8", "HTTP 200 in 1 ms"]], right=(5,))
    assert "\x1b" not in out  # not a terminal: no colour


def test_status_json_every_field(cluster):
    coord = cluster.coord
    rc, out, err = ctl("--coordinator", coord.target, "status", "--json")
    assert (rc, err) == (0, "")
    assert out.endswith("}\n") and out.count("\n") == 1
    got = parse_json(out)
    want = expected_json(coord.status())
    # Every field but the answer's own time, which is per call.
    assert without(got, "time_unix_nano", "time") == without(want, "time_unix_nano", "time")
    d = dict(got)
    assert d["time"] == rfc3339(d["time_unix_nano"])
    assert abs(d["time_unix_nano"] - time.time_ns()) < 30 * SEC
    # The values themselves, as the agents sent them.
    nodes = [dict(n) for n in d["nodes"]]
    assert [(n["node"], n["connected"]) for n in nodes] == [
        ("node-1", True), ("node-2", True), ("node-3", False)]
    db = dict(nodes[0]["checks"][1])
    assert (db["check"], db["status"], db["evidence"], db["run"], db["message"]) == (
        "db", "CHECK_STATUS_CRITICAL", "EVIDENCE_CERTAIN", 5, "connection refused")
    assert [dict(f) for f in db["fields"]] == [
        {"name": "uuid", "value": "6e1c"}, {"name": "seqno", "value": "-1"}]
    assert db["time_unix_nano"] == cluster.now - 90 * SEC
    assert db["time"] == rfc3339(cluster.now - 90 * SEC)
    assert dict(nodes[1]["checks"][0])["timed_out"] is True
    assert (d["store"], d["quorum"], d["leader"], d["leader_name"]) == (
        "STORE_KIND_LOCAL", True, True, "coord-1")


def test_status_of_some_nodes(cluster):
    coord = cluster.coord
    rc, out, err = ctl("--coordinator", coord.target, "--json", "status", "node-3", "node-1")
    assert (rc, err) == (0, "")
    assert [dict(n)["node"] for n in dict(parse_json(out))["nodes"]] == ["node-1", "node-3"]
    # A node the coordinator does not know: what it knows, and exit 1.
    rc, out, err = ctl("--coordinator", coord.target, "status", "node-2", "node-9")
    assert rc == 1
    assert err == "troikactl: coord-1: no node 'node-9'\n"
    assert "nodes        1, 1 connected\n" in out
    assert "\nnode-2  web    UNKNOWN (timed out)" in out


# ---- events ----

def history(cluster, nodes=(), kinds=(), limit=0):
    """ListEvents, oldest first, as troikactl prints it."""
    a = cluster.admin_pb2
    rep = admin_rpc(cluster.coord, "ListEvents", a.ListEventsRequest, a.ListEventsResponse)(
        a.ListEventsRequest(nodes=nodes, kinds=kinds, limit=limit), timeout=5)
    return list(reversed(rep.events))


def listing(cluster, *args, ref):
    """troikactl events ARGS: exit 0, nothing on stderr, and every line as
    expected for the events ref() returns. The coordinator makes events
    of its own (opinions, verdicts) as time passes, so the listing must
    hold at least what was there before it ran, and nothing but what was
    there after."""
    json_out = "--json" in args
    fmt = expected_json if json_out else (lambda e: event_line(e, cluster.admin_pb2))
    before = [fmt(e) for e in ref()]
    rc, out, err = ctl("--coordinator", cluster.coord.target, "events", *args)
    after = [fmt(e) for e in ref()]
    assert (rc, err) == (0, "")
    got = [parse_json(line) if json_out else line for line in out.splitlines()]
    assert got[:len(before)] == before and got == after[:len(got)], (got, before, after)
    return got


def test_events_history(cluster):
    """Without --follow or --after: ListEvents (the coordinator's kept
    events with store local), oldest first."""
    hist = history(cluster)
    # Unlike a watch, the history has the very first event too.
    assert hist[0].seq == 1
    out = listing(cluster, ref=lambda: history(cluster))
    assert len(out) >= 10
    assert [line for line in out if " check_status: " in line] == [
        event_line(e, cluster.admin_pb2) for e in hist if e.kind == "check_status"]
    assert any(re.fullmatch(r"\d+ \S+ CRITICAL node-1 check_status: db on node-1: none -> "
                            r"critical: connection refused  check=db from=none to=critical "
                            r"plugin=tcp evidence=certain( coordinator=coord-1)?", line)
               for line in out), out
    assert any(re.fullmatch(r"\d+ \S+ WARNING  node-3 node_disconnected: node node-3 "
                            r"disconnected \(OK\)  grpc_code=OK( coordinator=coord-1)?", line)
               for line in out), out
    # JSON: one object per line, every field.
    assert len(listing(cluster, "--json", ref=lambda: history(cluster))) >= 10
    # --node and --kind, repeated or comma-separated; --limit: the newest.
    assert len(listing(cluster, "--node", "node-3",
                       ref=lambda: history(cluster, nodes=["node-3"]))) >= 3
    assert len(listing(cluster, "--json", "--node", "node-2,node-3", "--kind", "check_status",
                       ref=lambda: history(cluster, nodes=["node-2", "node-3"],
                                           kinds=["check_status"]))) == 2
    kinds = ["node_connected", "node_disconnected"]
    assert len(listing(cluster, "--kind", kinds[0], "--kind", kinds[1],
                       ref=lambda: history(cluster, kinds=kinds))) == 4
    assert listing(cluster, "--kind", "no_such_kind", ref=lambda: []) == []
    checks = [e for e in hist if e.kind == "check_status"]
    assert listing(cluster, "--limit", "2", "--kind", "check_status",
                   ref=lambda: checks[-2:]) == [event_line(e, cluster.admin_pb2)
                                               for e in checks[-2:]]


def test_events_after(cluster):
    """--after SEQ without --follow: this coordinator's kept events after
    SEQ, through WatchEvents, ended at the coordinator's clock."""
    kept = cluster.events()

    def after(seq, pick=lambda e: True):
        return lambda: [e for e in cluster.events() if e.seq > seq and pick(e)]
    n2 = [e.seq for e in kept if e.kind == "node_connected" and e.node == "node-2"][0]
    t0 = time.monotonic()
    assert len(listing(cluster, "--json", "--after", str(n2), ref=after(n2))) >= 4
    assert time.monotonic() - t0 < 8  # it ended by itself once caught up
    last = kept[-1].seq
    assert listing(cluster, "--after", str(last + 1000), ref=lambda: []) == []
    assert len(listing(cluster, "--after", str(n2), "--node", "node-3",
                       ref=after(n2, lambda e: e.node == "node-3"))) >= 3
    assert listing(cluster, "--after", str(n2), "--node", "node-1", "--kind", "check_status",
                   ref=lambda: []) == []


def test_events_follow(cluster):
    coord, admin_pb2 = cluster.coord, cluster.admin_pb2
    agent_pb2 = __import__("troika.v1.agent_pb2", fromlist=["x"])
    kept = cluster.events(kinds=["check_status"])
    f = Follow("--coordinator", coord.target, "events", "--follow", "--kind", "check_status")
    # The kept events, then whatever happens.
    for e in kept:
        assert f.line() == event_line(e, admin_pb2)
    node1 = cluster.streams[0]
    node1.send(agent_pb2.AgentMessage(check_result=agent_pb2.CheckResult(
        check="db", plugin="tcp", status=agent_pb2.CHECK_STATUS_OK, run=6,
        message="back", time_unix_nano=time.time_ns())))
    line = f.line()
    assert re.fullmatch(r"\d+ \S+ INFO     node-1 check_status: db on node-1: critical -> ok: "
                        r"back  check=db from=critical to=ok plugin=tcp evidence=none"
                        r"( coordinator=coord-1)?", line), line
    assert int(line.split()[0]) > kept[-1].seq
    f.quiet(0.7)
    # Ctrl-C ends it cleanly.
    t0 = time.monotonic()
    assert f.interrupt() == (0, "", "")
    assert time.monotonic() - t0 < 2

    # Only new events (after_seq 0), as JSON, filtered.
    lab = dict(grpc_type="server_stream", grpc_service="troika.v1.Admin",
               grpc_method="WatchEvents")
    before = coord.value("grpc_server_msg_received_total", **lab)
    f = Follow("--coordinator", coord.target, "events", "--follow", "--after", "0",
               "--json", "--node", "node-1", "--kind", "check_status")
    wait_for(lambda: coord.value("grpc_server_msg_received_total", **lab) == before + 1, 10,
             what="the watch")
    f.quiet(0.3)
    cluster.streams[1].send(agent_pb2.AgentMessage(check_result=agent_pb2.CheckResult(
        check="web", plugin="tcp", status=agent_pb2.CHECK_STATUS_OK, run=2)))
    node1.send(agent_pb2.AgentMessage(check_result=agent_pb2.CheckResult(
        check="web", plugin="tcp", status=agent_pb2.CHECK_STATUS_CRITICAL, run=4,
        message="HTTP 500")))
    line = f.line()
    e = dict(parse_json(line))
    assert (e["node"], e["check"], e["kind"], e["severity"], e["message"]) == (
        "node-1", "web", "check_status", "SEVERITY_CRITICAL", "web on node-1: ok -> critical: "
        "HTTP 500")
    # Every field, as the coordinator keeps it.
    assert parse_json(line) == expected_json(cluster.events(after=e["seq"] - 1)[0])
    f.p.send_signal(signal.SIGTERM)
    assert f.finish() == (0, "", "")


def test_events_follow_coordinator_gone(procs, tmp_path, pb):
    coord = Coord(procs, tmp_path, pb)
    f = Follow("--coordinator", coord.target, "events", "--follow", "--kind", "check_status")
    wait_for(lambda: coord.value("grpc_server_msg_received_total", grpc_type="server_stream",
                                 grpc_service="troika.v1.Admin",
                                 grpc_method="WatchEvents") == 1, 10, what="the watch")
    coord.stop()
    rc, out, err = f.finish()
    assert (rc, out) == (1, "")
    assert err == f"troikactl: {coord.target}: UNAVAILABLE: coordinator shutting down\n"


def test_events_after_the_ring_wrapped(procs, tmp_path, pb):
    """An after_seq older than the ring starts from the oldest kept event
    (it used to be cut off naming the same seq to resume from)."""
    A, admin_pb2 = pb
    coord = Coord(procs, tmp_path, pb)
    try:
        s = Stream(coord.connect, timeout=120)
        s.send(hello(A, "flappy", checks=("db",)))
        assert s.recv().WhichOneof("body") == "welcome"
        for run in range(1, 1201):
            s.send(A.AgentMessage(check_result=A.CheckResult(
                check="db", plugin="tcp", run=run, message="flap",
                status=A.CHECK_STATUS_OK if run % 2 else A.CHECK_STATUS_CRITICAL)))
        wait_for(lambda: coord.value("troika_coord_events_total") >= 1201, 30,
                 what="the events")
        s.close()
        # The stream's end is an event too: count once it is in.
        wait_for(lambda: coord.value("troika_coord_nodes", state="disconnected") == 1, 10,
                 what="the node disconnected")
        last = int(coord.value("troika_coord_events_total"))
        rc, out, err = ctl("--coordinator", coord.target, "events", "--json", "--after", "1")
        assert (rc, err) == (0, "")
        seqs = [dict(parse_json(line))["seq"] for line in out.splitlines()]
        # The ring keeps 1024: all of them, oldest first.
        assert seqs[0] == last - 1023 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    finally:
        coord.stop()


def test_stdout_closed(pb, fakes):
    """`troikactl events --follow | head -1`: a closed pipe ends it
    quietly, exit 1."""
    _, admin_pb2 = pb
    go = threading.Event()

    def watch(request, context):
        yield event(admin_pb2, 1).SerializeToString()
        go.wait(10)
        for seq in range(2, 50):
            yield event(admin_pb2, seq).SerializeToString()
        time.sleep(10)
    f = FakeAdmin(admin_pb2, watch=watch)
    fakes.append(f)
    p = subprocess.Popen([CTL, "--coordinator", f.target, "events", "--follow"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctl_env())
    assert p.stdout.readline().startswith(b"1 ")
    p.stdout.close()
    go.set()
    assert p.wait(10) == 1
    err = p.stderr.read().decode()
    check_sanitizers(err)
    assert err == ""


# ---- which coordinator answers ----

def test_coordinator_list(cluster):
    coord = cluster.coord
    dead = f"{NODE1}:{free_port()}"
    refused = f"troikactl: {dead}: UNAVAILABLE: connection lost: Connection refused\n"
    # The first is down: the second answers, the first is named.
    for args, env in ((["--coordinator", f"{dead},{coord.target}"], None),
                      (["--coordinator", dead, "--coordinator", coord.target], None),
                      ([], {"TROIKA_COORDINATOR": f"{dead},{coord.target}"})):
        rc, out, err = ctl(*args, "status", "--json", env=env)
        assert (rc, err) == (0, refused), args
        assert dict(parse_json(out))["coordinator"] == "coord-1"
    # --coordinator wins over the environment.
    rc, out, err = ctl("--coordinator", coord.target, "status", "--json",
                       env={"TROIKA_COORDINATOR": dead})
    assert (rc, err) == (0, "")
    # Events too; and the answering one is kept.
    kept = cluster.events()
    rc, out, err = ctl("--coordinator", f"{dead},{coord.target}", "events", "--after",
                       str(kept[-2].seq))
    assert (rc, err) == (0, refused)
    assert out.startswith(f"{kept[-1].seq} ")


def test_nothing_answers(tmp_path):
    a, b = f"{NODE1}:{free_port()}", f"{NODE1}:{free_port()}"
    rc, out, err = ctl("--coordinator", a, "status")
    assert (rc, out) == (1, "")
    assert err == f"troikactl: {a}: UNAVAILABLE: connection lost: Connection refused\n"
    rc, out, err = ctl("--coordinator", f"{a},{b}", "events", "--follow")
    assert (rc, out) == (1, "")
    assert err == (f"troikactl: {a}: UNAVAILABLE: connection lost: Connection refused\n"
                   f"troikactl: {b}: UNAVAILABLE: connection lost: Connection refused\n"
                   "troikactl: none of the 2 coordinators answered\n")
    # A name that does not resolve.
    rc, out, err = ctl("--coordinator", "no-such-host.invalid:7443", "status")
    assert (rc, out) == (1, "")
    assert err.startswith("troikactl: no-such-host.invalid:7443: UNAVAILABLE: ")


class Silent:
    """Accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((NODE1, 0))
        self.sock.listen(16)
        self.target = f"{NODE1}:{self.sock.getsockname()[1]}"
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_deadline(cluster):
    silent = Silent()
    try:
        t0 = time.monotonic()
        rc, out, err = ctl("--coordinator", silent.target, "--timeout", "1", "status")
        took = time.monotonic() - t0
        assert (rc, out) == (1, "")
        assert err == f"troikactl: {silent.target}: DEADLINE_EXCEEDED: no answer within 1s\n"
        assert 0.9 < took < 3, took
        assert len(silent.conns) == 1
        # A silent one, then one that answers.
        t0 = time.monotonic()
        rc, out, err = ctl("--coordinator", f"{silent.target},{cluster.coord.target}",
                           "--timeout", "500ms", "status", "--json")
        assert rc == 0
        assert err == f"troikactl: {silent.target}: DEADLINE_EXCEEDED: no answer within 500ms\n"
        assert 0.4 < time.monotonic() - t0 < 3
        # Following has no deadline: --timeout bounds the connection.
        rc, out, err = ctl("--coordinator", silent.target, "--timeout", "1", "events",
                           "--follow")
        assert (rc, out) == (1, "")
        assert err == f"troikactl: {silent.target}: UNAVAILABLE: connection lost: " \
            "connect timeout\n"
    finally:
        silent.close()


# ---- usage ----

def test_usage_errors():
    cases = [
        ((), "troikactl: no command given\n"),
        (("backup",), "troikactl: unknown command 'backup'\n"),
        (("maintenance", "on", "node-1"), "troikactl: maintenance on needs --for DURATION\n"),
        (("actions", "ack"), "troikactl: actions ack takes one action id\n"),
        (("status", "--limit", "2"), "troikactl: --limit is an option of actions list and "
                                     "events only\n"),
        (("events", "--follow", "--limit", "2"), "troikactl: --limit lists the history: not "
                                                 "with --follow or --after\n"),
        (("status", "--frobnicate"), "troikactl: unknown option --frobnicate\n"),
        (("status", "--timeout"), "troikactl: option --timeout needs a value\n"),
        (("status", "--timeout", "-1s"), "troikactl: bad --timeout '-1s': expected a "
                                         "duration such as 500ms, 5s or 1m\n"),
        (("status", "--follow"), "troikactl: --follow is an option of events only\n"),
        (("events", "--after", "x"), "troikactl: bad --after 'x': expected a sequence "
                                     "number\n"),
        (("events", "node-1"), "troikactl: events takes no operands (use --node): "
                               "'node-1'\n"),
        (("status", "--tls-cert", "c.pem"), "troikactl: --tls-cert and --tls-key go "
                                            "together\n"),
        (("--coordinator", "a:b", "status"), "troikactl: bad coordinator 'a:b' in "
                                             "--coordinator: expected HOST:PORT\n"),
    ]
    for args, msg in cases:
        rc, out, err = ctl(*args)
        assert (rc, out, err) == (2, "", msg + "try 'troikactl --help'\n"), args
    rc, out, err = ctl("status", env={"TROIKA_COORDINATOR": "host-without:port"})
    assert (rc, out) == (2, "")
    assert err.startswith("troikactl: bad coordinator 'host-without:port' in "
                          "$TROIKA_COORDINATOR")
    rc, out, err = ctl("--help")
    assert (rc, err) == (0, "")
    assert out.startswith("usage: troikactl [options] status [NODE...]\n")
    assert "exit status: 0 ok, 1 " in out
    assert ctl("--version") == (0, "troikactl 0.1.0\n", "")


# ---- fake coordinators ----

class FakeAdmin:
    """troika.v1.Admin in python3-grpcio: status(request, context) returns
    bytes, watch(request, context) yields bytes; requests are recorded."""

    def __init__(self, admin_pb2, status=None, watch=None, ack=None):
        self.requests = []
        self._status, self._watch, self._ack = status, watch, ack
        handlers = {
            "AcknowledgeAction": grpc.unary_unary_rpc_method_handler(
                self.acknowledge,
                request_deserializer=admin_pb2.AcknowledgeActionRequest.FromString,
                response_serializer=lambda b: b),
            "GetStatus": grpc.unary_unary_rpc_method_handler(
                self.get_status, request_deserializer=admin_pb2.GetStatusRequest.FromString,
                response_serializer=lambda b: b),
            "WatchEvents": grpc.unary_stream_rpc_method_handler(
                self.watch_events,
                request_deserializer=admin_pb2.WatchEventsRequest.FromString,
                response_serializer=lambda b: b),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("troika.v1.Admin", handlers),))
        self.port = self.server.add_insecure_port(f"{NODE1}:0")
        self.target = f"{NODE1}:{self.port}"
        self.server.start()

    def get_status(self, request, context):
        self.requests.append(("GetStatus", request))
        return self._status(request, context)

    def acknowledge(self, request, context):
        self.requests.append(("AcknowledgeAction", request))
        return self._ack(request, context)

    def watch_events(self, request, context):
        self.requests.append(("WatchEvents", request))
        yield from self._watch(request, context)

    def stop(self):
        self.server.stop(0)


@pytest.fixture
def fakes():
    made = []
    yield made
    for f in made:
        f.stop()


def status_reply(admin_pb2, **kw):
    base = dict(coordinator="coord-9", version="9.9.9", leader=False, leader_name="coord-7",
                fencing_token=77, store=admin_pb2.STORE_KIND_ETCD, quorum=True,
                time_unix_nano=1700000000 * SEC)
    base.update(kw)
    return admin_pb2.GetStatusResponse(**base)


def test_error_answers(pb, fakes, cluster):
    agent_pb2, admin_pb2 = pb
    real = cluster.coord.target

    def fake(**kw):
        f = FakeAdmin(admin_pb2, **kw)
        fakes.append(f)
        return f

    # An error status is an answer: named, exit 1, no other target tried.
    def refuse(request, context):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "not for you")
    f = fake(status=refuse, watch=refuse)
    rc, out, err = ctl("--coordinator", f"{f.target},{real}", "status")
    assert (rc, out, err) == (1, "", f"troikactl: {f.target}: PERMISSION_DENIED: not for you\n")
    rc, out, err = ctl("--coordinator", f"{f.target},{real}", "events", "--follow")
    assert (rc, out, err) == (1, "", f"troikactl: {f.target}: PERMISSION_DENIED: not for you\n")
    # Without --follow, events first asks GetStatus for the coordinator's clock.
    rc, out, err = ctl("--coordinator", f.target, "events")
    assert (rc, out, err) == (1, "", f"troikactl: {f.target}: PERMISSION_DENIED: not for you\n")
    assert [m for m, _ in f.requests] == ["GetStatus", "WatchEvents", "GetStatus"]
    assert list(f.requests[0][1].nodes) == []
    assert list(f.requests[2][1].nodes) == [""]

    # A server without the Admin service.
    other = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = other.add_insecure_port(f"{NODE1}:0")
    other.start()
    try:
        rc, out, err = ctl("--coordinator", f"{NODE1}:{port}", "status")
        assert (rc, out) == (1, "")
        assert err.startswith(f"troikactl: {NODE1}:{port}: UNIMPLEMENTED: ")
    finally:
        other.stop(0)

    # An answer that does not parse.
    f = fake(status=lambda r, c: b"\xff\xff\xff")
    rc, out, err = ctl("--coordinator", f.target, "status")
    assert (rc, out, err) == (
        1, "", f"troikactl: {f.target}: INTERNAL: cannot parse the coordinator's answer\n")

    # UNAVAILABLE from the server itself means "ask another".
    def unavailable(request, context):
        context.abort(grpc.StatusCode.UNAVAILABLE, "shutting down")
    f = fake(status=unavailable)
    rc, out, err = ctl("--coordinator", f"{f.target},{real}", "status", "--json")
    assert rc == 0
    assert err == f"troikactl: {f.target}: UNAVAILABLE: shutting down\n"
    assert dict(parse_json(out))["coordinator"] == "coord-1"


def test_fixed_answer_foreign_text(pb, fakes):
    """A coordinator on a fixed clock: every byte of the human output, and
    text no terminal should get (escape sequences, invalid UTF-8)."""
    agent_pb2, admin_pb2 = pb
    T = 1700000000 * SEC
    rep = status_reply(admin_pb2, quorum=False, nodes=[admin_pb2.NodeStatus(
        node="node-1", connected=True, last_seen_unix_nano=T - 2 * SEC, agent_version="0.1.0",
        agent_start_time_unix_nano=T - 86400 * 2 * SEC - 3600 * SEC,
        checks=[agent_pb2.CheckResult(
            check="web", plugin="http", status=agent_pb2.CHECK_STATUS_CRITICAL,
            evidence=agent_pb2.EVIDENCE_CERTAIN, message="EVIL\x1b[2J" + "#" * 8,
            time_unix_nano=T - 61 * SEC, run=42,
            fields=[agent_pb2.Label(name="body", value="PLACEHOLDER")])])])
    # Invalid UTF-8 in place of the '#'s and the field value: same length.
    raw = rep.SerializeToString().replace(b"#" * 8, b"\xff\xfe\xc0\xaf\xed\xa0\x80\x80")
    raw = raw.replace(b"PLACEHOLDER", b"bad \xe2\x82 xxxx")
    assert len(raw) == rep.ByteSize()
    f = FakeAdmin(admin_pb2, status=lambda r, c: raw)
    fakes.append(f)
    rc, out, err = ctl("--coordinator", f.target, "status")
    assert (rc, err) == (0, "")
    bad = "\ufffd" * 8
    assert out == (
        "coordinator  coord-9, version 9.9.9\n"
        "store        etcd, NO QUORUM: no action is taken\n"
        "leader       coord-7, fencing token 77\n"
        "nodes        1, 1 connected\n"
        "checks       1: 1 critical\n"
        "time         2023-11-14T22:13:20.000Z\n"
        "\n"
        "NODE    CONNECTED  LAST SEEN  AGENT  STARTED\n"
        "node-1  yes        2s ago     0.1.0  2d1h ago\n"
        "\n"
        "NODE    CHECK  STATUS    EVIDENCE  AGE   RUNS  MESSAGE\n"
        f"node-1  web    CRITICAL  certain   1m1s    42  EVIL\\x1b[2J{bad}\n")
    rc, out, err = ctl("--coordinator", f.target, "status", "--json")
    assert (rc, err) == (0, "")
    check = dict(dict(dict(parse_json(out))["nodes"][0])["checks"][0])
    assert check["message"] == "EVIL\x1b[2J" + bad
    assert "\\u001b[2J" in out and "\x1b" not in out
    assert dict(check["fields"][0])["value"] == "bad \ufffd\ufffd xxxx"


def test_colour_only_on_a_terminal(pb, fakes):
    agent_pb2, admin_pb2 = pb
    rep = status_reply(admin_pb2, store=admin_pb2.STORE_KIND_LOCAL, nodes=[
        admin_pb2.NodeStatus(node="node-1", connected=False, checks=[agent_pb2.CheckResult(
            check="db", status=agent_pb2.CHECK_STATUS_CRITICAL)])])
    f = FakeAdmin(admin_pb2, status=lambda r, c: rep.SerializeToString())
    fakes.append(f)

    def on_tty(*args, env=None):
        master, slave = pty.openpty()
        p = subprocess.Popen([CTL, "--coordinator", f.target, *args], stdout=slave,
                             stderr=subprocess.PIPE, env=ctl_env(env))
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO once the child closed its side
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        assert p.wait(10) == 0
        return out.decode()
    out = on_tty("status")
    assert "store        \x1b[1;31mlocal, NO QUORUM (local store)\x1b[0m" in out
    assert "\x1b[31mCRITICAL\x1b[0m" in out and "\x1b[31mNO\x1b[0m" in out
    for env in ({"NO_COLOR": "1"},):
        assert "\x1b" not in on_tty("status", env=env)
    # An empty NO_COLOR does not count (no-color.org).
    assert "\x1b[" in on_tty("status", env={"NO_COLOR": ""})
    assert "\x1b" not in on_tty("status", "--json")


def event(admin_pb2, seq, t=1700000000 * SEC, **kw):
    return admin_pb2.Event(seq=seq, time_unix_nano=t + seq * SEC, kind="check_status",
                           severity=admin_pb2.SEVERITY_INFO, node="n", message=f"e{seq}", **kw)


def test_events_cut_off_and_resumed(pb, fakes):
    """RESOURCE_EXHAUSTED: resume after the last seq seen, on the same
    coordinator; cut off twice without one event: what is asked for is
    gone, go on with new events (or fail, without --follow)."""
    _, admin_pb2 = pb
    calls = []
    release = threading.Event()

    def watch(request, context):
        calls.append(request.after_seq)
        n = len(calls)
        if n == 1:
            yield event(admin_pb2, 5).SerializeToString()
            yield event(admin_pb2, 6).SerializeToString()
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          "too slow: events were lost; resume with after_seq 6")
        if n in (2, 3):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too slow")
        yield event(admin_pb2, 40).SerializeToString()
        release.wait(20)
    f = FakeAdmin(admin_pb2, watch=watch)
    fakes.append(f)
    fo = Follow("--coordinator", f.target, "events", "--follow", "--after", "4")
    assert [fo.line().split()[0] for _ in range(3)] == ["5", "6", "40"]
    assert calls == [4, 6, 6, 0]
    rc, out, err = fo.interrupt()
    release.set()
    assert (rc, out) == (0, "")
    assert err == (
        f"troikactl: {f.target}: cut off (RESOURCE_EXHAUSTED: too slow: events were lost; "
        "resume with after_seq 6); resuming after seq 6\n"
        f"troikactl: {f.target}: cut off (RESOURCE_EXHAUSTED: too slow); "
        "resuming after seq 6\n"
        f"troikactl: {f.target}: events after seq 6 are no longer kept; going on with new "
        "events\n")

    # Listing, not following: nothing to list is an error.
    calls.clear()
    f2 = FakeAdmin(admin_pb2, status=lambda r, c: status_reply(admin_pb2).SerializeToString(),
                   watch=lambda r, c: (calls.append(r.after_seq),
                                       c.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "gone")))
    fakes.append(f2)
    rc, out, err = ctl("--coordinator", f2.target, "events")
    assert (rc, out) == (1, "")
    assert calls == [1, 1]
    assert err == (f"troikactl: {f2.target}: cut off (RESOURCE_EXHAUSTED: gone); resuming "
                   "after seq 1\n"
                   f"troikactl: {f2.target}: events after seq 1 are no longer kept (gone)\n")


def test_events_listing_ends_at_the_coordinators_clock(pb, fakes):
    """Without --follow, the listing ends at the first event stamped after
    the coordinator's GetStatus time, even while events keep coming."""
    _, admin_pb2 = pb
    T = 1700000000 * SEC
    stop = threading.Event()

    def watch(request, context):
        for seq in (2, 3, 4):
            yield event(admin_pb2, seq, t=T - 10 * SEC, coordinator="coord-3",
                        check="db" if seq == 3 else "").SerializeToString()
        seq = 5
        while not stop.is_set() and context.is_active():
            yield event(admin_pb2, seq, t=T).SerializeToString()  # after T
            seq += 1
            time.sleep(0.05)
    f = FakeAdmin(admin_pb2, status=lambda r, c: status_reply(
        admin_pb2, time_unix_nano=T).SerializeToString(), watch=watch)
    fakes.append(f)
    t0 = time.monotonic()
    rc, out, err = ctl("--coordinator", f.target, "events", "--json")
    assert (rc, err) == (0, "")
    assert [dict(parse_json(line))["seq"] for line in out.splitlines()] == [2, 3, 4]
    assert time.monotonic() - t0 < 3
    # Which coordinator saw it, for people.
    rc, out, err = ctl("--coordinator", f.target, "events")
    stop.set()
    assert (rc, err) == (0, "")
    assert out == ("2 2023-11-14T22:13:12.000Z INFO     n check_status: e2  coordinator=coord-3\n"
                   "3 2023-11-14T22:13:13.000Z INFO     n check_status: e3  check=db "
                   "coordinator=coord-3\n"
                   "4 2023-11-14T22:13:14.000Z INFO     n check_status: e4  coordinator=coord-3\n")


# ---- actions and maintenance ----

def whoami():
    return f"{pwd.getpwuid(os.geteuid()).pw_name}@{socket.gethostname()}"


def admin_rpc(coord, name, req_cls, rep_cls):
    return coord.channel.unary_unary(f"/troika.v1.Admin/{name}",
                                     request_serializer=req_cls.SerializeToString,
                                     response_deserializer=rep_cls.FromString)


def test_actions(procs, tmp_path, pb):
    """A real record: the coordinator restarts a check that failed with
    certain evidence, the agent's answer is INDETERMINATE, the record is
    LOCKED until `troikactl actions ack`."""
    A, admin_pb2 = pb
    coord = Coord(procs, tmp_path, pb)
    t = coord.target
    list_actions = admin_rpc(coord, "ListActions", admin_pb2.ListActionsRequest,
                             admin_pb2.ListActionsResponse)
    try:
        assert ctl("--coordinator", t, "actions") == (0, "no actions\n", "")
        assert ctl("--coordinator", t, "actions", "--json") == (0, '{"actions":[]}\n', "")
        s = Stream(coord.connect, timeout=120)
        s.send(A.AgentMessage(hello=A.Hello(
            node="node-1", version="0.1.0", start_time_unix_nano=1,
            plugins=[A.Plugin(name="tcp", version="1", actions=[A.Action(name="restart")])],
            checks=[A.Check(name="db", plugin="tcp", interval_nano=SEC, actions=["restart"])])))
        assert s.recv().WhichOneof("body") == "welcome"
        for run in (1, 2, 3):
            s.send(A.AgentMessage(check_result=A.CheckResult(
                check="db", plugin="tcp", status=A.CHECK_STATUS_CRITICAL,
                evidence=A.EVIDENCE_CERTAIN, message="refused", run=run,
                time_unix_nano=time.time_ns())))
        cmd = s.recv().command
        assert (cmd.check, cmd.action) == ("db", "restart")
        for outcome, msg in ((A.COMMAND_OUTCOME_ACCEPTED, ""),
                             (A.COMMAND_OUTCOME_INDETERMINATE, "timed out half-way")):
            s.send(A.AgentMessage(command_result=A.CommandResult(
                id=cmd.id, outcome=outcome, message=msg, fencing_token=cmd.fencing_token,
                duration_nano=2500000000, time_unix_nano=time.time_ns())))
        wait_for(lambda: [a.state for a in list_actions(admin_pb2.ListActionsRequest()).actions]
                 == [admin_pb2.ACTION_STATE_LOCKED], 10, what="the LOCKED record")
        rec = list_actions(admin_pb2.ListActionsRequest()).actions[0]

        rc, out, err = ctl("--coordinator", t, "actions")
        assert (rc, err) == (0, "")
        assert out == table(
            ["ID", "STARTED", "NODE", "CHECK", "ACTION", "ATTEMPT", "STATE", "TOKEN", "TOOK",
             "MESSAGE"],
            [[cmd.id, rfc3339(rec.started_unix_nano, 0), "node-1", "db", "restart", "1",
              "LOCKED", str(cmd.fencing_token), "2.5s", "timed out half-way"]],
            right=(5, 7)) + (
            "\n1 LOCKED: no recovery of its check starts until an operator has looked and "
            "run 'troikactl actions ack ID'\n")
        rc, out, err = ctl("--coordinator", t, "actions", "--json")
        assert (rc, err) == (0, "")
        assert parse_json(out) == expected_json(list_actions(admin_pb2.ListActionsRequest()))
        assert dict(dict(parse_json(out))["actions"][0])["reason"].startswith(
            "1 coordinators (quorum 1): ")
        assert ctl("--coordinator", t, "actions", "node-2") == (0, "no actions\n", "")
        rc, out, err = ctl("--coordinator", t, "actions", "--limit", "1", "node-1", "--json")
        assert len(dict(parse_json(out))["actions"]) == 1

        # Acknowledged by someone; then it is no longer LOCKED.
        rc, out, err = ctl("--coordinator", t, "actions", "ack", cmd.id, "--by", "alice")
        assert (rc, err) == (0, "")
        assert out.startswith(f"action {cmd.id} acknowledged by alice\n\nID  ")
        assert re.search(r"  restart +1  ACKNOWLEDGED +\d+  2\.5s  timed out half-way\n$", out)
        rec = list_actions(admin_pb2.ListActionsRequest()).actions[0]
        assert (rec.state, rec.acknowledged_by) == (admin_pb2.ACTION_STATE_ACKNOWLEDGED, "alice")
        assert ctl("--coordinator", t, "actions", "ack", cmd.id) == (
            1, "", f"troikactl: {t}: FAILED_PRECONDITION: only a LOCKED record can be "
                   "acknowledged\n")
        assert ctl("--coordinator", t, "actions", "ack", "nope") == (
            1, "", f"troikactl: {t}: NOT_FOUND: no such action record\n")
        s.close()
    finally:
        coord.stop()


def test_ack_goes_to_the_leader(pb, fakes):
    _, admin_pb2 = pb
    dead = f"{NODE1}:{free_port()}"

    def acked(request, context):
        return admin_pb2.AcknowledgeActionResponse(action=admin_pb2.ActionRecord(
            id=request.id, node="node-1", check="db", action="restart",
            state=admin_pb2.ACTION_STATE_ACKNOWLEDGED, acknowledged_by=request.by,
            fencing_token=3, attempt=1)).SerializeToString()
    follower = FakeAdmin(admin_pb2, status=lambda r, c: status_reply(
        admin_pb2, leader=False, leader_name="coord-2").SerializeToString(), ack=acked)
    leader = FakeAdmin(admin_pb2, status=lambda r, c: status_reply(
        admin_pb2, coordinator="coord-2", leader=True, leader_name="coord-2").SerializeToString(),
        ack=acked)
    fakes.extend((follower, leader))
    rc, out, err = ctl("--coordinator", f"{dead},{follower.target},{leader.target}",
                       "actions", "ack", "a-1", "--json")
    assert rc == 0
    assert err == f"troikactl: {dead}: UNAVAILABLE: connection lost: Connection refused\n"
    rec = dict(dict(parse_json(out))["action"])
    assert (rec["id"], rec["state"], rec["acknowledged_by"]) == (
        "a-1", "ACTION_STATE_ACKNOWLEDGED", whoami())
    assert [m for m, _ in follower.requests] == ["GetStatus"]
    assert [m for m, _ in leader.requests] == ["GetStatus", "AcknowledgeAction"]
    assert list(leader.requests[0][1].nodes) == [""]
    assert (leader.requests[1][1].id, leader.requests[1][1].by) == ("a-1", whoami())
    # Nobody asked leads: say whom they name.
    rc, out, err = ctl("--coordinator", f"{follower.target},{dead}", "actions", "ack", "a-1")
    assert (rc, out) == (1, "")
    assert err == (f"troikactl: {dead}: UNAVAILABLE: connection lost: Connection refused\n"
                   "troikactl: none of the coordinators asked leads; they name coord-2: add "
                   "it with --coordinator\n")
    assert [m for m, _ in follower.requests] == ["GetStatus", "GetStatus"]


def test_maintenance(procs, tmp_path, pb):
    _, admin_pb2 = pb
    coord = Coord(procs, tmp_path, pb)
    t = coord.target
    heads = ["MAINTENANCE", "UNTIL", "LEFT", "BY", "REASON"]
    try:
        assert ctl("--coordinator", t, "maintenance") == (0, "no maintenance\n", "")
        assert ctl("--coordinator", t, "maintenance", "--json") == (
            0, '{"maintenance":[]}\n', "")
        t0 = time.time_ns()
        rc, out, err = ctl("--coordinator", t, "maintenance", "on", "node-1", "db", "--for", "30m",
                           "--reason", "disk swap", "--by", "alice")
        assert (rc, err) == (0, "")
        m = coord.status().maintenance
        assert [(x.node, x.check, x.reason, x.by) for x in m] == [
            ("node-1", "db", "disk swap", "alice")]
        assert t0 + 1800 * SEC <= m[0].until_unix_nano <= time.time_ns() + 1800 * SEC
        left = cells(out.splitlines()[3])[2]
        assert left in ("30m", "29m59s"), out
        assert out == "maintenance started for node-1/db\n\n" + table(
            heads, [["node-1/db", rfc3339(m[0].until_unix_nano, 0), left, "alice",
                     "disk swap"]])
        # The whole cluster, by whoever runs troikactl.
        rc, out, err = ctl("--coordinator", t, "maintenance", "on", "--for", "2h")
        assert (rc, err) == (0, "")
        assert out.startswith("maintenance started for cluster\n\n")
        m = coord.status().maintenance
        assert [(x.node, x.check, x.by) for x in m] == [("node-1", "db", "alice"), ("", "", whoami())]
        rc, out, err = ctl("--coordinator", t, "maintenance", "--json")
        assert (rc, err) == (0, "")
        assert parse_json(out) == expected_json(admin_pb2.SetMaintenanceResponse(maintenance=m))
        rc, out, err = ctl("--coordinator", t, "status")
        assert "\nmaintenance  2 in force: nothing automated happens there\n" in out
        assert re.search(r"\n\nMAINTENANCE  UNTIL  +LEFT  +BY  +REASON\n"
                         r"node-1/db    \S+  +\S+  +alice  +disk swap\n"
                         r"cluster      \S+  +\S+  +\S+\n\n", out), out
        # A check needs its node: the coordinator says so.
        assert ctl("--coordinator", t, "maintenance", "on", "--for", "1m", "--", "", "db") == (
            1, "", f"troikactl: {t}: INVALID_ARGUMENT: a check's maintenance needs its node\n")
        rc, out, err = ctl("--coordinator", t, "maintenance", "off", "node-1", "db")
        assert (rc, err) == (0, "")
        assert out.startswith("maintenance ended for node-1/db\n\nMAINTENANCE  ")
        assert out.endswith(f"  {whoami()}\n") and out.count("\n") == 4
        assert ctl("--coordinator", t, "maintenance", "off") == (
            0, "maintenance ended for cluster\n\nno maintenance\n", "")
        # Every change is an event.
        rc, out, err = ctl("--coordinator", t, "events", "--kind", "maintenance_on,maintenance_off")
        assert (rc, err) == (0, "")
        assert [line.split()[3:5] for line in out.splitlines()] == [
            ["node-1", "maintenance_on:"], ["-", "maintenance_on:"],
            ["node-1", "maintenance_off:"], ["-", "maintenance_off:"]]
    finally:
        coord.stop()


def test_events_listing_without_a_clock(pb, fakes):
    """A coordinator whose GetStatus has no time: the listing ends on the
    quiet alone."""
    _, admin_pb2 = pb
    release = threading.Event()

    def watch(request, context):
        for seq in (2, 3):
            yield event(admin_pb2, seq).SerializeToString()
        release.wait(10)
    f = FakeAdmin(admin_pb2, status=lambda r, c: status_reply(
        admin_pb2, time_unix_nano=0).SerializeToString(), watch=watch)
    fakes.append(f)
    t0 = time.monotonic()
    rc, out, err = ctl("--coordinator", f.target, "events")
    release.set()
    assert (rc, err) == (0, "")
    assert [line.split()[0] for line in out.splitlines()] == ["2", "3"]
    assert 0.5 <= time.monotonic() - t0 < 3


# ---- three coordinators on etcd ----

@pytest.mark.skipif(not os.path.exists(ETCD), reason="etcd-server is not installed")
def test_three_coordinators(cluster_factory, pb):
    """The cluster of test_recovery.py (etcd, coordinator and agent on each
    of 127.0.1.1-3): any coordinator answers status, `actions ack` finds
    the leader behind the followers, maintenance set through one is seen
    by all, and without etcd quorum status says why and writes fail
    everywhere."""
    _, admin_pb2 = pb
    c = cluster_factory()
    leader, token = c.leader()
    followers = [n for n in (1, 2, 3) if n != leader]
    every = ",".join(c.coord_target(n) for n in followers + [leader])

    rc, out, err = ctl("--coordinator", every, "status")
    assert (rc, err) == (0, "")
    assert out.splitlines()[:4] == [
        f"coordinator  coord-{followers[0]}, version 0.1.0",
        "store        etcd, quorum",
        f"leader       coord-{leader}, fencing token {token}",
        "nodes        3, 3 connected"]
    d = dict(parse_json(ctl("--coordinator", c.coord_target(leader), "status", "--json")[1]))
    assert (d["store"], d["quorum"], d["leader"], d["leader_name"], d["fencing_token"]) == (
        "STORE_KIND_ETCD", True, True, f"coord-{leader}", token)

    # The followers are asked first; the leader answers the acknowledgement.
    assert ctl("--coordinator", every, "actions", "ack", "no-such-id") == (
        1, "", f"troikactl: {c.coord_target(leader)}: NOT_FOUND: no such action record\n")
    assert ctl("--coordinator", c.coord_target(followers[0]), "actions", "ack", "x") == (
        1, "", f"troikactl: none of the coordinators asked leads; they name coord-{leader}: "
               "add it with --coordinator\n")

    # Maintenance through a follower, seen by every coordinator.
    rc, out, err = ctl("--coordinator", c.coord_target(followers[0]), "maintenance", "on",
                       "node-2", "--for", "10m", "--reason", "troikactl test")
    assert (rc, err) == (0, "")
    for n in (1, 2, 3):
        wait_for(lambda: [(m.node, m.reason) for m in c.status(n).maintenance] == [
            ("node-2", "troikactl test")], 10, what=f"coord-{n} seeing the maintenance")
    rc, out, err = ctl("--coordinator", c.coord_target(followers[1]), "maintenance", "--json")
    assert [dict(m)["node"] for m in dict(parse_json(out))["maintenance"]] == ["node-2"]
    assert ctl("--coordinator", c.coord_target(leader), "maintenance", "off", "node-2") == (
        0, "maintenance ended for node-2\n\nno maintenance\n", "")
    # The history is the cluster's: any coordinator shows who did what.
    def history_lines():
        rc, out, err = ctl("--coordinator", c.coord_target(followers[1]), "events", "--kind",
                           "maintenance_on,maintenance_off")
        assert (rc, err) == (0, "")
        return out.splitlines()
    lines = wait_for(lambda: len(history_lines()) == 2 and history_lines(), 10,
                     what="both maintenance events in the history")
    assert re.fullmatch(r"\d+ \S+ INFO     node-2 maintenance_on: maintenance started for "
                        r"node-2: troikactl test  until_unix_nano=\d+ "
                        rf"coordinator=coord-{followers[0]}", lines[0]), lines
    assert re.fullmatch(r"\d+ \S+ INFO     node-2 maintenance_off: maintenance ended for "
                        rf"node-2  coordinator=coord-{leader}", lines[1]), lines

    # Two etcd members gone: no quorum anywhere, and status says why.
    for n in (1, 2):
        c.etcd.kill(n)
    reason = wait_for(lambda: not (s := c.status(3)).quorum and s.quorum_reason, 30,
                      what="coord-3 without quorum")
    rc, out, err = ctl("--coordinator", c.coord_target(3), "status")
    assert (rc, err) == (0, "")
    m = re.search(r"^store        etcd, NO QUORUM: no action is taken \((.+)\)$", out, re.M)
    assert m and m.group(1), out
    print(f"coord-3: {reason}; troikactl: {m.group(1)}")
    all3 = ",".join(c.coord_target(n) for n in (1, 2, 3))
    rc, out, err = ctl("--coordinator", all3, "maintenance", "on", "--for", "1m")
    assert (rc, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 4, err
    for n, line in zip((1, 2, 3), lines):
        assert line.startswith(f"troikactl: {c.coord_target(n)}: UNAVAILABLE: "), err
    assert lines[3:] == ["troikactl: none of the 3 coordinators answered"]


# ---- TLS ----

def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def test_tls(procs, tmp_path, pb):
    d = tmp_path
    # A CA that signs the coordinator's and a client's certificate.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"),
            "-out", str(d / "ca.pem"), "-days", "1", "-subj", "/CN=troika-ca")
    for name, ext in (("coord", f"subjectAltName=IP:{NODE1}"), ("client", "")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{name}.key"),
                "-out", str(d / f"{name}.csr"), "-subj", f"/CN={name}")
        extfile = d / f"{name}.ext"
        extfile.write_text(ext + "\n")
        openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "1",
                "-out", str(d / f"{name}.pem"), "-extfile", str(extfile))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "other.key"),
            "-out", str(d / "other.pem"), "-days", "1", "-subj", "/CN=other")
    ca, other = str(d / "ca.pem"), str(d / "other.pem")
    cert, key = str(d / "client.pem"), str(d / "client.key")

    (d / "tls").mkdir()
    coord = Coord(procs, d / "tls", pb, creds=grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.pem").read_bytes()),
        extra=f"tls:\n  cert: {d}/coord.pem\n  key: {d}/coord.key\n")
    try:
        t = coord.target
        rc, out, err = ctl("--coordinator", t, "--tls-ca", ca, "status", "--json")
        assert (rc, err) == (0, "")
        assert dict(parse_json(out))["coordinator"] == "coord-1"
        rc, out, err = ctl("--coordinator", t, "--tls-ca", ca, "events", "--after", "0")
        assert (rc, out, err) == (0, "", "")
        # A CA that did not sign it.
        rc, out, err = ctl("--coordinator", t, "--tls-ca", other, "status")
        assert (rc, out) == (1, "")
        assert re.fullmatch(rf"troikactl: {t}: UNAVAILABLE: connection lost: TLS: .*"
                            r"certificate verify failed\n", err), err
        # h2c to a TLS port.
        rc, out, err = ctl("--coordinator", t, "--timeout", "2", "status")
        assert (rc, out) == (1, "")
        assert err.startswith(f"troikactl: {t}: UNAVAILABLE: connection lost: ")
        # A CA file that is not there: TLS cannot be set up at all.
        rc, out, err = ctl("--coordinator", t, "--tls-ca", str(d / "none.pem"), "status")
        assert (rc, out) == (1, "")
        assert "none.pem" in err and err.endswith("troikactl: cannot set up TLS\n")
    finally:
        coord.stop()

    # Mutual TLS: the coordinator wants a client certificate from its CA.
    (d / "mtls").mkdir()
    coord = Coord(procs, d / "mtls", pb, creds=grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.pem").read_bytes()),
        extra=f"tls:\n  cert: {d}/coord.pem\n  key: {d}/coord.key\n  ca: {ca}\n")
    try:
        t = coord.target
        rc, out, err = ctl("--coordinator", t, "--tls-ca", ca, "--tls-cert", cert,
                           "--tls-key", key, "status", "--json")
        assert (rc, err) == (0, "")
        assert dict(parse_json(out))["coordinator"] == "coord-1"
        rc, out, err = ctl("--coordinator", t, "--tls-ca", ca, "status")
        assert (rc, out) == (1, "")
        assert err.startswith(f"troikactl: {t}: UNAVAILABLE: connection lost: ")
        rc, out, err = ctl("--coordinator", t, "--tls-ca", ca, "--tls-cert", other,
                           "--tls-key", key, "status")
        assert (rc, out) == (1, "")
        assert "client.key" in err and err.endswith("troikactl: cannot set up TLS\n")
    finally:
        coord.stop()


# ---- memory ----

@pytest.mark.skipif(SANITIZED, reason="valgrind does not run ASan binaries")
def test_valgrind(cluster):
    t = cluster.coord.target
    dead = f"{NODE1}:{free_port()}"
    vg = ["valgrind", "--leak-check=full", "--error-exitcode=99", "--quiet", CTL]
    for args, want in ((["--coordinator", t, "status"], 0),
                       (["--coordinator", t, "status", "--json", "node-1", "node-9"], 1),
                       (["--coordinator", f"{dead},{t}", "events"], 0),
                       (["--coordinator", dead, "events", "--follow"], 1),
                       (["--coordinator", t, "actions", "--json"], 0),
                       (["--coordinator", t, "maintenance", "on", "node-2", "--for", "1m"], 0),
                       (["--coordinator", t, "maintenance", "off", "node-2"], 0),
                       (["--coordinator", t, "actions", "ack", "nope"], 1),
                       (["status", "--bogus"], 2)):
        r = subprocess.run(vg + args, capture_output=True, timeout=120, env=ctl_env())
        assert r.returncode == want, (args, r.stderr.decode())
        assert b"==" not in r.stderr, r.stderr.decode()
