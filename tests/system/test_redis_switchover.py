"""Issue 6, a planned Redis switchover (`troikactl switchover`), on three
real redis-servers (node-1 the primary, node-2 and node-3 its replicas)
with etcd, troika-coord and troika-agent on each emulated node
(cluster.py, and the cluster of test_redis_failover.py):

while a client writes numbered keys to whichever server is the primary
(retrying a write that gets READONLY or a broken connection on the new
one), `switchover cache --to node-2` -> the leader asks every member for
its role, node-1 hands over to node-2 (Redis' FAILOVER: writes paused
until node-2 has them all), node-3 is repointed; node-2 is the master,
node-1 and node-3 replicate from it, no acknowledged write is lost, and
every coordinator names node-2. Then `switchover cache --wait` (no --to)
moves the role on to the replica with the highest offset. The exact
action history is asserted on every coordinator; the refusals (a --to
that is no member, a second switchover while one is open, the primary
as target, a coordinator that does not lead, an unknown cluster) are
asserted with their gRPC codes and messages.

Ports: etcd 2379/2380 on 127.0.1.1-3, Redis 6390, the rest picked free.
"""
import fcntl
import os
import re
import socket
import threading
import time

import grpc
import pytest

from cluster import ETCD_LOCK, IPS, REDIS_PORT
from conftest import SANITIZED, wait_for
from redis_server import RedisError, _encode, _read, command
from test_etcd import ETCD
from test_redis_failover import (LAG_RULE, POLICY, ReplicatedCluster, drop_lag_rule, history,
                                 ipt, pb, write_then_wait)  # noqa: F401
from test_troikactl import ctl

pytestmark = pytest.mark.skipif(not os.path.exists(ETCD),
                                reason="etcd-server is not installed")
SLOW = 3 if SANITIZED else 1
# The handover's FAILOVER TIMEOUT: half the policy's action_timeout (10s).
HANDOVER_MS = "5000"


