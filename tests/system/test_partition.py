"""Network partitions between the three emulated nodes (issue 5): etcd, a
troika-coord, a troika-agent and a real Redis on each of 127.0.1.1-3
(cluster.py), with every process of node N in cgroup tk/nN.

Partitions on loopback (TESTENV.md section 6): every connection a node's
process opens to 127.0.1.0/24 leaves from its own address (SNAT by cgroup,
chain TK-SNAT) and is marked as ours (a conntrack mark bit, chain TK-MARK),
and a cut drops our connections by their conntrack tuple in INPUT (chain
TK-IN), both directions at once, including those already open. Servers
other tests run on 127.0.1.x at the same time (Galera and Redis bind their
own source addresses) carry no mark and are never cut; nor is the harness,
which talks from 127.0.0.1 in the root cgroup. Rules, chains and cgroups
are this file's own and are removed when a test ends, passed or not; those
a killed run left (a session that ended mid-test) are removed before a
test starts.

Every test asserts the exact history: the action records on every
coordinator, the events each coordinator kept, the commands the agents
ran, and the opinions left in etcd.

Needs root (iptables, cgroup2). Ports 2379/2380 on 127.0.1.1-3 are fixed
(etcd): the etcd port lock is held for the whole test.
"""
import base64
import collections
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from cluster import DEFAULT_POLICY, ETCD_LOCK, IPS, Cluster
from conftest import SANITIZED, wait_for
from grpc_echo import generate_modules
from test_etcd import ETCD

IPTABLES = shutil.which("iptables") or "/usr/sbin/iptables"
SNAT_CHAIN = "TK-SNAT"
MARK_CHAIN = "TK-MARK"
CUT_CHAIN = "TK-IN"
# The conntrack mark bit of our nodes' connections (only cuts match it).
MARK = "0x100000"
CGROUP = "tk"
PREFIX = "/troika-test"
SLOW = 3 if SANITIZED else 1
# A node whose agent's stream is gone this long is down (after the 3 s the
# coordinator takes to notice a silent stream: three 1 s heartbeats).
NODE_DOWN_AFTER = 4
POLICY = f"  nodes: {{down_after: {NODE_DOWN_AFTER}s}}\n" + DEFAULT_POLICY


