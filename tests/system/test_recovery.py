"""Quorum-confirmed recovery on three emulated nodes (issue 5): etcd, a
troika-coord and a troika-agent on each of 127.0.1.1-3, and a real Redis
the agents watch (cluster.py). Every test asserts the exact action
history: the expected actions, once, by the leader, with its token, and
nothing else.

Ports 2379/2380 on 127.0.1.1-3 are fixed (etcd): one copy at a time.
"""
import fcntl
import os
import signal
import time

import grpc
import pytest

from cluster import ETCD_LOCK, REDIS_SERVER, Cluster
from conftest import SANITIZED, wait_for
from grpc_echo import generate_modules
from test_etcd import ETCD
from test_uplink import PyCoordinator

pytestmark = pytest.mark.skipif(not os.path.exists(ETCD),
                                reason="etcd-server is not installed")
SLOW = 3 if SANITIZED else 1


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    _, agent_pb2, admin_pb2 = generate_modules(tmp_path_factory.mktemp("pb"))
    return agent_pb2, admin_pb2


@pytest.fixture
def cluster_factory(procs, tmp_path, pb):
    made = []
    # etcd's fixed ports: one cluster on this machine at a time (the lock
    # test_etcd.py takes too).
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)

        def make(cls=Cluster, **kw):
            c = cls(procs, tmp_path, pb, **kw)
            made.append(c)
            c.start()
            return c
        yield make
        for c in made:
            c.stop()


def state_name(pb, rec):
    return pb[1].ActionState.Name(rec.state)


def test_killed_service_restarted_once_after_quorum(cluster_factory, pb):
    """kill -9 redis on node 2: the leader restarts it once, with its token,
    after two coordinators agreed; and a command replayed later with an
    older token is refused by the agent."""
    py = PyCoordinator(pb, token=0)
    try:
        c = cluster_factory(extra_targets={2: [py.target]})
        py.next("hello")
        py.welcome()
        leader, token = c.leader()
        assert token > 0
        t0 = c.kill_redis(2)

        def done():
            recs = c.actions(leader)
            return recs if recs and recs[0].state == pb[1].ACTION_STATE_SUCCEEDED else None
        recs = wait_for(done, 20 * SLOW, what="the restart recorded as succeeded")
        wait_for(lambda: c.redis_ping(2), 10, what="redis on node 2 answering again")
        took = time.monotonic() - t0
        print(f"kill -9 to succeeded record and PING: {took * 1000:.0f} ms")
        # Nothing more happens: the service is back, the failure is over.
        time.sleep(3)
        for n in (1, 2, 3):
            recs = c.actions(n)
            assert len(recs) == 1, [(r.id, r.node, r.check, r.action) for r in recs]
            r = recs[0]
            assert (r.node, r.check, r.action, r.attempt) == ("node-2", "redis", "restart", 1)
            assert state_name(pb, r) == "ACTION_STATE_SUCCEEDED"
            assert r.coordinator == f"coord-{leader}" and r.fencing_token == token
            assert r.finished_by == f"coord-{leader}"
            assert len(set(r.opinions)) >= 2
            assert pb[0].CommandOutcome.Name(r.outcome) == "COMMAND_OUTCOME_SUCCEEDED"
        m = c.agent_metrics(2)
        assert m[("troika_agent_commands_total",
                  frozenset({"outcome": "succeeded"}.items()))] == 1
        assert m[("troika_agent_fencing_token", frozenset())] == token
        for n in (1, 3):
            assert c.agent_metrics(n)[("troika_agent_commands_total",
                                       frozenset({"outcome": "accepted"}.items()))] == 0
        kinds = [e.kind for e in c.events(leader)]
        assert kinds.count("verdict") == 1 and kinds.count("action_started") == 1
        assert kinds.count("action_done") == 1
        # The history in etcd: any coordinator shows every coordinator's.
        other = [n for n in (1, 2, 3) if n != leader][0]
        a = pb[1]
        evs = c.rpc(other, "ListEvents", a.ListEventsRequest(
            kinds=["verdict", "action_started", "action_done", "opinion"], nodes=["node-2"]),
            a.ListEventsResponse).events
        mine = sorted(e.kind for e in evs if e.coordinator == f"coord-{leader}" and
                      e.kind != "opinion")
        assert mine == ["action_done", "action_started", "verdict"], mine
        failed_by = {e.coordinator for e in evs if e.kind == "opinion" and
                     {f.name: f.value for f in e.fields}["opinion"] == "failed"}
        assert len(failed_by) >= 2, failed_by
        assert [e.time_unix_nano for e in evs] == sorted((e.time_unix_nano for e in evs),
                                                         reverse=True)

        # A command replayed with an older token: refused by the agent.
        py.command("replayed-1", "redis", "restart", token=token - 1)
        _, res = py.next("command_result", where=lambda r: r.id == "replayed-1")
        assert pb[0].CommandOutcome.Name(res.outcome) == "COMMAND_OUTCOME_REJECTED_STALE_TOKEN"
        assert f"lower than {token}" in res.message
        assert c.agent_metrics(2)[("troika_agent_commands_total", frozenset(
            {"outcome": "rejected_stale_token"}.items()))] == 1
    finally:
        py.stop()


