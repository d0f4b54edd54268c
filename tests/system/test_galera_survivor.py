"""Issue 6, Galera with two members down and one non-Primary survivor, on
a real three-node MariaDB Galera cluster with etcd, troika-coord and
troika-agent on each emulated node (test_galera_outage.py's
OutageCluster):

- two mysqld killed -9, the third left running: it goes non-Primary, every
  member fails by quorum, and the leader's procedure takes the survivor's
  position from the running server and the others' by --wsrep-recover,
  starts the two at their recovered positions without a bootstrap, and
  Galera re-forms the Primary component by itself (the members of the last
  Primary view find each other again): three Synced members, every row,
  IST and no SST;
- the same with the two killed members' saved view (gvwstate.dat) taken
  away, so that they cannot re-form it: once no Primary formed in time,
  the survivor, the most advanced member, is bootstrapped in place
  (pc.bootstrap=YES, never a restart), and the others join it.
Each test asserts the exact history of action records on every
coordinator, and a poller on every member finds never two Primary
components.

Ports: etcd 2379/2380 and MariaDB 3306/4567/4568/4444 on 127.0.1.1-3.
"""
import fcntl
import os
import time

import pytest

from cluster import ETCD_LOCK
from conftest import SANITIZED, wait_for
from test_etcd import ETCD
from test_galera_outage import POLICY, OutageCluster, history, procedure_done
from test_galera_outage import set_maintenance
from test_galera_partition import Poller, second_primaries
from test_recovery_galera import count_rows, insert_rows
from test_recovery_galera import pb  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(ETCD),
                                reason="etcd-server is not installed")
SLOW = 3 if SANITIZED else 1
NIL = "00000000-0000-0000-0000-000000000000"


def run_survivor(c, survivor, forget_view):
    """Kill every member but `survivor` (1-based); with forget_view, take
    away their saved Primary view first. Returns (procedure record, its
    facts, the history, the poller, the state uuid)."""
    nodes = c.galera.nodes
    surv = nodes[survivor - 1]
    dead = [n for n in nodes if n is not surv]
    leader, token = c.leader()
    insert_rows(nodes[0], 20, "before")
    wait_for(lambda: all(count_rows(n) == 20 for n in nodes), 10, what="rows everywhere")
    uuid = surv.status("wsrep_cluster_state_uuid")
    assert uuid and uuid != NIL, uuid
    poller = Poller(nodes)
    poller.start()
    wait_for(lambda: min(poller.answers().values()) >= 5, 10 * SLOW,
             what="the poller's first answers")
    offsets = [n.log_size() for n in nodes]
    t_kills = time.monotonic()
    for n in dead:
        n.kill()
    if forget_view:
        for n in dead:
            (n.datadir / "gvwstate.dat").unlink()
    # The survivor is alone in its component, not Primary.
    wait_for(lambda: surv.status("wsrep_cluster_status") == "non-Primary", 30 * SLOW,
             interval=0.2, what="the survivor non-Primary")
    try:
        proc = wait_for(lambda: procedure_done(c, leader), 300 * SLOW, interval=0.5,
                        what="the procedure to end")
    except AssertionError:
        print("history:", history(c, leader)[0])
        raise
    for n in dead:
        n.adopt()
    wait_for(lambda: all(n.synced(3) for n in nodes), 60 * SLOW, interval=0.2,
             what="three Synced members")
    t_synced = time.monotonic()
    print(f"last kill to three Synced members: {t_synced - t_kills:.1f} s")
    for n in nodes:
        assert count_rows(n) == 20, n.n
        assert n.status("wsrep_cluster_state_uuid") == uuid, n.n
    for n, offset in zip(nodes, offsets):
        log = n.log_since(offset)
        assert "SST completed" not in log, log[-3000:]
    # The survivor was never restarted.
    assert surv.running() and surv.proc is not None and surv.proc.poll() is None
    time.sleep(2)
    poller.stop()
    bad = second_primaries(poller.rounds, uuid)
    assert not bad, bad[:5]
    before = poller.answers(until=t_kills)
    after = poller.answers(since=t_synced)
    assert min(before.values()) >= 5 and min(after.values()) >= 5, (before, after)
    # Not vacuous: the survivor answered non-Primary in between.
    assert any(r[survivor] is not None and r[survivor]["status"] == "non-Primary"
               for _, _, r in poller.rounds), "never saw the survivor non-Primary"
    assert not poller.errors, poller.errors
    admin = c.admin_pb2
    got, recs = history(c, leader)
    print("history:", got, proc.message)
    assert admin.ActionState.Name(proc.state) == "ACTION_STATE_SUCCEEDED", \
        (proc.message, got)
    for r in recs:
        assert r.fencing_token == token and r.cluster == "shop-db", r
        assert r.coordinator == f"coord-{leader}", r
        assert r.procedure == (recs[0].id if r.node else "")
    time.sleep(1)
    for n in (1, 2, 3):
        assert history(c, n)[0] == got, n
    facts = {f.name: f.value for f in proc.fields}
    return proc, facts, got, recs