def cgroup2_root():
    """Where the cgroup2 hierarchy is mounted (hybrid hosts: .../unified)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            if parts[sep + 1] == "cgroup2":
                return parts[4]
    return None


def why_not():
    if os.geteuid() != 0:
        return "partition tests need root (iptables, cgroups)"
    if not os.path.exists(ETCD):
        return "etcd-server is not installed"
    if not os.path.exists(IPTABLES):
        return "iptables is not installed"
    root = cgroup2_root()
    if root is None or not os.access(root, os.W_OK):
        return "no writable cgroup2 hierarchy"
    return None


pytestmark = pytest.mark.skipif(why_not() is not None, reason=str(why_not()))


def cgroup_pids(d):
    with open(os.path.join(d, "cgroup.procs")) as f:
        return [int(p) for p in f.read().split()]


def cgroup_kill(d):
    """SIGKILL every process in cgroup d by its PID, and wait until it is
    empty. Returns the PIDs it found."""
    left = cgroup_pids(d)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: cgroup_pids(d) == [], 10, interval=0.1, what=f"{d} empty")
    return left


class Net:
    """The cgroups tk/n1-3, the SNAT that gives each node's connections its
    own source address, and the cuts. Only what this object created is
    ever removed."""

    def __init__(self):
        self.cg = os.path.join(cgroup2_root(), CGROUP)
        self.undo = []      # iptables argv lists, run in reverse order
        self.cgroups = []   # directories made, removed in reverse order

    def ipt(self, *args, check=True):
        r = subprocess.run([IPTABLES, "-w", *args], capture_output=True, text=True,
                           timeout=30)
        if check:
            assert r.returncode == 0, f"iptables {' '.join(args)}: {r.stderr}"
        return r

    def remove_leftovers(self):
        """Remove the chains and cgroups a run of this file left when it was
        killed before its cleanup (a session that ended mid-test). The
        caller holds the etcd port lock, and nothing makes these chains or
        cgroups without it, so what exists now belongs to no live run.
        Returns what was removed, for the log."""
        removed = []
        for table, hook, chain in (("nat", "POSTROUTING", SNAT_CHAIN),
                                   ("mangle", "OUTPUT", MARK_CHAIN),
                                   ("filter", "INPUT", CUT_CHAIN)):
            if self.ipt("-t", table, "-n", "-L", chain, check=False).returncode != 0:
                continue
            while self.ipt("-t", table, "-D", hook, "-j", chain, check=False).returncode == 0:
                pass
            self.ipt("-t", table, "-F", chain)
            self.ipt("-t", table, "-X", chain)
            removed.append(f"iptables {table}/{chain}")
        if os.path.exists(self.cg):
            for d in [self.node_cgroup(n) for n in (1, 2, 3)] + [self.cg]:
                if not os.path.exists(d):
                    continue
                cgroup_kill(d)
                os.rmdir(d)
                removed.append(f"cgroup {d}")
        return removed

    def setup(self):
        removed = self.remove_leftovers()
        if removed:
            print(f"removed what a killed run left: {', '.join(removed)}")
        os.mkdir(self.cg)
        self.cgroups.append(self.cg)
        for n in (1, 2, 3):
            os.mkdir(self.node_cgroup(n))
            self.cgroups.append(self.node_cgroup(n))
        self.ipt("-t", "nat", "-N", SNAT_CHAIN)
        self.undo.append(["-t", "nat", "-X", SNAT_CHAIN])
        self.undo.append(["-t", "nat", "-F", SNAT_CHAIN])
        for n in (1, 2, 3):
            self.ipt("-t", "nat", "-A", SNAT_CHAIN, "-d", "127.0.1.0/24", "-m", "cgroup",
                     "--path", f"{CGROUP}/n{n}", "-j", "SNAT", "--to-source", IPS[n])
        self.ipt("-t", "nat", "-I", "POSTROUTING", "-j", SNAT_CHAIN)
        self.undo.append(["-t", "nat", "-D", "POSTROUTING", "-j", SNAT_CHAIN])
        self.ipt("-t", "mangle", "-N", MARK_CHAIN)
        self.undo.append(["-t", "mangle", "-X", MARK_CHAIN])
        self.undo.append(["-t", "mangle", "-F", MARK_CHAIN])
        for n in (1, 2, 3):
            self.ipt("-t", "mangle", "-A", MARK_CHAIN, "-d", "127.0.1.0/24", "-m", "cgroup",
                     "--path", f"{CGROUP}/n{n}", "-j", "CONNMARK", "--or-mark", MARK)
        self.ipt("-t", "mangle", "-I", "OUTPUT", "-j", MARK_CHAIN)
        self.undo.append(["-t", "mangle", "-D", "OUTPUT", "-j", MARK_CHAIN])
        self.ipt("-N", CUT_CHAIN)
        self.undo.append(["-X", CUT_CHAIN])
        self.undo.append(["-F", CUT_CHAIN])
        self.ipt("-I", "INPUT", "-j", CUT_CHAIN)
        self.undo.append(["-D", "INPUT", "-j", CUT_CHAIN])

    def node_cgroup(self, n):
        return os.path.join(self.cg, f"n{n}")

    def wrap(self, n, argv):
        """argv started inside node n's cgroup: the shell joins it, then
        execs (same PID, so the harness still stops it by PID), and every
        socket it opens belongs to the cgroup."""
        procs = os.path.join(self.node_cgroup(n), "cgroup.procs")
        return ["/bin/sh", "-c", 'echo $$ > "$1" || exit 111; shift; exec "$@"',
                f"tk-n{n}", procs, *argv]

    def cut_one_way(self, a, b, port=None):
        """Drop the connections node a dials to node b (to b's port, or to
        any), in both directions of their traffic."""
        rule = ["-A", CUT_CHAIN]
        if port is not None:
            rule += ["-p", "tcp"]
        rule += ["-m", "connmark", "--mark", f"{MARK}/{MARK}",
                 "-m", "conntrack", "--ctorigdst", IPS[b], "--ctrepldst", IPS[a]]
        if port is not None:
            rule += ["--ctorigdstport", str(port)]
        self.ipt(*rule, "-j", "DROP")

    def cut(self, a, b):
        self.cut_one_way(a, b)
        self.cut_one_way(b, a)

    def isolate(self, n):
        """Cut node n from the two others; returns the monotonic time."""
        for m in (1, 2, 3):
            if m != n:
                self.cut(n, m)
        return time.monotonic()

    def heal(self):
        self.ipt("-F", CUT_CHAIN)
        return time.monotonic()

    def rules(self):
        return self.ipt("-S", CUT_CHAIN).stdout

    def teardown(self):
        errors = []
        for args in reversed(self.undo):
            r = self.ipt(*args, check=False)
            if r.returncode != 0:
                errors.append(f"iptables {' '.join(args)}: {r.stderr.strip()}")
        self.undo = []
        for d in reversed(self.cgroups):
            try:
                # Only processes this test started ever join these cgroups;
                # give them time to go, then end what is left by its PID.
                try:
                    wait_for(lambda: cgroup_pids(d) == [], 10, interval=0.1,
                             what=f"{d} empty")
                except AssertionError:
                    left = cgroup_kill(d)
                    errors.append(f"{d}: processes still in it: {left}; killed")
                os.rmdir(d)
            except OSError as e:
                errors.append(f"rmdir {d}: {e}")
        self.cgroups = []
        assert not errors, errors


PROBE = """
import socket, sys
s = socket.socket()
if sys.argv[1] != "-":
    s.bind((sys.argv[1], 0))
