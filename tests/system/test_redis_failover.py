"""Issue 6, Redis primary failover, on three real redis-servers (node-1 the
primary, node-2 and node-3 its replicas) with etcd, troika-coord and
troika-agent on each emulated node (cluster.py):

the primary is killed and cannot be restarted (its restart command fails)
-> after failover_after, the leader asks both replicas for their role,
promotes the one with the highest offset (node-3: an iptables rule kept
the last writes from node-2), repoints node-2 to it, and every
coordinator names node-3 the primary; the old primary, started again by
hand as a master, is made a replica of node-3. No acknowledged write is
lost. The exact action history is asserted on every coordinator.

Ports: etcd 2379/2380 on 127.0.1.1-3, Redis 6390, the rest picked free.
Needs root for its one iptables rule, which it removes however it ends.
"""
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from cluster import ETCD_LOCK, IPS, REDIS_PORT, Cluster
from conftest import SANITIZED, wait_for
from grpc_echo import generate_modules
from redis_server import REDIS_SERVER, _encode, _read, command, parse_info, write_conf
from test_etcd import ETCD
from test_troikactl import ctl

pytestmark = pytest.mark.skipif(not os.path.exists(ETCD),
                                reason="etcd-server is not installed")
SLOW = 3 if SANITIZED else 1
KEYS = 200

POLICY = """\
  policies:
    - match: "redis*"
      fail_after: 3
      certain_after: 1
      down_after: 30s
      ladder: [restart, alert]
      max_attempts: 3
      window: 1h
      backoff: 1s
      cooldown: 1s
      action_timeout: 10s
  clusters:
    - name: cache
      kind: redis
      check: redis
      nodes: [node-1, node-2, node-3]
      failover_after: 2s
      retry: 1s
"""


class ReplicatedCluster(Cluster):
    """Cluster with node-1's Redis the primary of the other two."""

    def start_redis(self, n):
        # Loopback: without bind-source-addr a replica connects from
        # 127.0.0.1 and the primary lists every replica there.
        extra = f"bind-source-addr {IPS[n]}\nreplica-announce-ip {IPS[n]}\n"
        if n != 1:
            extra += f"replicaof {IPS[1]} {REDIS_PORT}\n"
        write_conf(self.redis_conf(n), IPS[n], REDIS_PORT, str(self.redis_dir(n)),
                   extra=extra, daemonize=True,
                   logfile=str(self.redis_dir(n) / "redis.log"))
        argv = self.wrap(n, [REDIS_SERVER, self.redis_conf(n)])
        assert os.spawnv(os.P_WAIT, argv[0], argv) == 0
        wait_for(lambda: self.redis_ping(n), 10, what=f"redis on node {n}")

    def start_services(self):
        for n in (1, 2, 3):
            self.start_redis(n)
        wait_for(lambda: all(self.info(n).get("master_link_status") == "up"
                             for n in (2, 3)), 10, what="both replicas linked")

    def info(self, n):
        return parse_info(command(IPS[n], REDIS_PORT, "INFO", "replication"))

    def redis_pid(self, n):
        with open(self.redis_pidfile(n)) as f:
            return int(f.read().strip())


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    _, agent_pb2, admin_pb2 = generate_modules(tmp_path_factory.mktemp("pb"))
    return agent_pb2, admin_pb2


def write_then_wait(host, first, last, replicas):
    """SET k<first>..k<last-1>, then WAIT on the same connection (WAIT
    counts the replicas that have this client's writes); the count."""
    with socket.create_connection((host, REDIS_PORT), timeout=5) as s:
        f = s.makefile("rb")
        s.sendall(b"".join(_encode("SET", f"k{i}", str(i)) for i in range(first, last)) +
                  _encode("WAIT", str(replicas), "2000"))
        for _ in range(first, last):
            assert _read(f) == "OK"
        return _read(f)


IPTABLES = shutil.which("iptables") or "/usr/sbin/iptables"
# The primary's replication stream to node-2: dropped while the last
# writes are made, so node-2 falls behind node-3.
LAG_RULE = ["INPUT", "-p", "tcp", "-s", IPS[1], "--sport", str(REDIS_PORT), "-d", IPS[2],
            "-m", "comment", "--comment", "troika-test-redis-failover", "-j", "DROP"]


def ipt(*args, check=True):
    r = subprocess.run([IPTABLES, "-w", *args], capture_output=True, text=True, timeout=30)
    assert not check or r.returncode == 0, f"iptables {' '.join(args)}: {r.stderr}"
    return r


def drop_lag_rule():
    """Remove every copy of the rule (only this test adds it)."""
    while ipt("-D", *LAG_RULE, check=False).returncode == 0:
        pass


def history(c, n):
    admin = c.admin_pb2
    recs = sorted(c.actions(n), key=lambda r: r.id)
    return [(r.node, r.action, " ".join(r.args),
             admin.ActionState.Name(r.state)[len("ACTION_STATE_"):]) for r in recs], recs


def test_primary_killed_replica_with_highest_offset_promoted(procs, tmp_path, pb):
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # "Restart prevented": the primary's restart command fails.
        c = ReplicatedCluster(procs, tmp_path, pb,
                              policy=POLICY + hook_yaml(tmp_path / "hook"),
                              restart_argv=["/bin/false"])
        # Under the lock no other run can hold the rule: a copy is what a
        # killed run left.
        drop_lag_rule()
        try:
            c.start()
            run_failover(c)
        finally:
            drop_lag_rule()
            c.stop()