def test_no_etcd_quorum_no_action(cluster_factory, pb):
    """Two etcd members stopped: the coordinators say why they cannot
    decide, and a killed service is left alone until quorum is back."""
    c = cluster_factory()
    stopped = [n for n in (1, 2, 3) if n != 3]
    for n in stopped:
        c.etcd.kill(n)

    def no_quorum():
        s = c.status(3)
        return not s.quorum and s.quorum_reason
    reason = wait_for(no_quorum, 20 * SLOW, what="coord-3 without quorum")
    print(f"coord-3 says: {reason}")
    c.kill_redis(2)
    time.sleep(8)
    for n in (1, 2, 3):
        assert c.actions(n) == []
        assert not c.status(n).quorum
    assert not c.redis_ping(2)
    # Quorum back: now the failure is handled, once.
    for n in stopped:
        c.etcd.start(n)
    wait_for(lambda: c.redis_ping(2), 40 * SLOW, what="redis restarted once quorum is back")
    time.sleep(2)
    leader = c.leader()[0]
    recs = c.actions(leader)
    assert len(recs) == 1 and recs[0].node == "node-2"


def test_flapping_service_climbs_the_ladder_then_escalates(cluster_factory, pb):
    """ladder [restart, restart, alert]: two restarts, then only an alert."""
    c = cluster_factory()
    leader = c.leader()[0]
    for attempt in (1, 2):
        c.kill_redis(2)
        wait_for(lambda: len(c.actions(leader)) == attempt and
                 c.actions(leader)[0].state == pb[1].ACTION_STATE_SUCCEEDED and
                 c.redis_ping(2), 30 * SLOW, what=f"restart {attempt}")
        # Past the cooldown (1 s) and the backoff (1 s).
        time.sleep(2.5)
    c.kill_redis(2)
    wait_for(lambda: "recovery_escalated" in [e.kind for e in c.events(leader)],
             20 * SLOW, what="escalation")
    time.sleep(3)
    recs = c.actions(leader)
    assert [r.attempt for r in recs] == [2, 1]
    assert all(r.action == "restart" for r in recs)
    assert not c.redis_ping(2)


def test_leader_killed_during_action(cluster_factory, pb):
    """The restart takes 4 s; the leader is killed 1 s into it. A new
    leader takes the record over: the agent runs the restart once and
    answers the new leader, which completes the record."""
    c = cluster_factory(restart_argv=["/bin/sh", "-c",
                                      f"sleep 4; exec {REDIS_SERVER} {{conf}}"])
    leader, token = c.leader()
    c.kill_redis(2)
    wait_for(lambda: c.actions(leader) and
             c.actions(leader)[0].state == pb[1].ACTION_STATE_RUNNING, 20 * SLOW,
             what="the action running")
    time.sleep(1)
    c.kill_coord(leader)
    t0 = time.monotonic()
    others = [n for n in (1, 2, 3) if n != leader]
    new = wait_for(lambda: c.leader(among=others), 20 * SLOW, what="a new leader")
    print(f"new leader coord-{new[0]} after {time.monotonic() - t0:.2f} s")
    assert new[1] > token

    def done():
        recs = c.actions(new[0])
        return recs if recs and recs[0].state == pb[1].ACTION_STATE_SUCCEEDED else None
    recs = wait_for(done, 30 * SLOW, what="the record completed by the new leader")
    assert len(recs) == 1
    r = recs[0]
    assert r.coordinator == f"coord-{leader}" and r.fencing_token == token
    assert r.finished_by == f"coord-{new[0]}"
    assert c.redis_ping(2)
    m = c.agent_metrics(2)
    # Run once: one ACCEPTED, one SUCCEEDED (a repeat answer is not counted
    # as accepted again).
    assert m[("troika_agent_commands_total", frozenset({"outcome": "accepted"}.items()))] == 1
    time.sleep(2)
    assert len(c.actions(new[0])) == 1