s.settimeout(1)
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
except OSError:
    sys.exit(1)
"""


def connects(argv_prefix, src, dst, port):
    """Whether a TCP connect from src (an address to bind, or "-") to
    dst:port succeeds within a second, run as argv_prefix + python."""
    r = subprocess.run(argv_prefix + ["/usr/bin/python3", "-c", PROBE, src, dst, str(port)],
                       timeout=30)
    return r.returncode == 0


class PartitionCluster(Cluster):
    def __init__(self, procs, run, pb, net, **kw):
        self.net = net
        super().__init__(procs, run, pb, **kw)

    def wrap(self, n, argv):
        return self.net.wrap(n, argv)


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    _, agent_pb2, admin_pb2 = generate_modules(tmp_path_factory.mktemp("pb"))
    return agent_pb2, admin_pb2


@pytest.fixture
def cluster(procs, tmp_path, pb):
    """A started PartitionCluster; at the end, healed and stopped (its
    logs checked), then rules, chains and cgroups removed."""
    with open(ETCD_LOCK, "w") as lock:
        # etcd's fixed ports: one cluster on this machine at a time.
        fcntl.flock(lock, fcntl.LOCK_EX)
        net = Net()
        made = []
        try:
            net.setup()

            def make(**kw):
                c = PartitionCluster(procs, tmp_path, pb, net, policy=POLICY, **kw)
                made.append(c)
                c.start()
                return c
            yield make
            net.heal()
            for c in made:
                c.stop()
        finally:
            try:
                procs.stop_all()
                for c in made:
                    c.stop_services()
            finally:
                net.teardown()


# ---- what the coordinators say ------------------------------------------

def metric(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


def metric_sum(m, name):
    return sum(v for (n, _), v in m.items() if n == name)


def last_seq(c, n):
    evs = c.events(n)
    return evs[-1].seq if evs else 0


def history(c, n, after):
    """Coordinator n's events after seq `after`, as (kind, node, check)."""
    return [(e.kind, e.node, e.check) for e in c.events(n, after=after) if e.seq > after]


def field(ev, name):
    for f in ev.fields:
        if f.name == name:
            return f.value
    return None


def etcd_opinions(c, via):
    """{(coord, node, check)} of the FAILED opinions in etcd, read through
    member `via` (the harness is never cut)."""
    start = f"{PREFIX}/opinions/".encode()
    end = start[:-1] + bytes([start[-1] + 1])
    req = urllib.request.Request(
        f"http://{IPS[via]}:2379/v3/kv/range", method="POST",
        data=json.dumps({"key": base64.b64encode(start).decode(),
                         "range_end": base64.b64encode(end).decode()}).encode())
    with urllib.request.urlopen(req, timeout=5) as r:
        kvs = json.loads(r.read()).get("kvs", [])
    out = set()
    for kv in kvs:
        key = base64.b64decode(kv["key"]).decode()[len(start):]
        out.add(tuple(key.split("/")))
    return out


def etcd_opinions_when_ready(c, via):
    """etcd_opinions, or None while member `via` answers 503: it has no
    leader yet (seen 0.7 s after a heal, when the cut-off member was the
    etcd leader before the cut), so a wait asks again."""
    try:
        return etcd_opinions(c, via)
    except urllib.error.HTTPError as e:
        if e.code != 503:
            raise
        return None


def etcd_history(c, via, since_ns):
    """The recovery history kept in etcd, as coordinator `via` mirrors it
    (Admin/ListEvents), oldest first, since a wall-clock time:
    (coordinator, kind, node, check) each."""
    a = c.admin_pb2
    evs = c.rpc(via, "ListEvents", a.ListEventsRequest(limit=1000),
                a.ListEventsResponse).events
    return [(e.coordinator, e.kind, e.node, e.check) for e in reversed(evs)
            if e.time_unix_nano > since_ns]


# The kinds coord_history.c keeps in etcd.
HISTORY_KINDS = {
    "opinion", "verdict", "action_started", "action_accepted", "action_done",
    "action_locked", "action_acknowledged", "recovery_held", "recovery_escalated",
    "leader_changed", "quorum_lost", "quorum_regained", "maintenance_on",
    "maintenance_off", "tilt", "tilt_ended", "node_lost", "node_returned",
    "cluster_held", "primary_changed",
}