class Writer(threading.Thread):
    """SET k<i> i, i = 0, 1, ..., on one connection to the server that is
    the master now; a write that fails (READONLY, a broken connection) is
    made again, on the master found anew. Only a write answered OK is
    acknowledged."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.acked = 0  # k0 .. k<acked-1> were acknowledged
        self.retries = 0
        self.readonly = 0
        self.error = None

    def master(self):
        for n in (1, 2, 3):
            try:
                if "role:master" in command(IPS[n], REDIS_PORT, "INFO", "replication",
                                            timeout=1):
                    return n
            except (OSError, ConnectionError, RedisError):
                pass
        return None

    def run(self):
        s = f = None
        try:
            while not self.stop.is_set():
                if s is None:
                    n = self.master()
                    if n is None:
                        time.sleep(0.01)
                        continue
                    s = socket.create_connection((IPS[n], REDIS_PORT), timeout=10)
                    f = s.makefile("rb")
                i = self.acked
                try:
                    s.sendall(_encode("SET", f"k{i}", str(i)))
                    if _read(f) == "OK":
                        self.acked = i + 1
                        continue
                except RedisError as e:
                    if not str(e).startswith("READONLY"):
                        raise
                    self.readonly += 1
                except (OSError, ConnectionError):
                    pass
                self.retries += 1
                s.close()
                s = f = None
        except Exception as e:  # the test reports it
            self.error = e
        finally:
            if s is not None:
                s.close()

    def wait_for_more(self, n):
        start = self.acked
        wait_for(lambda: self.error is not None or self.acked >= start + n, 10,
                 what=f"{n} more acknowledged writes")
        assert self.error is None, self.error


def switchover_rpc(c, n, cluster, to="", by="test"):
    a = c.admin_pb2
    return c.rpc(n, "Switchover", a.SwitchoverRequest(cluster=cluster, to_node=to,
                                                      requested_by=by),
                 a.SwitchoverResponse)


def refused(c, n, cluster, to=""):
    with pytest.raises(grpc.RpcError) as e:
        switchover_rpc(c, n, cluster, to)
    return e.value.code(), e.value.details()


def cluster_status(c, n):
    return {x.name: x for x in c.status(n).clusters}["cache"]


def info(n):
    text = command(IPS[n], REDIS_PORT, "INFO", "replication")
    return dict(line.split(":", 1) for line in text.splitlines()
                if ":" in line and not line.startswith("#"))


def final(c, leader, pid):
    def done():
        for r in c.actions(leader):
            if r.id == pid and r.state != c.admin_pb2.ACTION_STATE_RUNNING:
                return r
        return None
    return wait_for(done, 30 * SLOW, interval=0.05, what=f"switchover {pid} to end")


def check_primary(c, leader, new, others, proc, writer):
    """new is the master, others replicate from it with the link up, every
    coordinator (and troikactl) names it, no acknowledged write is lost."""
    admin = c.admin_pb2
    assert admin.ActionState.Name(proc.state) == "ACTION_STATE_SUCCEEDED", proc.message
    assert {f.name: f.value for f in proc.fields} == {
        "primary": f"node-{new}", "address": f"{IPS[new]}:{REDIS_PORT}"}, proc.fields
    assert info(new)["role"] == "master"
    for m in others:
        wait_for(lambda: info(m).get("master_host") == IPS[new] and
                 info(m).get("master_link_status") == "up", 10,
                 what=f"node-{m} following node-{new}")
    for n in (1, 2, 3):
        wait_for(lambda: cluster_status(c, n).primary == f"node-{new}", 10,
                 what=f"coord-{n} naming node-{new}")
        cl = cluster_status(c, n)
        assert (cl.primary_address, cl.procedure_id, cl.procedure_state) == (
            f"{IPS[new]}:{REDIS_PORT}", proc.id, admin.ACTION_STATE_SUCCEEDED), (n, cl)
    # Writes go on, to the new primary.
    writer.wait_for_more(50)
    acked = writer.acked

    def lost(n):
        got = command(IPS[n], REDIS_PORT, "MGET", *[f"k{i}" for i in range(acked)])
        return [i for i in range(acked) if got[i] != str(i)]
    # The new primary has every one at once; its replicas soon.
    assert not lost(new), (new, lost(new)[:20], len(lost(new)))
    for n in others:
        wait_for(lambda: not lost(n), 10, what=f"node-{n} with every acknowledged write")


def test_planned_switchover(procs, tmp_path, pb):  # noqa: F811
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        c = ReplicatedCluster(procs, tmp_path, pb, policy=POLICY)
        writer = Writer()
        try:
            c.start()
            run_switchovers(c, writer)
        finally:
            writer.stop.set()
            writer.join(15)
            c.stop()


def run_switchovers(c, writer):
    leader, token = c.leader()
    follower = next(n for n in (1, 2, 3) if n != leader)
    targets = ",".join(c.coord_target(n) for n in (1, 2, 3))
    for n in (1, 2, 3):
        assert cluster_status(c, n).primary == "node-1"
    writer.start()
    writer.wait_for_more(100)

    # Refusals: nothing is written for any of them.
    rc, out, err = ctl("--coordinator", targets, "switchover", "cache", "--to", "node-9")
    assert (rc, out) == (1, ""), (rc, out, err)
    assert re.search(r"INVALID_ARGUMENT: node-9 is not a member of cluster cache\n$",
                     err), err
    assert refused(c, leader, "nope") == (
        grpc.StatusCode.NOT_FOUND, 'no cluster "nope" in recovery.clusters')
    assert refused(c, leader, "cache", "node-1") == (
        grpc.StatusCode.FAILED_PRECONDITION, "node-1 is the primary of cluster cache already")
    assert refused(c, follower, "cache", "node-2") == (
        grpc.StatusCode.FAILED_PRECONDITION, f"not the leader; ask coord-{leader}")
    assert c.actions(leader) == []

    # The switchover to node-2, and at once a second one: refused.
    pid = switchover_rpc(c, leader, "cache", "node-2", by="alice").id
    code, details = refused(c, leader, "cache", "node-3")
    assert code == grpc.StatusCode.FAILED_PRECONDITION, (code, details)
    assert details == f"cluster cache's switchover {pid} is still running", details
    proc = final(c, leader, pid)
    check_primary(c, leader, 2, (1, 3), proc, writer)
    hand = [r for r in c.actions(leader) if r.procedure == pid and r.action == "handover"]
    print(f"switchover {(proc.ended_unix_nano - proc.started_unix_nano) / 1e6:.1f} ms, "
          f"of which the handover {hand[0].duration_nano / 1e6:.1f} ms")
    assert proc.reason == ("switchover requested by alice: node-1 hands the primary "
                           "role over to node-2"), proc.reason
    first = [
        ("", "switchover", "node-1 node-2", "SUCCEEDED"),
        ("node-1", "role", "", "SUCCEEDED"),
        ("node-2", "role", "", "SUCCEEDED"),
        ("node-3", "role", "", "SUCCEEDED"),
        ("node-1", "handover", f"{IPS[2]} {REDIS_PORT} {HANDOVER_MS}", "SUCCEEDED"),
        ("node-3", "replicate", f"{IPS[2]} {REDIS_PORT}", "SUCCEEDED"),
    ]
    rc, out, _ = ctl("--coordinator", c.coord_target(follower), "status")
    assert rc == 0 and re.search(
        rf"cluster +cache \(redis\), primary node-2 {IPS[2]}:{REDIS_PORT}, last procedure "
        rf"{pid} SUCCEEDED", out), out

    # Without --to, through troikactl, waiting: the replica with the
    # highest offset (node-1 or node-3) becomes the primary.
    rc, out, err = ctl("--coordinator", targets, "switchover", "cache", "--wait",
                       "--by", "bob")
    assert rc == 0, (rc, out, err)
    m = re.fullmatch(r"switchover (\S+) started\nswitchover \1 SUCCEEDED: node-2 handed "
                     r"the primary role over to node-(\d); node-2 and the other replicas "
                     r"follow it\n", out)
    assert m, out
    pid2, new = m.group(1), int(m.group(2))
    assert new in (1, 3), out
    other = 4 - new
    proc2 = final(c, leader, pid2)
    check_primary(c, leader, new, (2, other), proc2, writer)
    second = [
        ("", "switchover", "node-2", "SUCCEEDED"),
        ("node-1", "role", "", "SUCCEEDED"),
        ("node-2", "role", "", "SUCCEEDED"),
        ("node-3", "role", "", "SUCCEEDED"),
        ("node-2", "handover", f"{IPS[new]} {REDIS_PORT} {HANDOVER_MS}", "SUCCEEDED"),
        (f"node-{other}", "replicate", f"{IPS[new]} {REDIS_PORT}", "SUCCEEDED"),
    ]
    # The other replica's offset was not above the new primary's.
    roles = {r.node: {f.name: f.value for f in r.fields} for r in c.actions(leader)
             if r.procedure == pid2 and r.action == "role"}
    assert int(roles[f"node-{new}"]["slave_repl_offset"]) >= \
        int(roles[f"node-{other}"]["slave_repl_offset"]), roles

    # Nothing else happened: no restart, no failover, no rejoin, on
    # every coordinator's copy of the records.
    time.sleep(2)
    for n in (1, 2, 3):
        got, recs = history(c, n)
        assert got == first + second, (n, got)
        for r in recs:
            assert (r.fencing_token, r.coordinator, r.cluster) == (
                token, f"coord-{leader}", "cache"), r
        assert [r.procedure for r in recs] == [""] + [pid] * 5 + [""] + [pid2] * 5
    events = c.events(leader)
    changed = [(e.node, e.message) for e in events if e.kind == "primary_changed"]
    assert [n for n, _ in changed] == ["node-2", f"node-{new}"], changed
    assert "node-1 handed the role over (switchover)" in changed[0][1], changed
    assert not [e for e in events if e.kind == "recovery_escalated"], events
    for e in events:
        if e.kind in ("verdict", "recovery_held"):
            print("during the switchovers:", e.kind, e.node, e.message)
    writer.stop.set()
    writer.join(15)
    assert writer.error is None, writer.error
    assert writer.readonly > 0, "no write met the handover: the test proved nothing"
    print(f"{writer.acked} writes acknowledged, {writer.retries} made again "
          f"({writer.readonly} READONLY)")
    astray_replica_rejoins(c, leader, new, other)
    after_operator_swap(c, leader, new)


def astray_replica_rejoins(c, leader, primary, replica):
    """An operator makes a replica a master by hand (REPLICAOF NO ONE).
    Its check stays OK, so no opinion changes: the leader notices from
    the result's role alone and makes it a replica of the primary again,
    with one replicate record and nothing else."""
    admin = c.admin_pb2
    before = {r.id for r in c.actions(leader)}
    assert command(IPS[replica], REDIS_PORT, "REPLICAOF", "NO", "ONE") == "OK"

    def new_records():
        return [r for r in c.actions(leader) if r.id not in before]

    def ended():
        recs = new_records()
        return recs if recs and all(r.state != admin.ACTION_STATE_RUNNING
                                    for r in recs) else None
    wait_for(ended, 15, interval=0.2, what=f"node-{replica} made a replica again")
    wait_for(lambda: info(replica).get("master_host") == IPS[primary] and
             info(replica).get("master_link_status") == "up", 10,
             what=f"node-{replica} following node-{primary}")
    time.sleep(1)
    assert [(r.node, r.action, list(r.args), admin.ActionState.Name(r.state), r.cluster)
            for r in new_records()] == [
        (f"node-{replica}", "replicate", [IPS[primary], str(REDIS_PORT)],
         "ACTION_STATE_SUCCEEDED", "cache")], new_records()


def after_operator_swap(c, leader, primary):
    """Someone swaps roles by hand behind troika's back: node-2 made a
    master and the records' primary its replica. The records now name a
    replica as the primary: troika must not repoint node-2 to it (two
    replicas of each other, no master at all). Nothing is done, though
    node-2's result as a master may reach the leader before the records'
    primary's result as a replica."""
    n_before = len(c.actions(leader))
    assert command(IPS[2], REDIS_PORT, "REPLICAOF", "NO", "ONE") == "OK"
    assert command(IPS[primary], REDIS_PORT, "REPLICAOF", IPS[2], str(REDIS_PORT)) == "OK"
    wait_for(lambda: info(primary).get("master_link_status") == "up", 10,
             what=f"node-{primary} following node-2")

    def role(n, node):
        x = [x for x in c.status(n).nodes if x.node == node][0]
        return {f.name: f.value for f in x.checks[0].fields}.get("role")
    wait_for(lambda: role(leader, "node-2") == "master" and
             role(leader, f"node-{primary}") == "replica", 10,
             what="the leader hearing of the new roles")
    # The leader looks again at each result (astray_replica_rejoins shows
    # it does): two seconds of results, and nothing is done.
    time.sleep(2)
    assert len(c.actions(leader)) == n_before, c.actions(leader)[:3]
    assert info(2)["role"] == "master"