def hook_yaml(out):
    """An exec alert hook for primary_changed: each coordinator that sends
    (the leader) appends the event's JSON to a file of its own."""
    out.mkdir()
    return (f"alerts:\n  hooks:\n    - name: publish\n      kind: exec\n"
            f"      kinds: [primary_changed]\n"
            f"      argv: [/bin/sh, -c, 'cat >> {out}/$TROIKA_EVENT_COORDINATOR.json; "
            f"echo >> {out}/$TROIKA_EVENT_COORDINATOR.json']\n")


def hook_events(c):
    """What the publish hook received, as (file, event) pairs."""
    out = []
    for f in sorted((c.run / "hook").glob("*.json")):
        for line in f.read_text().splitlines():
            if line.strip():
                out.append((f.name, json.loads(line)))
    return out


def run_failover(c):
    admin = c.admin_pb2
    leader, token = c.leader()
    for n in (1, 2, 3):
        cl = {x.name: x for x in c.status(n).clusters}["cache"]
        assert (cl.kind, cl.primary, cl.primary_address) == (
            "redis", "node-1", f"{IPS[1]}:{REDIS_PORT}"), (n, cl)
    assert write_then_wait(IPS[1], 0, KEYS // 2, 2) == 2
    # node-2 falls behind: the rest of the writes reach node-3 only
    # (WAIT 1 says one replica has them; two would be a failed setup).
    ipt("-I", *LAG_RULE)
    assert write_then_wait(IPS[1], KEYS // 2, KEYS, 1) == 1
    t0 = c.kill_redis(1)
    # node-2 would hear of the primary's death only from its FIN, which
    # the rule drops: it ends its link itself, as a replica does at
    # repl-timeout.
    assert command(IPS[2], REDIS_PORT, "CLIENT", "KILL", "TYPE", "master") == 1

    def failed_over():
        for r in c.actions(leader):
            if r.action == "failover" and r.state != admin.ACTION_STATE_RUNNING:
                return r
        return None
    proc = wait_for(failed_over, 60 * SLOW, interval=0.1, what="the failover to end")
    took = time.monotonic() - t0
    assert admin.ActionState.Name(proc.state) == "ACTION_STATE_SUCCEEDED", proc.message
    facts = {f.name: f.value for f in proc.fields}
    assert facts == {"primary": "node-3", "address": f"{IPS[3]}:{REDIS_PORT}"}, facts
    print(f"kill -9 of the primary to the failover's end: {took:.2f} s "
          f"(failover_after 2 s)")
    assert c.info(3)["role"] == "master"
    wait_for(lambda: c.info(2).get("master_host") == IPS[3] and
             c.info(2).get("master_link_status") == "up", 10, what="node-2 following node-3")
    drop_lag_rule()
    for n in (2, 3):
        assert command(IPS[n], REDIS_PORT, "DBSIZE") == KEYS, n
    # Every coordinator names the new primary.
    for n in (1, 2, 3):
        wait_for(lambda: {x.name: x for x in c.status(n).clusters}["cache"].primary ==
                 "node-3", 10, what=f"coord-{n} naming node-3")
        cl = {x.name: x for x in c.status(n).clusters}["cache"]
        assert cl.primary_address == f"{IPS[3]}:{REDIS_PORT}", (n, cl)
        assert cl.procedure_id == proc.id, (n, cl)
    # troikactl says so too.
    rc, out, _ = ctl("--coordinator", c.coord_target(1), "status")
    assert rc == 0 and re.search(
        rf"cluster +cache \(redis\), primary node-3 {IPS[3]}:{REDIS_PORT}, last procedure "
        rf"{proc.id} SUCCEEDED", out), out
    events = c.events(leader)
    changed = [e for e in events if e.kind == "primary_changed"]
    assert len(changed) == 1 and changed[0].node == "node-3", changed
    # ... and the alert hook published it, once, from the leader.
    got = wait_for(lambda: hook_events(c), 10, interval=0.2, what="the hook's event")
    time.sleep(1)
    got = hook_events(c)
    assert len(got) == 1, got
    name, ev = got[0]
    assert name == f"coord-{leader}.json", got
    assert (ev["kind"], ev["node"], ev["coordinator"]) == (
        "primary_changed", "node-3", f"coord-{leader}"), ev
    assert ev["fields"]["address"] == f"{IPS[3]}:{REDIS_PORT}", ev

    # The old primary comes back as a master (its own config says so):
    # it is made a replica of node-3.
    c.start_redis(1)
    wait_for(lambda: c.info(1).get("master_host") == IPS[3] and
             c.info(1).get("master_link_status") == "up", 30 * SLOW,
             what="the old primary following node-3")
    wait_for(lambda: command(IPS[1], REDIS_PORT, "DBSIZE") == KEYS, 10,
             what="the old primary's data from node-3")
    time.sleep(2)
    want = [
        ("node-1", "restart", "", "FAILED"),
        ("", "failover", "node-1", "SUCCEEDED"),
        ("node-2", "role", "", "SUCCEEDED"),
        ("node-3", "role", "", "SUCCEEDED"),
        ("node-3", "promote", "", "SUCCEEDED"),
        ("node-2", "replicate", f"{IPS[3]} {REDIS_PORT}", "SUCCEEDED"),
        ("node-1", "replicate", f"{IPS[3]} {REDIS_PORT}", "SUCCEEDED"),
    ]
    for n in (1, 2, 3):
        got, recs = history(c, n)
        assert got == want, (n, got)
        for r in recs:
            assert r.fencing_token == token
            assert r.cluster == ("cache" if r.action != "restart" else "")
        assert [r.procedure for r in recs[2:6]] == [proc.id] * 4
    # The replicas waited for the failover instead of being restarted.
    held = [e for e in events if e.kind == "recovery_held" and
            {f.name: f.value for f in e.fields}.get("reason") == "cluster"]
    assert {e.node for e in held if "waits for the failover" in e.message} == {
        "node-2", "node-3"}, held