def check_history(c, hist, since_ns, complete):
    """The recovery history in etcd, the same through every coordinator:
    for each coordinator in `complete`, exactly the events of the kept kinds
    it emitted (hist: its WatchEvents), in order; for the others, some of
    them and nothing else. Returns {coordinator: the events it lost}."""
    wait_for(lambda: all(etcd_history(c, n, since_ns) == etcd_history(c, 1, since_ns)
                         for n in (2, 3)), 10 * SLOW,
             what="every coordinator mirroring the same history")
    kept = etcd_history(c, 1, since_ns)
    lost = {}
    for n in (1, 2, 3):
        me = f"coord-{n}"
        mine = [(me, k, nd, ck) for k, nd, ck in hist[n] if k in HISTORY_KINDS]
        in_etcd = [e for e in kept if e[0] == me]
        if n in complete:
            assert in_etcd == mine, (n, in_etcd, mine)
        else:
            assert not collections.Counter(in_etcd) - collections.Counter(mine), \
                (n, in_etcd, mine)
        lost[n] = list((collections.Counter(mine) - collections.Counter(in_etcd)).elements())
    return lost


def commands_run(c, n):
    return metric_sum(c.agent_metrics(n), "troika_agent_commands_total")


def settled_all(c):
    """Every coordinator has quorum, sees the same leader and every node
    connected with its checks OK, and holds no FAILED opinion."""
    if not c.settled():
        return False
    names = {c.status(n).leader_name for n in (1, 2, 3)}
    if len(names) != 1:
        return False
    return all(metric(c.coord_metrics(n), "troika_coord_opinions", state="failed") == 0
               for n in (1, 2, 3))


def move_coord_leader_off(c, node):
    """Restart coordinator `node` while it leads, so another one leads."""
    while c.leader()[0] == node:
        c.kill_coord(node, signal.SIGTERM)
        wait_for(lambda: c.leader(among=[m for m in (1, 2, 3) if m != node]), 20 * SLOW,
                 what="another coordinator leading")
        c.start_coord(node)
        wait_for(lambda: settled_all(c), 30 * SLOW, what="the cluster settled again")


def move_etcd_leader(c, to):
    """etcd's Raft leadership to member `to`."""
    lead = c.etcd.leader()
    if lead == to:
        return
    member = int(c.etcd.status(to)["header"]["member_id"])
    c.etcd.etcdctl("move-leader", format(member, "x"), ns=(lead,))
    wait_for(lambda: c.etcd.leader() == to, 10 * SLOW, what=f"etcd leader moved to n{to}")


def move_etcd_leader_off(c, node):
    """etcd's Raft leader on another node than `node`, so the majority side
    needs no election when `node` is cut off."""
    if c.etcd.leader() == node:
        move_etcd_leader(c, 1 if node != 1 else 2)


# ---- 1. node 2 isolated --------------------------------------------------

