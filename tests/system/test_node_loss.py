"""Issue 6, whole-node loss, on the three emulated nodes of
test_redis_failover.py (etcd, troika-coord, troika-agent and a Redis on
each; node-1's Redis the primary):

every process of node-1 is stopped (SIGSTOP: etcd, coordinator, agent,
Redis; a node that hangs or drops off the network looks the same from
the others) -> the other two coordinators hold it lost (event node_lost),
its Redis is counted out and failed over to the replica with the highest
offset, node-1 is taken out of the load balancer's rotation (a real
HAProxy in front of a web server per node, watched by node-2's agent
with the haproxy plugin), nothing is done on node-1 itself; then node-1
is let go again -> node_returned, its coordinator (the old leader) acts on
nothing, its Redis, still a master with the old data, is made a replica
of the new primary, and once every check of node-1 is OK it is back in
rotation. The exact action history is asserted on every coordinator.

Ports: etcd 2379/2380 on 127.0.1.1-3, Redis 6390, the rest picked free.
"""
import fcntl
import os
import signal
import time

import pytest

from cluster import ETCD_LOCK, IPS, REDIS_PORT
from conftest import SANITIZED, wait_for
from redis_server import command
from test_etcd import ETCD
from test_haproxy import HAPROXY, Lb
from test_redis_failover import POLICY as FAILOVER_POLICY
from test_redis_failover import ReplicatedCluster, write_then_wait
from test_redis_failover import pb  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.skipif(not os.path.exists(ETCD),
                                 reason="etcd-server is not installed"),
              pytest.mark.skipif(not os.path.exists(HAPROXY),
                                 reason="haproxy is not installed")]
SLOW = 3 if SANITIZED else 1
KEYS = 100

# A lost node after 3 s without its agent's streams; the replicas give up
# on a silent primary after 6 s (repl-timeout: 60 s by default).
# node-2's agent watches the load balancer.
POLICY = FAILOVER_POLICY.replace("  policies:\n", "  nodes:\n    down_after: 3s\n"
                                 "    load_balancer: {check: lb, nodes: [node-2]}\n"
                                 "  policies:\n", 1)


class LossCluster(ReplicatedCluster):
    def start_redis(self, n):
        super().start_redis(n)
        command(IPS[n], REDIS_PORT, "CONFIG", "SET", "repl-timeout", "6")

    def start_services(self):
        super().start_services()
        # HAProxy (on 127.0.1.1, but no node's: it is not stopped) in
        # front of one web server per node.
        (self.run / "lb").mkdir(exist_ok=True)
        self.lb = Lb(self.procs, self.run / "lb")
        self.lb.start()
        wait_for(lambda: all(self.lb.stat_status(f"node-{i}") == "UP" for i in (1, 2, 3)),
                 10, what="all three web servers UP in haproxy")

    def checks_yaml(self, n):
        text = super().checks_yaml(n)
        if n == 2:
            text += (f"  - name: lb\n    plugin: haproxy\n    interval: 500ms\n"
                     f"    timeout: 500ms\n    address: \"ipv4@{IPS[1]}:{self.lb.admin}\"\n"
                     f"    backend: web\n")
        return text

    def node_pids(self, n):
        """Every process of node n: etcd member, coordinator, agent, Redis,
        web server."""
        return [self.etcd.members[n].pid, self.coords[n].pid, self.agents[n].pid,
                self.redis_pid(n), self.lb.backends[n].pid]


def history(c, n):
    admin = c.admin_pb2
    recs = sorted(c.actions(n), key=lambda r: r.id)
    return [(r.node, r.action, " ".join(r.args),
             admin.ActionState.Name(r.state)[len("ACTION_STATE_"):]) for r in recs], recs


def test_whole_node_stopped_then_back(procs, tmp_path, pb):  # noqa: F811
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        c = LossCluster(procs, tmp_path, pb, policy=POLICY, restart_argv=["/bin/false"])
        stopped = []
        try:
            c.start()
            run_node_loss(c, stopped)
        finally:
            for pid in stopped:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            c.stop()


