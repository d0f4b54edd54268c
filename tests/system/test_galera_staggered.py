"""Two Galera members failing a few seconds apart, on a real three-node
MariaDB Galera cluster with etcd, troika-coord and troika-agent on each
emulated node (test_galera_outage.py's OutageCluster):

node-2's mysqld is killed -9 and its own recovery starts it; while that
start waits for the new mariadbd to answer, node-3's mysqld is killed
too. node-1 is left alone, non-Primary, and node-2's new incarnation
cannot join: the Primary component can only re-form with node-3 (the
members of the last Primary view, pc.recovery). Before, node-2's start
waited out its action timeout (90 s) and locked, and with it the whole
cluster, until an operator acknowledged it. Now the leader's cluster
procedure goes around the running start: positions of node-1 and node-3
only, node-3 started without waiting, and Galera re-forms the Primary by
itself; node-2's start then ends SUCCEEDED. Exact history on all three
coordinators, every row on every member, IST and no SST, node-1 never
restarted, and a poller on every member finds never two Primary
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
from test_galera_partition import Poller, second_primaries
from test_galera_survivor import NIL
from test_recovery_galera import count_rows, insert_rows
from test_recovery_galera import pb  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(ETCD),
                                reason="etcd-server is not installed")
SLOW = 3 if SANITIZED else 1


def test_second_member_fails_while_the_first_is_started(procs, tmp_path, pb):  # noqa: F811
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        c = OutageCluster(procs, tmp_path, pb, policy=POLICY)
        try:
            c.start()
            run_staggered(c)
        finally:
            c.stop()


def run_staggered(c):
    n1, n2, n3 = c.galera.nodes
    admin = c.admin_pb2
    leader, token = c.leader()
    insert_rows(n1, 20, "before")
    wait_for(lambda: all(count_rows(n) == 20 for n in (n1, n2, n3)), 10,
             what="rows everywhere")
    uuid = n1.status("wsrep_cluster_state_uuid")
    assert uuid and uuid != NIL, uuid
    n1_pid = n1.pid()
    poller = Poller(c.galera.nodes)
    poller.start()
    wait_for(lambda: min(poller.answers().values()) >= 5, 10 * SLOW,
             what="the poller's first answers")
    offsets = [n.log_size() for n in c.galera.nodes]

    t_kill = time.monotonic()
    n2.kill()
    # node-2's own recovery starts it; its new server is on its way.
    wait_for(lambda: [(a, s) for _, a, s in history(c, leader)[0]] == [("start", "RUNNING")],
             30 * SLOW, interval=0.1, what="node-2's own start")
    wait_for(lambda: n2.find() != [], 10 * SLOW, interval=0.1, what="node-2's new mariadbd")
    time.sleep(1.0)
    n3.kill()
    t_kill3 = time.monotonic()
    print(f"node-3 killed {t_kill3 - t_kill:.1f} s after node-2")
    # Not vacuous: node-1 alone loses its Primary, with node-2's start
    # still running.
    wait_for(lambda: n1.status("wsrep_cluster_status") == "non-Primary", 30 * SLOW,
             interval=0.2, what="node-1 non-Primary")
    got, _ = history(c, leader)
    assert got[0] == ("node-2", "start", "RUNNING"), got

    try:
        proc = wait_for(lambda: procedure_done(c, leader), 120 * SLOW, interval=0.5,
                        what="the procedure to end")
    except AssertionError:
        print("history:", history(c, leader)[0])
        raise
    for n in (n2, n3):
        n.adopt()
    wait_for(lambda: all(n.synced(3) for n in c.galera.nodes), 60 * SLOW, interval=0.2,
             what="three Synced members")
    t_synced = time.monotonic()
    print(f"node-3's kill to three Synced members: {t_synced - t_kill3:.1f} s")
    # node-2's own start ends by itself, once it could join.
    wait_for(lambda: all(s != "RUNNING" for _, _, s in history(c, leader)[0]), 30 * SLOW,
             interval=0.5, what="node-2's start to end")

    for n in c.galera.nodes:
        assert count_rows(n) == 20, n.n
        assert n.status("wsrep_cluster_state_uuid") == uuid, n.n
    for n, offset in zip(c.galera.nodes, offsets):
        log = n.log_since(offset)
        assert "SST completed" not in log, log[-3000:]
    assert n1.pid() == n1_pid, "node-1 was restarted"
    time.sleep(2)
    poller.stop()
    bad = second_primaries(poller.rounds, uuid)
    assert not bad, bad[:5]
    assert any(r[1] is not None and r[1]["status"] == "non-Primary"
               for _, _, r in poller.rounds), "never saw node-1 non-Primary"
    assert not poller.errors, poller.errors

    got, recs = history(c, leader)
    print("history:", got, proc.message)
    assert got == [
        ("node-2", "start", "SUCCEEDED"),
        ("", "bootstrap_cluster", "SUCCEEDED"),
        ("node-1", "position", "SUCCEEDED"),
        ("node-3", "position", "SUCCEEDED"),
        ("node-3", "start", "SUCCEEDED"),
    ], got
    assert "re-formed by itself" in proc.message, proc.message
    assert admin.ActionState.Name(proc.state) == "ACTION_STATE_SUCCEEDED"
    starts = {r.node: list(r.args) for r in recs if r.action == "start"}
    assert starts == {"node-2": [], "node-3": ["nowait"]}, starts
    src = {r.node: {f.name: f.value for f in r.fields}["source"]
           for r in recs if r.action == "position"}
    assert src["node-1"] == "server" and src["node-3"] in ("wsrep-recover", "grastate"), src
    for r in recs:
        assert r.fencing_token == token and r.coordinator == f"coord-{leader}", r
    steps = [r for r in recs if r.node and r.action != "start" or r.node == "node-3"]
    assert all(r.procedure == proc.id and r.cluster == "shop-db" for r in steps), steps
    own = [r for r in recs if r.node == "node-2"]
    assert len(own) == 1 and own[0].procedure == "" and own[0].attempt == 1, own
    time.sleep(1)
    for n in (1, 2, 3):
        assert history(c, n)[0] == got, n