@pytest.mark.parametrize("etcd_leader", ["elsewhere", "on-node-2"])
def test_isolated_node_is_down_for_the_majority_and_its_coordinator_never_acts(
        cluster, pb, etcd_leader):
    """Node 2 (its etcd member, coordinator, agent and Redis) cut from nodes
    1 and 3. The isolated coordinator loses quorum, says why, and does not
    act even on a failure it sees alone (node 2's Redis, killed meanwhile).
    The majority finds node 2 down: a verdict on the node, held as node_down,
    no per-service action. Healed, every opinion clears; nothing acted.
    With etcd's Raft leader on node 2 the majority must elect another
    first: its coordinators may lose their leases meanwhile (3 s here), and
    the leader may change; nothing else may differ."""
    c = cluster()
    move_coord_leader_off(c, 2)
    if etcd_leader == "elsewhere":
        move_etcd_leader_off(c, 2)
    else:
        move_etcd_leader(c, 2)
    calm = etcd_leader == "elsewhere"
    leader, token = c.leader()
    majority = (1, 3)
    base = {n: last_seq(c, n) for n in (1, 2, 3)}

    t0 = c.net.isolate(2)
    t0_wall = time.time()
    # The cut: node 2's processes and nodes 1 and 3's no longer reach each
    # other (etcd's client port here), both ways; nodes 1 and 3 still do.
    # Anyone else's, even from a node's address, and the harness still do.
    for a, b, ok in ((2, 1, False), (1, 2, False), (3, 2, False), (2, 3, False),
                     (1, 3, True), (3, 1, True)):
        assert connects(c.net.wrap(a, []), "-", IPS[b], 2379) == ok, (a, b, ok)
    assert connects([], IPS[2], IPS[1], 2379)
    assert connects([], "-", IPS[2], 2379)

    def coord2_without_quorum():
        s = c.status(2)
        return s if not s.quorum and s.quorum_reason else None
    s = wait_for(coord2_without_quorum, 20 * SLOW, what="coord-2 without quorum")
    lost = [e for e in c.events(2, after=base[2]) if e.kind == "quorum_lost"]
    t_noquorum = lost[0].time_unix_nano / 1e9 - t0_wall
    assert not s.leader and "etcd" in s.quorum_reason
    print(f"coord-2 without quorum {t_noquorum:.2f} s after the cut: {s.quorum_reason!r}")
    m = c.coord_metrics(2)
    assert metric(m, "troika_coord_quorum") == 0
    if not calm:
        wait_for(lambda: c.etcd.leader() in majority, 20 * SLOW, what="a new etcd leader")
        print(f"new etcd leader n{c.etcd.leader()} {time.monotonic() - t0:.2f} s "
              f"after the cut")

    # A failure only the isolated coordinator sees: it must not act on it.
    c.kill_redis(2)
    wait_for(lambda: metric(c.coord_metrics(2), "troika_coord_opinions", state="failed") >= 1,
             20 * SLOW, what="coord-2's own opinion: redis on node-2 FAILED")

    def verdict():
        for n in majority:
            evs = [e for e in c.events(n, after=base[n])
                   if e.kind == "verdict" and e.node == "node-2"]
            if evs:
                return n, evs[0]
        return None
    by, ev = wait_for(verdict, 30 * SLOW, what="the majority's verdict on node-2")
    t_verdict = ev.time_unix_nano / 1e9 - t0_wall
    print(f"verdict on node-2 by coord-{by} {t_verdict:.2f} s after the cut "
          f"(stream timeout 3 s + down_after {NODE_DOWN_AFTER} s): {ev.message}")
    assert ev.check == ""
    # Each majority coordinator: node 2 FAILED down_after after its stream
    # ended, not before.
    for n in majority:
        evs = [e for e in c.events(n, after=base[n]) if e.node == "node-2" and not e.check]
        gone = [e for e in evs if e.kind == "node_disconnected"][0]
        failed = [e for e in evs if e.kind == "opinion" and field(e, "opinion") == "failed"][0]
        took = (failed.time_unix_nano - gone.time_unix_nano) / 1e9
        print(f"coord-{n}: node-2's stream ended {(gone.time_unix_nano / 1e9 - t0_wall):.2f} s "
              f"after the cut, FAILED {took:.2f} s later: {failed.message}")
        # (The two times come from different clocks: a few ms either way.)
        assert NODE_DOWN_AFTER - 0.05 <= took < NODE_DOWN_AFTER + 0.5 * SLOW, (n, took)
    assert sorted(field(ev, "opinions").split(",")) == ["coord-1", "coord-3"]
    if calm:
        assert by == leader
    for n in majority:
        st = c.status(n)
        assert st.quorum and st.leader_name == f"coord-{by}"
        node2 = [x for x in st.nodes if x.node == "node-2"][0]
        assert not node2.connected
    assert etcd_opinions(c, by) == {(f"coord-{n}", "node-2", "@node") for n in majority}

    # Nothing happens for a while: no record, no command, anywhere.
    time.sleep(4 * SLOW)
    for n in (1, 2, 3):
        assert c.actions(n) == [], n
        assert commands_run(c, n) == 0, n
        m = c.coord_metrics(n)
        assert metric(m, "troika_coord_actions_started_total") == 0
        assert metric(m, "troika_coord_record_write_failures_total") == 0
    assert not c.status(2).quorum
    assert not c.redis_ping(2)
    assert metric(c.coord_metrics(by), "troika_coord_recovery_held_total",
                  reason="node_down") == 1

    # Redis back by hand (in node 2's cgroup), then heal.
    c.start_redis(2)
    wait_for(lambda: metric(c.coord_metrics(2), "troika_coord_opinions",
                            state="failed") == 2,
             20 * SLOW, what="coord-2: only nodes 1 and 3 still FAILED")
    t1 = c.net.heal()
    wait_for(lambda: settled_all(c), 40 * SLOW, what="healed: quorum, one leader, "
             "every node connected everywhere, no FAILED opinion")
    print(f"healed: every coordinator with quorum and no opinion after "
          f"{time.monotonic() - t1:.2f} s")
    wait_for(lambda: etcd_opinions_when_ready(c, 2) == set(), 10 * SLOW,
             what="no opinion left in etcd")
    if calm:
        assert c.leader() == (leader, token)
    assert c.leader()[0] != 2
    time.sleep(2)

    # The exact history.
    for n in (1, 2, 3):
        assert c.actions(n) == [], n
        assert commands_run(c, n) == 0, n
    hist = {n: history(c, n, base[n]) for n in (1, 2, 3)}
    for n in (1, 2, 3):
        print(f"coord-{n}: {hist[n]}")
    # The history in etcd: the majority's whole (when etcd stayed calm for
    # it); of the isolated coordinator's, what it could write.
    lost = check_history(c, hist, int(t0_wall * 1e9), majority if calm else ())
    print(f"events not kept in etcd: {lost}")
    assert ("coord-2", "quorum_regained", "", "") in etcd_history(c, 1, int(t0_wall * 1e9))
    forbidden = {"action_started", "action_done", "action_accepted", "action_locked",
                 "recovery_escalated", "tilt"}
    for n in (1, 2, 3):
        assert not forbidden & {k for k, _, _ in hist[n]}, (n, hist[n])
    # What the etcd election may add on the majority side: quorum lost and
    # regained, leadership lost and won, and a verdict (held, the node
    # lost) by each new leader while node 2 was down, and its return.
    churn = {"quorum_lost", "quorum_regained", "leader_changed", "verdict",
             "recovery_held", "node_lost", "node_returned"}
    for n in majority:
        h = collections.Counter(e for e in hist[n]
                                if e[0] != "check_status" and e[0] not in churn)
        assert h == collections.Counter({
            ("node_disconnected", "node-2", ""): 1,
            ("opinion", "node-2", ""): 2,        # FAILED, then OK (agent back)
            ("node_connected", "node-2", ""): 1,
        }), (n, hist[n])
        c_ = collections.Counter(k for k, _, _ in hist[n])
        assert c_["quorum_lost"] == c_["quorum_regained"], (n, hist[n])
        assert c_["verdict"] == c_["recovery_held"] == c_["node_lost"], (n, hist[n])
        assert c_["node_returned"] <= c_["node_lost"], (n, hist[n])
        if calm:
            assert c_["quorum_lost"] == c_["leader_changed"] == 0, (n, hist[n])
            assert c_["verdict"] == (n == leader), (n, hist[n])
        for e in c.events(n, after=base[n]):
            if e.kind == "verdict":
                assert (e.node, e.check) == ("node-2", ""), e
            if e.kind == "recovery_held":
                assert (e.node, e.check, field(e, "reason")) == ("node-2", "", "node_down"), e
            if e.kind in ("node_lost", "node_returned"):
                assert (e.node, e.check) == ("node-2", ""), e
    # The isolated coordinator: quorum lost and regained, nodes 1 and 3 down
    # and back, and its own view of node 2's Redis: FAILED, then OK.
    h2 = collections.Counter(e for e in hist[2] if e[0] != "check_status")
    assert h2 == collections.Counter({
        ("quorum_lost", "", ""): 1, ("quorum_regained", "", ""): 1,
        ("node_disconnected", "node-1", ""): 1, ("node_disconnected", "node-3", ""): 1,
        ("opinion", "node-1", ""): 2, ("opinion", "node-3", ""): 2,
        ("node_connected", "node-1", ""): 1, ("node_connected", "node-3", ""): 1,
        ("opinion", "node-2", "redis"): 2,
    }), hist[2]
    # Check statuses changed only for node 2's Redis, and only where seen.
    for n in (1, 2, 3):
        assert {(k, nd, ck) for k, nd, ck in hist[n] if k == "check_status"} <= \
            {("check_status", "node-2", "redis")}, (n, hist[n])


