"""Issue 6, Galera full outage with a partition during it: real MariaDB
Galera, etcd, troika-coord and troika-agent on each of the three emulated
nodes (test_galera_outage.py's OutageCluster), every process of node N in
cgroup tk/nN (test_partition.py's Net), so node 3 can be cut off.

The members go down one after another, each ahead of the one before
(node-1 killed, node-2 stopped cleanly, node-3 killed last, alone Primary
with the newest rows): the most advanced member is node-3. It is cut off
from nodes 1 and 2 before the maintenance that staged the outage ends:
its agent cannot reach the leader, its position cannot be read, and a
bootstrap from node-2 (the most advanced of those that answer) would lose
node-3's rows and, once node-3 came back, make two Primaries. So:

- while node-3 is cut off: an alert-level cluster_held event names it,
  node-1's and node-2's positions are asked, no bootstrap record is ever
  written, no mariadbd anywhere is Primary;
- healed: node-3's position is read, node-3 alone is bootstrapped, the
  others join by IST, three Synced members hold every row;
- throughout, from before the first kill to the end, a poller asks every
  member that answers for its cluster status, state uuid, view id, size
  and members, about ten times a second: never two Primary components.
The exact history of action records is asserted on every coordinator.

Needs root (iptables, cgroup2). Ports: etcd 2379/2380 and MariaDB
3306/4567/4568/4444 on 127.0.1.1-3; the etcd port lock is held throughout.
"""
import concurrent.futures
import fcntl
import subprocess
import threading
import time

import pytest

from cluster import ETCD_LOCK
from conftest import SANITIZED, wait_for
from galera_server import CLIENT
from test_galera_outage import POLICY, OutageCluster, finish_and_check, history
from test_galera_outage import set_maintenance
from test_partition import Net, move_coord_leader_off, move_etcd_leader_off, why_not
from test_recovery_galera import count_rows, insert_rows
from test_recovery_galera import pb  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(why_not() is not None, reason=str(why_not()))
SLOW = 3 if SANITIZED else 1
RETRY = 2          # the cluster's retry (POLICY), seconds
CUT_OFF = 3        # the member cut off: the most advanced one


class PartitionOutageCluster(OutageCluster):
    """OutageCluster whose etcd members, coordinators and agents (and so
    the servers the agents start) run in their node's cgroup. The
    mariadbd the harness starts at first are outside: they are all gone
    before the cut."""

    def __init__(self, procs, run, pb, net, **kw):  # noqa: F811
        self.net = net
        super().__init__(procs, run, pb, **kw)

    def wrap(self, n, argv):
        return self.net.wrap(n, argv)


# ---- the poller ---------------------------------------------------------

STATUS = ("wsrep_cluster_status", "wsrep_cluster_state_uuid", "wsrep_cluster_conf_id",
          "wsrep_cluster_size", "wsrep_incoming_addresses")
QUERY = ("SHOW GLOBAL STATUS WHERE Variable_name IN (" +
         ", ".join(f"'{v}'" for v in STATUS) + ")")


def sample(node):
    """node's Galera status over its unix socket (as galera_server.Node.status
    asks it), or None when no server answers there."""
    try:
        r = subprocess.run([CLIENT, "--no-defaults", "-S", str(node.sock), "-uroot",
                            "-N", "-B", "-e", QUERY], capture_output=True, timeout=2)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    v = dict(line.split("\t", 1) for line in r.stdout.decode().splitlines() if "\t" in line)
    if v.get("wsrep_cluster_status") is None:
        return None
    return {
        "status": v["wsrep_cluster_status"],
        "uuid": v.get("wsrep_cluster_state_uuid", ""),
        "conf_id": int(v.get("wsrep_cluster_conf_id") or -1),
        "size": int(v.get("wsrep_cluster_size") or 0),
        "members": frozenset(a for a in v.get("wsrep_incoming_addresses", "").split(",")
                             if a),
    }