def test_maintenance_then_a_locked_action_acknowledged(cluster_factory, pb):
    """Inside maintenance nothing happens; after it, an action that times
    out is LOCKED and blocks every further recovery of the check until an
    operator acknowledges it; then the next rung runs."""
    agent_pb2, admin = pb
    policy = """\
  policies:
    - match: "redis*"
      fail_after: 3
      certain_after: 2
      ladder: [restart, restart, alert]
      max_attempts: 3
      backoff: 0s
      cooldown: 0s
      action_timeout: 2s
"""
    # The first restart hangs past the 2 s action timeout; later ones work.
    flag = "/tmp/troika-test-hang-once"
    with open(flag, "w"):
        pass
    c = cluster_factory(policy=policy, restart_argv=[
        "/bin/sh", "-c", f"if rm {flag} 2>/dev/null; then sleep 30; fi; "
        f"exec {REDIS_SERVER} {{conf}}"])
    leader, token = c.leader()
    until = time.time_ns() + 3600 * 10**9
    m = admin.Maintenance(node="node-2", until_unix_nano=until, reason="kernel update",
                          by="test")
    r = c.rpc(3, "SetMaintenance", admin.SetMaintenanceRequest(maintenance=m),
              admin.SetMaintenanceResponse)
    assert [(x.node, x.check, x.reason) for x in r.maintenance] == [
        ("node-2", "", "kernel update")]
    wait_for(lambda: [x.node for x in c.status(leader).maintenance] == ["node-2"], 10,
             what="the leader seeing the maintenance")
    c.kill_redis(2)
    wait_for(lambda: any(e.kind == "recovery_held" and
                         {f.name: f.value for f in e.fields}.get("reason") == "maintenance"
                         for e in c.events(leader)), 20 * SLOW,
             what="the failure held for maintenance")
    time.sleep(2)
    assert c.actions(leader) == []
    # Maintenance off: the restart starts, hangs, and the record locks.
    c.rpc(1, "SetMaintenance", admin.SetMaintenanceRequest(maintenance=m, clear=True),
          admin.SetMaintenanceResponse)
    recs = wait_for(lambda: [r for r in c.actions(leader)
                             if r.state == admin.ACTION_STATE_LOCKED], 30 * SLOW,
                    what="the hung restart LOCKED")
    assert len(c.actions(leader)) == 1
    locked = recs[0]
    time.sleep(3)
    assert len(c.actions(leader)) == 1, "a locked record let another action start"
    # Only the leader acknowledges; the others name it.
    other = [n for n in (1, 2, 3) if n != leader][0]
    with pytest.raises(grpc.RpcError) as e:
        c.rpc(other, "AcknowledgeAction", admin.AcknowledgeActionRequest(id=locked.id, by="op"),
              admin.AcknowledgeActionResponse)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"coord-{leader}" in e.value.details()
    r = c.rpc(leader, "AcknowledgeAction",
              admin.AcknowledgeActionRequest(id=locked.id, by="op"),
              admin.AcknowledgeActionResponse)
    assert r.action.state == admin.ACTION_STATE_ACKNOWLEDGED and r.action.acknowledged_by == "op"
    # The next rung: restart number two, which works. (Redis answers a
    # moment before the restart command returns and is recorded.)
    wait_for(lambda: c.redis_ping(2), 30 * SLOW, what="redis back after the second restart")

    def history():
        return [(r.attempt, admin.ActionState.Name(r.state)) for r in c.actions(leader)]
    wait_for(lambda: history()[0][1] != "ACTION_STATE_RUNNING", 30 * SLOW,
             what="the second restart recorded")
    assert history() == [(2, "ACTION_STATE_SUCCEEDED"), (1, "ACTION_STATE_ACKNOWLEDGED")]


def test_tilt_after_a_stalled_loop(cluster_factory, pb):
    """A coordinator stopped for 3 s (SIGSTOP) withholds its opinions when
    it runs again, and says so."""
    c = cluster_factory()
    p = c.coords[3]
    os.killpg(p.pid, signal.SIGSTOP)
    time.sleep(3)
    os.killpg(p.pid, signal.SIGCONT)
    wait_for(lambda: c.status(3).tilt_until_unix_nano > time.time_ns(), 10,
             what="coord-3 in TILT")
    ev = [e for e in c.events(3) if e.kind == "tilt"]
    assert len(ev) == 1 and {f.name: f.value for f in ev[0].fields} == {"cause": "stall"}
    m = c.coord_metrics(3)
    assert m[("troika_coord_tilt", frozenset())] == 1
    assert m[("troika_coord_opinions_withheld", frozenset())] == 1