def positions(recs, surv_node):
    """The position answers: the survivor's from its running server."""
    src = {}
    for r in recs:
        if r.action == "position":
            src[r.node] = {f.name: f.value for f in r.fields}["source"]
    assert src[surv_node] == "server", src
    assert all(s in ("wsrep-recover", "grastate") for n, s in src.items()
               if n != surv_node), src


def test_survivor_and_two_restarted_reform_the_primary(procs, tmp_path, pb):  # noqa: F811
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        c = OutageCluster(procs, tmp_path, pb, policy=POLICY)
        try:
            c.start()
            proc, facts, got, recs = run_survivor(c, 1, forget_view=False)
        finally:
            c.stop()
    assert got == [
        ("", "bootstrap_cluster", "SUCCEEDED"),
        ("node-1", "position", "SUCCEEDED"),
        ("node-2", "position", "SUCCEEDED"),
        ("node-3", "position", "SUCCEEDED"),
        ("node-2", "start", "SUCCEEDED"),
        ("node-3", "start", "SUCCEEDED"),
    ], got
    assert [list(r.args) for r in recs if r.action == "start"] == [["nowait"]] * 2
    positions(recs, "node-1")
    assert "bootstrapped" not in facts, facts
    assert facts["node-1"].endswith(" running"), facts
    assert "re-formed by itself" in proc.message, proc.message


def test_survivor_bootstrapped_in_place_when_nothing_else_works(procs, tmp_path, pb):  # noqa: F811
    """node-2 survives; node-1 and node-3 come back without their saved
    view, so no Primary can re-form: node-2, as advanced as they are and
    running, is bootstrapped in place (node-1, first in the list, would
    be chosen on a tie if a running member did not go first)."""
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        c = OutageCluster(procs, tmp_path, pb, policy=POLICY)
        try:
            c.start()
            proc, facts, got, recs = run_survivor(c, 2, forget_view=True)
        finally:
            c.stop()
    assert got == [
        ("", "bootstrap_cluster", "SUCCEEDED"),
        ("node-1", "position", "SUCCEEDED"),
        ("node-2", "position", "SUCCEEDED"),
        ("node-3", "position", "SUCCEEDED"),
        ("node-1", "start", "SUCCEEDED"),
        ("node-3", "start", "SUCCEEDED"),
        ("node-2", "bootstrap", "SUCCEEDED"),
    ], got
    positions(recs, "node-2")
    boot = [r for r in recs if r.action == "bootstrap"]
    assert len(boot) == 1 and list(boot[0].args) == ["in-place"], boot
    assert boot[0].message.startswith("bootstrapped in place at "), boot[0].message
    assert facts["bootstrapped"] == "node-2", facts
    # Not before Galera had its chance: 30 s after the last start.
    start_end = max(r.ended_unix_nano for r in recs if r.action == "start")
    assert boot[0].started_unix_nano >= start_end + 30 * 10**9, \
        (boot[0].started_unix_nano - start_end) / 1e9


def test_two_stopped_cleanly_beside_a_primary_survivor_are_started(procs, tmp_path, pb):  # noqa: F811
    """The hold for two failed members must not hold them when the
    survivor stays Primary: node-2 and node-3 stopped cleanly leave node-1
    a Primary of one, and each is started by its own recovery, once; no
    cluster procedure."""
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        c = OutageCluster(procs, tmp_path, pb, policy=POLICY)
        try:
            c.start()
            n1, n2, n3 = c.galera.nodes
            leader, token = c.leader()
            insert_rows(n1, 10, "before")
            wait_for(lambda: count_rows(n3) == 10, 10, what="rows replicated")
            # Staged (as test_galera_outage.py does): both gone before
            # any recovery may act.
            set_maintenance(c, leader, "")
            n2.stop()
            n3.stop()
            wait_for(lambda: n1.synced(1), 30 * SLOW, interval=0.2,
                     what="node-1 a Primary of one")
            insert_rows(n1, 5, "alone")
            set_maintenance(c, leader, "", clear=True)
            t_clear = time.time_ns()
            admin = c.admin_pb2

            def both_started():
                got, _ = history(c, leader)
                return got if len(got) >= 2 and all(s != "RUNNING" for _, _, s in got) \
                    else None
            wait_for(both_started, 120 * SLOW, interval=0.5, what="two starts")
            for n in (n2, n3):
                n.adopt()
            wait_for(lambda: all(n.synced(3) for n in c.galera.nodes), 60 * SLOW,
                     interval=0.2, what="three Synced members")
            for n in c.galera.nodes:
                assert count_rows(n) == 15, n.n
            time.sleep(2)
            got, recs = history(c, leader)
            assert sorted(got) == [("node-2", "start", "SUCCEEDED"),
                                   ("node-3", "start", "SUCCEEDED")], got
            for r in recs:
                assert r.fencing_token == token and r.procedure == "" and r.attempt == 1, r
            assert not [r for r in recs if r.action == "bootstrap_cluster"]
            # At once, for the survivor's view without them, not after
            # the 15 s kept for a failed member still in the view.
            first = min(r.started_unix_nano for r in recs)
            assert first - t_clear < 10 * 10**9, (first - t_clear) / 1e9
            assert admin.ActionState.Name(recs[0].state) == "ACTION_STATE_SUCCEEDED"
        finally:
            c.stop()