# A galera cluster beside, for the refusal of its kind; it has no members'
# checks, so nothing is ever done for it.
POLICY_WITH_GALERA = POLICY + """\
    - name: db
      kind: galera
      check: db
      nodes: [node-1, node-2, node-3]
"""


def test_switchover_refused_or_failed(procs, tmp_path, pb):  # noqa: F811
    """The refusals that need a state (a galera cluster, maintenance, a
    member down), and a handover Redis gives up: node-2 cannot catch up
    (an iptables rule drops node-1's replication stream to it), so the
    FAILOVER times out and node-1 stays the primary, its writes paused
    only for that long."""
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        c = ReplicatedCluster(procs, tmp_path, pb, policy=POLICY_WITH_GALERA,
                              restart_argv=["/bin/false"])
        # Under the lock no other run can hold the rule: a copy is what a
        # killed run left.
        drop_lag_rule()
        try:
            c.start()
            run_refusals(c)
        finally:
            drop_lag_rule()
            c.stop()


def run_refusals(c):
    admin = c.admin_pb2
    leader, token = c.leader()
    assert refused(c, leader, "db") == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "cluster db is of kind galera: a switchover is for redis clusters")

    # A member in maintenance.
    m = admin.Maintenance(node="node-3", until_unix_nano=time.time_ns() + 60 * 10**9,
                          reason="test", by="test")
    c.rpc(leader, "SetMaintenance", admin.SetMaintenanceRequest(maintenance=m),
          admin.SetMaintenanceResponse)
    assert refused(c, leader, "cache", "node-2") == (
        grpc.StatusCode.FAILED_PRECONDITION, "node-3 is in maintenance")
    c.rpc(leader, "SetMaintenance", admin.SetMaintenanceRequest(maintenance=m, clear=True),
          admin.SetMaintenanceResponse)

    # node-2 falls behind (its link stays up: repl-timeout is 60 s).
    ipt("-I", *LAG_RULE)
    assert write_then_wait(IPS[1], 0, 100, 1) == 1
    t0 = time.monotonic()
    targets = ",".join(c.coord_target(n) for n in (1, 2, 3))
    rc, out, err = ctl("--coordinator", targets, "switchover", "cache", "--to", "node-2",
                       "--wait")
    took = time.monotonic() - t0
    m = re.fullmatch(r"switchover (\S+) started\nswitchover \1 FAILED: (.*)\n", out)
    assert rc == 1 and m, (rc, out, err)
    pid = m.group(1)
    proc = final(c, leader, pid)
    assert proc.message == m.group(2)
    assert admin.ActionState.Name(proc.state) == "ACTION_STATE_FAILED", proc
    assert re.fullmatch(
        rf"the handover failed: {IPS[1]}:{REDIS_PORT}: FAILOVER TO {IPS[2]} {REDIS_PORT} gave "
        rf"up, still the master: the target did not catch up or answer within "
        rf"{HANDOVER_MS} ms; node-1 is still the primary", proc.message), proc.message
    assert {f.name: f.value for f in proc.fields} == {
        "primary": "node-1", "address": f"{IPS[1]}:{REDIS_PORT}"}, proc.fields
    assert took >= int(HANDOVER_MS) / 1000, took
    assert info(1)["role"] == "master"
    # Writable again, and nobody else is a master.
    assert command(IPS[1], REDIS_PORT, "SET", "after", "1") == "OK"
    assert [info(n)["role"] for n in (2, 3)] == ["slave", "slave"]
    drop_lag_rule()
    for n in (1, 2, 3):
        cl = cluster_status(c, n)
        assert (cl.primary, cl.procedure_id, cl.procedure_state) == (
            "node-1", pid, admin.ACTION_STATE_FAILED), (n, cl)
    want = [
        ("", "switchover", "node-1 node-2", "FAILED"),
        ("node-1", "role", "", "SUCCEEDED"),
        ("node-2", "role", "", "SUCCEEDED"),
        ("node-3", "role", "", "SUCCEEDED"),
        ("node-1", "handover", f"{IPS[2]} {REDIS_PORT} {HANDOVER_MS}", "FAILED"),
    ]
    for n in (1, 2, 3):
        got, recs = history(c, n)
        assert got == want, (n, got)
        assert all(r.fencing_token == token for r in recs)
    assert not [e for e in c.events(leader) if e.kind == "primary_changed"]

    # A member whose server is down (and stays down).
    c.kill_redis(3)
    wait_for(lambda: [x for x in c.status(leader).nodes if x.node == "node-3"][0]
             .checks[0].status == c.agent_pb2.CHECK_STATUS_CRITICAL, 10,
             what="node-3 CRITICAL at the leader")
    code, details = refused(c, leader, "cache")
    assert code == grpc.StatusCode.FAILED_PRECONDITION, (code, details)
    assert re.fullmatch(r"node-3 (is not OK: connection to 127\.0\.1\.3:6390 refused|"
                        r"has an action of its own running)", details), details