# ---- 2. one coordinator alone ---------------------------------------------

def test_one_coordinator_alone_sees_a_node_failed_no_action(cluster, pb):
    """Only one node's agent -> the leader is cut (node 2's agent and
    coordinator 3 when coordinator 3 leads): the leader, the one that would
    act, alone sees that node go silent, finds it FAILED and publishes that;
    the other two still hear it and stay OK. One opinion is no quorum: no
    verdict, no record, no command. Healed, the opinion clears."""
    c = cluster()
    leader, token = c.leader()
    node = 2 if leader != 2 else 3
    bystanders = [n for n in (1, 2, 3) if n != leader]
    base = {n: last_seq(c, n) for n in (1, 2, 3)}

    t0 = time.monotonic()
    t0_wall = time.time()
    c.net.cut_one_way(node, leader, port=c.grpc_ports[leader])
    wait_for(lambda: metric(c.coord_metrics(leader), "troika_coord_opinions",
                            state="failed") == 1,
             30 * SLOW, what=f"the leader's opinion: node-{node} FAILED")
    print(f"coord-{leader} (leader) alone finds node-{node} FAILED "
          f"{time.monotonic() - t0:.2f} s after the cut")
    alone = {(f"coord-{leader}", f"node-{node}", "@node")}
    wait_for(lambda: etcd_opinions_when_ready(c, 1) == alone, 10 * SLOW,
             what="the leader's opinion, and only it, in etcd")
    # Past the time a second opinion would have taken: still alone.
    time.sleep(4 * SLOW)
    assert etcd_opinions(c, 1) == alone
    for n in (1, 2, 3):
        s = c.status(n)
        assert s.quorum and s.leader_name == f"coord-{leader}", n
        assert s.fencing_token == token, n
        st = [x for x in s.nodes if x.node == f"node-{node}"][0]
        assert st.connected == (n != leader), n
        assert c.actions(n) == [], n
        assert commands_run(c, n) == 0, n
        m = c.coord_metrics(n)
        assert metric(m, "troika_coord_opinions", state="failed") == (n == leader), n
        assert metric(m, "troika_coord_actions_started_total") == 0
        assert metric_sum(m, "troika_coord_recovery_held_total") == 0
    assert c.redis_ping(node)

    t1 = c.net.heal()
    wait_for(lambda: settled_all(c), 40 * SLOW, what="healed, no FAILED opinion")
    print(f"healed after {time.monotonic() - t1:.2f} s")
    wait_for(lambda: etcd_opinions_when_ready(c, 1) == set(), 10 * SLOW,
             what="no opinion left in etcd")
    assert c.leader() == (leader, token)
    time.sleep(2)
    hist = {n: history(c, n, base[n]) for n in (1, 2, 3)}
    for n in (1, 2, 3):
        print(f"coord-{n}: {hist[n]}")
        assert c.actions(n) == [], n
        assert commands_run(c, n) == 0, n
    for n in bystanders:
        assert hist[n] == [], n
    assert check_history(c, hist, int(t0_wall * 1e9), (1, 2, 3)) == {1: [], 2: [], 3: []}
    assert collections.Counter(hist[leader]) == collections.Counter({
        ("node_disconnected", f"node-{node}", ""): 1,
        ("opinion", f"node-{node}", ""): 2,        # FAILED, then OK (agent back)
        ("node_connected", f"node-{node}", ""): 1,
    }), hist[leader]