def run_node_loss(c, stopped):
    admin = c.admin_pb2
    assert write_then_wait(IPS[1], 0, KEYS, 2) == 2
    pids = c.node_pids(1)
    t0 = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)

    def leader():
        lead = c.leader(among=(2, 3))
        return lead if lead and lead[0] in (2, 3) else None
    new_leader, token = wait_for(leader, 30 * SLOW, interval=0.2, what="a leader of 2 and 3")

    def lost_everywhere():
        return all(any(e.kind == "node_lost" and e.node == "node-1" for e in c.events(n))
                   for n in (new_leader,))
    wait_for(lost_everywhere, 30 * SLOW, interval=0.5, what="node_lost for node-1")

    def failed_over():
        for r in c.actions(new_leader):
            if r.action == "failover" and r.state != admin.ACTION_STATE_RUNNING:
                return r
        return None
    proc = wait_for(failed_over, 60 * SLOW, interval=0.2, what="the failover to end")
    print(f"node-1 stopped to the failover's end: {time.monotonic() - t0:.1f} s")
    assert admin.ActionState.Name(proc.state) == "ACTION_STATE_SUCCEEDED", proc.message
    primary = {f.name: f.value for f in proc.fields}["primary"]
    other = "node-3" if primary == "node-2" else "node-2"
    p, o = int(primary[-1]), int(other[-1])
    assert c.info(p)["role"] == "master"
    wait_for(lambda: c.info(o).get("master_host") == IPS[p] and
             c.info(o).get("master_link_status") == "up", 10, what=f"{other} following")
    assert command(IPS[p], REDIS_PORT, "DBSIZE") == KEYS
    wait_for(lambda: c.lb.stat_status("node-1") == "MAINT", 30 * SLOW, interval=0.2,
             what="node-1 out of rotation (MAINT)")
    for _ in range(6):
        assert c.lb.request() in ("node-2", "node-3")

    # node-1 comes back: its coordinator, once leader, acts on nothing;
    # its Redis, a master with the old data, follows the new primary.
    t1 = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    stopped.clear()
    wait_for(lambda: c.info(1).get("master_host") == IPS[p] and
             c.info(1).get("master_link_status") == "up", 60 * SLOW, interval=0.2,
             what="node-1's Redis following the new primary")
    print(f"node-1 back to its Redis following: {time.monotonic() - t1:.1f} s")
    assert command(IPS[1], REDIS_PORT, "DBSIZE") == KEYS
    wait_for(lambda: c.lb.stat_status("node-1") == "UP", 30 * SLOW, interval=0.2,
             what="node-1 back in rotation")
    print(f"node-1 back to in rotation: {time.monotonic() - t1:.1f} s")
    wait_for(lambda: any(e.kind == "node_returned" and e.node == "node-1"
                         for e in c.events(new_leader)), 30 * SLOW, interval=0.5,
             what="node_returned for node-1")
    time.sleep(2)
    want = [
        ("", "failover", "node-1", "SUCCEEDED"),
        ("node-2", "role", "", "SUCCEEDED"),
        ("node-3", "role", "", "SUCCEEDED"),
        (primary, "promote", "", "SUCCEEDED"),
        (other, "replicate", f"{IPS[p]} {REDIS_PORT}", "SUCCEEDED"),
        ("node-1", "replicate", f"{IPS[p]} {REDIS_PORT}", "SUCCEEDED"),
    ]
    lb_want = [("node-2", "disable", "node-1", "SUCCEEDED"),
               ("node-2", "enable", "node-1", "SUCCEEDED")]
    for n in (1, 2, 3):
        def split(n=n):
            got, recs = history(c, n)
            return ([x for x in got if x[1] not in ("disable", "enable")],
                    [x for x in got if x[1] in ("disable", "enable")], got, recs)
        wait_for(lambda: split()[:2] == (want, lb_want), 10, interval=0.5,
                 what=f"coord-{n}'s history")
        _, _, got, recs = split()
        for r in recs:
            assert r.fencing_token == token, (n, r)
        # Back in rotation only after its Redis follows the new primary.
        assert got.index(lb_want[1]) > got.index(want[-1]), got
    for n in (1, 2, 3):
        cl = {x.name: x for x in c.status(n).clusters}["cache"]
        assert (cl.primary, cl.primary_address) == (primary, f"{IPS[p]}:{REDIS_PORT}"), (n, cl)
    # The node's loss, its return and the new primary are history in
    # etcd: every coordinator lists the leader's events (ListEvents).
    a = c.admin_pb2
    for n in (1, 2, 3):
        evs = c.rpc(n, "ListEvents", a.ListEventsRequest(
            kinds=["node_lost", "node_returned", "primary_changed"], limit=100),
            a.ListEventsResponse).events
        got = {(e.kind, e.node) for e in evs}
        assert got == {("node_lost", "node-1"), ("node_returned", "node-1"),
                       ("primary_changed", primary)}, (n, got)
        assert {(e.kind, e.coordinator) for e in evs} >= {
            ("node_lost", f"coord-{new_leader}"),
            ("primary_changed", f"coord-{new_leader}")}, (n, evs)
    # Nothing was done on node-1 while it was lost: held as a node.
    held = [e for e in c.events(new_leader) if e.kind == "recovery_held" and
            {f.name: f.value for f in e.fields}.get("reason") == "node_down"]
    assert [e.node for e in held] == ["node-1"], held