class Poller:
    """Every ~100 ms, every member asked at once (one thread each): one
    round is one instant, as close as the client allows. Rounds are kept
    as (start, end, {n: sample or None})."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.rounds = []
        self.errors = []
        self.done = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(len(nodes))
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def start(self):
        self.thread.start()

    def loop(self):
        while not self.done.is_set():
            t0 = time.monotonic()
            try:
                got = list(self.pool.map(sample, self.nodes))
            except Exception as e:  # noqa: BLE001 (reported by stop())
                self.errors.append(repr(e))
                got = [None] * len(self.nodes)
            t1 = time.monotonic()
            self.rounds.append((t0, t1, {node.n: s for node, s in zip(self.nodes, got)}))
            self.done.wait(max(0.0, 0.1 - (t1 - t0)))

    def stop(self):
        self.done.set()
        if self.thread.is_alive():
            self.thread.join(10)
        self.pool.shutdown(wait=True)

    def primaries(self, since=0.0, until=float("inf")):
        """[(round start, node)] of Primary answers in rounds within [since, until]."""
        return [(t0, n) for t0, t1, r in self.rounds if t0 >= since and t1 <= until
                for n, s in r.items() if s is not None and s["status"] == "Primary"]

    def answers(self, since=0.0, until=float("inf")):
        """{node: how many rounds within [since, until] it answered in}."""
        out = {node.n: 0 for node in self.nodes}
        for t0, t1, r in self.rounds:
            if t0 >= since and t1 <= until:
                for n, s in r.items():
                    out[n] += s is not None
        return out


def consistent(s):
    """A sample whose size and list of members agree."""
    return len(s["members"]) == s["size"]


def second_primaries(rounds, uuid):
    """What in the rounds shows two Primary components: a Primary member of
    another history than `uuid`; two Primary members at one instant whose
    components share no member, or that name one view (conf id) with
    different members; more Primary members at one instant than the
    biggest of their components has. (The smallest would be wrong: a
    joiner reports its new, bigger view a moment before the others do.)"""
    bad = []
    for t0, _, r in rounds:
        prim = {n: s for n, s in r.items() if s is not None and s["status"] == "Primary"}
        for n, s in prim.items():
            if s["uuid"] != uuid:
                bad.append((t0, f"n{n} Primary in history {s['uuid']}, not {uuid}", r))
            if f"127.0.1.{n}:3306" not in s["members"]:
                bad.append((t0, f"n{n} Primary without itself among its members", r))
        for a in prim:
            for b in prim:
                if a >= b:
                    continue
                sa, sb = prim[a], prim[b]
                if not sa["members"] & sb["members"]:
                    bad.append((t0, f"n{a} and n{b} Primary in disjoint components", r))
                # Only samples whose own variables agree: SHOW STATUS
                # reads them one by one, and across a view change one
                # member once reported view 2's conf id and size with view
                # 3's incoming addresses (a joiner's), a torn read.
                if sa["conf_id"] == sb["conf_id"] and sa["members"] != sb["members"] \
                        and consistent(sa) and consistent(sb):
                    bad.append((t0, f"n{a} and n{b}: view {sa['conf_id']} with "
                                f"different members", r))
        if prim and len(prim) > max(s["size"] for s in prim.values()):
            bad.append((t0, f"{len(prim)} Primary members, components of at most "
                        f"{max(s['size'] for s in prim.values())}", r))
    return bad


# ---- the test -------------------------------------------------------------

def test_partition_during_the_outage_never_makes_a_second_primary(procs, tmp_path, pb):  # noqa: F811
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        net = Net()
        c = None
        poller = None
        try:
            net.setup()
            c = PartitionOutageCluster(procs, tmp_path, pb, net, policy=POLICY)
            c.start()
            poller = Poller(c.galera.nodes)
            run(c, poller)
            poller.stop()
            net.heal()
            c.stop()
        finally:
            try:
                if poller is not None:
                    poller.stop()
                procs.stop_all()
                if c is not None and hasattr(c, "galera"):
                    c.stop_services()
            finally:
                net.teardown()


def leader_sees(c, leader, node, connected):
    return [x.connected for x in c.status(leader).nodes if x.node == node] == [connected]


def own_failed_opinions(c, n):
    m = c.coord_metrics(n)
    return m.get(("troika_coord_opinions", frozenset({("state", "failed")})), 0.0)


def run(c, poller):
    n1, n2, n3 = c.galera.nodes
    # The leader, and etcd's Raft leader, on the side that keeps quorum:
    # the cut then takes node-3 from the leader and nothing else changes.
    move_coord_leader_off(c, CUT_OFF)
    move_etcd_leader_off(c, CUT_OFF)
    leader, token = c.leader()
    assert leader != CUT_OFF

    insert_rows(n1, 20, "before")
    wait_for(lambda: count_rows(n3) == 20, 10, what="rows replicated")
    poller.start()
    wait_for(lambda: min(poller.answers().values()) >= 10, 10 * SLOW,
             what="the poller's first answers")
    uuid = n1.status("wsrep_cluster_state_uuid")
    assert uuid and uuid != "00000000-0000-0000-0000-000000000000", uuid
    offsets = [n.log_size() for n in c.galera.nodes]

    # The outage, staged under cluster-wide maintenance (as
    # test_galera_outage.py does), each member down ahead of the one
    # before: node-1 killed; node-2 leaves cleanly, so node-3 stays a
    # Primary of one and takes rows nobody else has; node-3 killed.
    set_maintenance(c, leader, "")
    t_kills = time.monotonic()
    n1.kill()
    wait_for(lambda: n2.synced(2), 30 * SLOW, interval=0.2, what="a Primary of two")
    insert_rows(n2, 10, "n1-down")
    wait_for(lambda: count_rows(n3) == 30, 10, what="rows on n3")
    n2.stop()
    wait_for(lambda: n3.synced(1), 30 * SLOW, interval=0.2, what="node-3 a Primary of one")
    insert_rows(n3, 10, "n3-alone")
    assert count_rows(n3) == 40
    n3.kill()
    # Every coordinator's own opinion: each member's db FAILED.
    for n in (1, 2, 3):
        wait_for(lambda n=n: own_failed_opinions(c, n) == 3, 30 * SLOW, interval=0.2,
                 what=f"coord-{n}: the three db checks FAILED")

    # node-3 cut off, then the maintenance ends: its position is
    # unavailable from the start of the procedure.
    t_cut = c.net.isolate(CUT_OFF)
    wait_for(lambda: leader_sees(c, leader, "node-3", False), 20 * SLOW, interval=0.2,
             what="the leader: node-3's agent gone")
    assert c.leader() == (leader, token)
    set_maintenance(c, leader, "", clear=True)

    def alerted():
        return [e for e in c.events(leader) if e.kind == "cluster_held"]
    held = wait_for(alerted, 60 * SLOW, interval=0.5, what="the alert for node-3's position")
    assert [e.node for e in held] == ["node-3"], [(e.node, e.message) for e in held]
    ev = held[0]
    assert c.admin_pb2.Severity.Name(ev.severity) == "SEVERITY_CRITICAL"
    assert "position of node-3" in ev.message and "no stream" in ev.message, ev.message
    assert {f.name: f.value for f in ev.fields}.get("cluster") == "shop-db", ev

    # Held for three retry periods: never a bootstrap, no Primary anywhere.
    admin = c.admin_pb2
    deadline = time.monotonic() + 3 * RETRY + 1
    while time.monotonic() < deadline:
        got, _ = history(c, leader)
        assert not any(a in ("bootstrap", "start") for _, a, _ in got), got
        time.sleep(0.5)
    got, _ = history(c, leader)
    assert got == [
        ("", "bootstrap_cluster", "RUNNING"),
        ("node-1", "position", "SUCCEEDED"),
        ("node-2", "position", "SUCCEEDED"),
    ], got
    assert not poller.primaries(since=t_cut), poller.primaries(since=t_cut)
    # One alert per member and procedure, however often it was asked.
    assert len(alerted()) == 1
    t_heal = c.net.heal()
    cut_answers = poller.answers(since=t_cut, until=t_heal)
    cut_rounds = len([r for r in poller.rounds if r[0] >= t_cut and r[1] <= t_heal])
    print(f"cut off for {t_heal - t_cut:.1f} s, {cut_rounds} polls, answers {cut_answers}")

    proc = finish_and_check(c, leader, offsets, 40)
    print(f"heal to three Synced members: {time.monotonic() - t_heal:.1f} s")
    assert admin.ActionState.Name(proc.state) == "ACTION_STATE_SUCCEEDED", proc.message
    facts = {f.name: f.value for f in proc.fields}
    seq = {n: int(facts[n].split(":")[1].split()[0]) for n in ("node-1", "node-2", "node-3")}
    assert seq["node-1"] + 10 <= seq["node-2"] and seq["node-2"] + 10 <= seq["node-3"], facts
    assert facts["bootstrapped"] == "node-3", facts
    for node in c.galera.nodes:
        assert node.status("wsrep_cluster_state_uuid") == uuid, node.n
    # A while of the healed cluster in the poller too.
    t_synced = time.monotonic()
    time.sleep(2)
    poller.stop()

    # Never two Primary components, on any node, at any poll.
    bad = second_primaries(poller.rounds, uuid)
    assert not bad, bad[:5]
    # Not a vacuous pass: every member answered, Primary, before the
    # kills and after the recovery, and nothing was Primary while node-3
    # was cut off.
    before = poller.answers(until=t_kills)
    after = poller.answers(since=t_synced)
    print(f"{len(poller.rounds)} polls; answers before the kills {before}, "
          f"after the recovery {after}; in all {poller.answers()}")
    assert min(before.values()) >= 10 and min(after.values()) >= 5, (before, after)
    # It saw the staging too: node-3 a Primary of one, before the cut.
    alone = [r for t0, t1, r in poller.rounds if t_kills <= t0 and t1 <= t_cut and
             r[3] is not None and r[3]["status"] == "Primary" and r[3]["size"] == 1]
    assert alone, "the poller never saw node-3 a Primary of one"
    assert {n for _, n in poller.primaries(until=t_kills)} == {1, 2, 3}
    assert {n for _, n in poller.primaries(since=t_synced)} == {1, 2, 3}
    assert not poller.primaries(since=t_cut, until=t_heal)
    assert not poller.errors, poller.errors

    # The exact history, the same on every coordinator.
    time.sleep(2)
    want = [
        ("", "bootstrap_cluster", "SUCCEEDED"),
        ("node-1", "position", "SUCCEEDED"),
        ("node-2", "position", "SUCCEEDED"),
        ("node-3", "position", "SUCCEEDED"),
        ("node-3", "bootstrap", "SUCCEEDED"),
        ("node-1", "start", "SUCCEEDED"),
        ("node-2", "start", "SUCCEEDED"),
    ]
    for n in (1, 2, 3):
        got, recs = history(c, n)
        # No failed ask of node-3: the leader knew its agent gone before
        # the procedure began, and a member without a stream is not asked
        # (no record, only the alert; test_galera_outage.py's missing
        # datadir is where failed asks repeat).
        assert got == want, (n, got)
        for r in recs:
            assert r.fencing_token == token and r.cluster == "shop-db", (n, r)
            assert r.procedure == (recs[0].id if r.node else ""), (n, r)


def test_the_poller_s_judgement():
    """second_primaries() on made-up rounds: what a split brain looks like
    is found; a member joining or leaving one component is not."""
    def s(status, members, conf_id, uuid="u"):
        ms = frozenset(f"127.0.1.{m}:3306" for m in members)
        return {"status": status, "uuid": uuid, "conf_id": conf_id, "size": len(ms),
                "members": ms}
    ok = [
        (0, 0, {1: s("Primary", [1, 2, 3], 5), 2: s("Primary", [1, 2, 3], 5),
                3: s("Primary", [1, 2, 3], 5)}),
        # node-2 left: node-3 already in the new view, node-1 not yet.
        (1, 1, {1: s("Primary", [1, 3], 6), 2: None, 3: s("Primary", [1, 2, 3], 5)}),
        # node-3 bootstrapped; node-1 joining, ahead of node-3 by a view.
        (2, 2, {1: s("Primary", [1, 3], 8), 2: s("non-Primary", [], -1),
                3: s("Primary", [3], 7)}),
        (3, 3, {1: None, 2: None, 3: None}),
        # node-2 joining: node-3's status read across the view change,
        # view 2's size with view 3's addresses (seen once in CI).
        (4, 4, {1: s("Primary", [1, 3], 2), 2: None,
                3: dict(s("Primary", [1, 2, 3], 2), size=2)}),
    ]
    assert second_primaries(ok, "u") == []
    split = [
        # node-3 bootstrapped alone while node-1 and node-2 run another.
        (0, 0, {1: s("Primary", [1, 2], 7), 2: s("Primary", [1, 2], 7),
                3: s("Primary", [3], 7)}),
        # Two bootstraps, each alone: one view each, same number.
        (1, 1, {1: s("Primary", [1], 2), 2: None, 3: s("Primary", [3], 2)}),
        # A bootstrap without the position: a new history.
        (2, 2, {1: None, 2: s("Primary", [2], 1, uuid="v"), 3: None}),
    ]
    found = second_primaries(split, "u")
    assert [(t, why) for t, why, _ in found] == [
        (0, "n1 and n3 Primary in disjoint components"),
        (0, "n1 and n3: view 7 with different members"),
        (0, "n2 and n3 Primary in disjoint components"),
        (0, "n2 and n3: view 7 with different members"),
        (0, "3 Primary members, components of at most 2"),
        (1, "n1 and n3 Primary in disjoint components"),
        (1, "n1 and n3: view 2 with different members"),
        (1, "2 Primary members, components of at most 1"),
        (2, "n2 Primary in history v, not u"),
    ], found