# ---- 3. the leader cut off -----------------------------------------------

def set_maintenance(c, via, node, check, until):
    a = c.admin_pb2
    req = a.SetMaintenanceRequest(maintenance=a.Maintenance(
        node=node, check=check, until_unix_nano=int(until * 1e9),
        reason="test_partition: hold the action until the leader is cut off",
        by="test_partition"))
    return c.rpc(via, "SetMaintenance", req, a.SetMaintenanceResponse)


def test_leader_cut_off_cannot_write_and_a_new_leader_acts_once(cluster, pb):
    """A confirmed failure on another node waits for its maintenance to end;
    the leader's node is cut off just before it does. The old leader, not yet
    aware, decides to act: its record write, guarded by a leader key etcd
    can no longer vouch for, fails, so no command goes out. A new leader on
    the majority side acts once: one record, its token, run once."""
    c = cluster()
    old, old_token = c.leader()
    move_etcd_leader_off(c, old)
    failing = 2 if old != 2 else 3
    third = 6 - old - failing
    t_base_ns = time.time_ns()
    base = {n: last_seq(c, n) for n in (1, 2, 3)}

    until = time.time() + 8 * SLOW
    set_maintenance(c, old, f"node-{failing}", "redis", until)
    c.kill_redis(failing)

    def held():
        evs = c.events(old, after=base[old])
        kinds = [(e.kind, field(e, "reason")) for e in evs if e.node == f"node-{failing}"]
        return ("verdict", None) in kinds and ("recovery_held", "maintenance") in kinds
    wait_for(held, 20 * SLOW, what="the old leader's verdict, held for maintenance")
    assert time.time() < until - 1, "the verdict came too late for this test's timing"
    time.sleep(max(0.0, until - 0.3 - time.time()))
    t0 = c.net.isolate(old)

    def write_failed():
        m = c.coord_metrics(old)
        return metric(m, "troika_coord_record_write_failures_total") >= 1
    wait_for(write_failed, 10 * SLOW, what="the old leader's record write failing")
    print(f"old leader coord-{old}: record write failed {time.monotonic() - t0:.2f} s "
          f"after the cut")
    others = [n for n in (1, 2, 3) if n != old]
    new, new_token = wait_for(lambda: c.leader(among=others), 20 * SLOW,
                              what="a new leader on the majority side")
    print(f"new leader coord-{new} (token {new_token}) {time.monotonic() - t0:.2f} s "
          f"after the cut")
    assert new_token > old_token

    def done():
        recs = c.actions(new)
        return recs if recs and recs[0].state == pb[1].ACTION_STATE_SUCCEEDED else None
    wait_for(done, 30 * SLOW, what="the new leader's restart succeeded")
    wait_for(lambda: c.redis_ping(failing), 10, what=f"redis on node {failing} back")
    print(f"restarted by the new leader {time.monotonic() - t0:.2f} s after the cut")
    s = c.status(old)
    assert not s.quorum and not s.leader, s.quorum_reason
    assert c.actions(old) == []

    # The old leader's node is down for the majority too (no action for it).
    def node_verdict():
        return [e for e in c.events(new, after=base[new])
                if e.kind == "verdict" and e.node == f"node-{old}"]
    wait_for(node_verdict, 30 * SLOW, what=f"the new leader's verdict on node-{old}")
    wait_for(lambda: metric(c.coord_metrics(old), "troika_coord_opinions",
                            state="failed") == 3,
             20 * SLOW, what="the old leader: both other nodes and the redis FAILED")
    time.sleep(1)

    t1 = c.net.heal()
    wait_for(lambda: settled_all(c), 40 * SLOW, what="healed, no FAILED opinion")
    print(f"healed after {time.monotonic() - t1:.2f} s")
    assert c.leader() == (new, new_token)
    time.sleep(2)

    for n in (1, 2, 3):
        recs = c.actions(n)
        assert len(recs) == 1, (n, [(r.id, r.coordinator, r.state) for r in recs])
        r = recs[0]
        assert (r.node, r.check, r.action, r.attempt) == (f"node-{failing}", "redis",
                                                          "restart", 1)
        assert r.state == pb[1].ACTION_STATE_SUCCEEDED
        assert r.coordinator == r.finished_by == f"coord-{new}"
        assert r.fencing_token == new_token
        # The majority's two; the old leader's too if its lease (3 s) had
        # not run out yet when the new leader decided.
        assert {f"coord-{m}" for m in others} <= set(r.opinions) <= \
            {"coord-1", "coord-2", "coord-3"}, r.opinions
        assert len(r.opinions) == len(set(r.opinions))
    m = c.coord_metrics(old)
    assert metric(m, "troika_coord_record_write_failures_total") == 1
    assert metric(m, "troika_coord_actions_started_total") == 0
    assert f"action {old_token:012d}-000001 not started: etcd: " in c.coord_log(old)
    assert metric(c.coord_metrics(new), "troika_coord_actions_started_total") == 1
    for n in (1, 2, 3):
        assert etcd_opinions(c, n) == set()
    am = c.agent_metrics(failing)
    assert metric(am, "troika_agent_commands_total", outcome="accepted") == 1
    assert metric(am, "troika_agent_commands_total", outcome="succeeded") == 1
    assert commands_run(c, failing) == 2
    assert metric(am, "troika_agent_fencing_token") == new_token
    for n in (old, third):
        assert commands_run(c, n) == 0, n

    hist = {n: [(k, nd, ck, field(e, "reason")) for e in c.events(n, after=base[n])
                for k, nd, ck in [(e.kind, e.node, e.check)]] for n in (1, 2, 3)}
    for n in (1, 2, 3):
        print(f"coord-{n}: {hist[n]}")
    F, L = f"node-{failing}", f"node-{old}"
    # Where a CRITICAL then an OK result of the Redis were seen.
    redis_seen = {("check_status", F, "redis", None): 2, ("opinion", F, "redis", None): 2}
    want = {n: collections.Counter(redis_seen) for n in (1, 2, 3)}
    want[old].update({
        ("maintenance_on", F, "redis", None): 1,
        ("verdict", F, "redis", None): 1,
        ("recovery_held", F, "redis", "maintenance"): 1,
        ("leader_changed", "", "", None): 1,
        ("quorum_lost", "", "", None): 1, ("quorum_regained", "", "", None): 1,
    })
    for n in (failing, third):
        want[old].update({("node_disconnected", f"node-{n}", "", None): 1,
                          ("opinion", f"node-{n}", "", None): 2,
                          ("node_connected", f"node-{n}", "", None): 1})
    for n in others:
        want[n].update({("node_disconnected", L, "", None): 1, ("opinion", L, "", None): 2,
                        ("node_connected", L, "", None): 1})
    want[new].update({
        ("leader_changed", "", "", None): 1,
        ("verdict", F, "redis", None): 1,
        ("action_started", F, "redis", None): 1,
        ("action_accepted", F, "redis", None): 1,
        ("action_done", F, "redis", None): 1,
        ("verdict", L, "", None): 1,
        ("recovery_held", L, "", "node_down"): 1,
        ("node_lost", L, "", None): 1,
        ("node_returned", L, "", None): 1,
    })
    got = {n: collections.Counter(hist[n]) for n in (1, 2, 3)}
    # Right after the restart the Redis may still be FAILED for a moment
    # (its OK result on its way): held for the cooldown, or not.
    cooldown = ("recovery_held", F, "redis", "cooldown")
    assert got[new][cooldown] <= 1
    del got[new][cooldown]
    for n in (1, 2, 3):
        assert got[n] == want[n], (n, hist[n])
    # The history in etcd: the majority's whole; the old leader's up to the
    # cut, and after the heal.
    lost = check_history(c, {n: [(k, nd, ck) for k, nd, ck, _ in hist[n]] for n in hist},
                         t_base_ns, others)
    print(f"events not kept in etcd: {lost}")
    kept = etcd_history(c, 1, t_base_ns)
    for e in (("maintenance_on", F, "redis"), ("verdict", F, "redis"),
              ("recovery_held", F, "redis"), ("quorum_regained", "", "")):
        assert (f"coord-{old}", *e) in kept, e
