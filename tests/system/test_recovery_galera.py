"""Issue 5's first Done-when line on real MariaDB Galera: kill -9 mysqld on
node 2 -> started again once, by the leader, after two coordinators
agreed; the node rejoins by IST and the cluster is Synced with three
members; no row written before the kill is lost, and writes made while it
was down reach it. Three emulated nodes, each with etcd, troika-coord,
troika-agent and a Galera member (cluster.py, galera_server.py).

Ports: etcd 2379/2380 and MariaDB 3306/4567/4568/4444 on 127.0.1.1-3.
"""
import fcntl
import os
import time

import pytest

from cluster import ETCD_LOCK, Cluster
from conftest import SANITIZED, wait_for
from galera_server import MARIADBD, PASSWORD, USER, let_mysql_through
from galera_server import Cluster as Galera
from grpc_echo import generate_modules
from test_etcd import ETCD

pytestmark = pytest.mark.skipif(not os.path.exists(ETCD),
                                reason="etcd-server is not installed")
SSD = "/usr/sbin/start-stop-daemon"
SLOW = 3 if SANITIZED else 1

POLICY = """\
  policies:
    - match: "db"
      fail_after: 3
      certain_after: 2
      down_after: 30s
      ladder: [start, start, alert]
      max_attempts: 3
      window: 1h
      backoff: 5s
      cooldown: 10s
      action_timeout: 90s
"""


class GaleraCluster(Cluster):
    """The recovery cluster watching Galera instead of Redis."""

    def start_services(self):
        (self.run / "galera").mkdir(exist_ok=True)
        # mariadbd runs as mysql: it needs search permission from pytest's
        # basetemp down (this test's tmp_path is one level below it).
        let_mysql_through(self.run / "galera", self.run.parent)
        self.galera = Galera(self.procs, self.run / "galera")
        self.galera.start()

    def stop_services(self):
        # A server the agent started (start-stop-daemon, daemonized) is
        # not the harness's child: find it by its pid file first.
        for node in self.galera.nodes:
            if not node.running():
                try:
                    node.adopt(timeout=0.5)
                except AssertionError:
                    pass
        self.galera.stop()

    def checks_yaml(self, n):
        node = self.galera.nodes[n - 1]
        start = [SSD, "--start", "--background", "--pidfile", str(node.pidfile), "--exec",
                 MARIADBD, "--", f"--defaults-file={node.cnf}"]
        return (f"  - name: db\n    plugin: mysql\n    interval: 1s\n    timeout: 900ms\n"
                f'    host: "{node.ip}"\n    port: {node.port}\n'
                f"    user: {USER}\n    password: \"{PASSWORD}\"\n"
                f"    expected_cluster_size: 3\n"
                f'    datadir: "{node.datadir}"\n    defaults_file: "{node.cnf}"\n'
                f"    action_timeout: 90s\n"
                f"    service:\n      manager: exec\n"
                f"      start: [{', '.join(repr(a) for a in start)}]\n"
                f"      pidfile: {node.pidfile}\n")


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    _, agent_pb2, admin_pb2 = generate_modules(tmp_path_factory.mktemp("pb"))
    return agent_pb2, admin_pb2


def count_rows(node):
    return int(node.sql("SELECT COUNT(*) FROM shop.orders")[0][0])


def insert_rows(node, n, tag):
    for i in range(n):
        node.sql(f"INSERT INTO shop.orders (v) VALUES ('{tag}-{i}')")


def test_killed_mysqld_started_once_after_quorum(procs, tmp_path, pb):
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        c = GaleraCluster(procs, tmp_path, pb, policy=POLICY)
        try:
            c.start()
            run(c, pb)
        finally:
            c.stop()


def run(c, pb):
    admin = pb[1]
    n1, n2 = c.galera.nodes[0], c.galera.nodes[1]
    leader, token = c.leader()
    insert_rows(n1, 20, "before-kill")
    before = count_rows(n1)
    wait_for(lambda: count_rows(n2) == before, 10, what="rows replicated to n2")
    offset = n2.log_size()
    t0 = time.monotonic()
    n2.kill()
    # Writes while it is down or rejoining: it must get them by IST. A
    # write fails while the survivors change views ("not connected to
    # Primary Component"); troika may restart n2 before they ever show a
    # cluster of two, so each write is retried rather than waited for.
    for i in range(5):
        def written(i=i):
            rows = n1.sql(f"INSERT INTO shop.orders (v) VALUES ('while-n2-down-{i}')",
                          check=False)
            return rows is not None
        wait_for(written, 60 * SLOW, interval=0.2, what=f"write {i} accepted by n1")

    def done():
        recs = c.actions(leader)
        return recs if recs and recs[0].state == admin.ACTION_STATE_SUCCEEDED else None
    recs = wait_for(done, 120 * SLOW, interval=0.2, what="the start recorded as succeeded")
    n2.adopt()
    wait_for(lambda: all(n.synced(3) for n in c.galera.nodes), 60 * SLOW, interval=0.2,
             what="three Synced members again")
    took = time.monotonic() - t0
    print(f"kill -9 mysqld to Synced cluster of three: {took:.1f} s")
    log = n2.log_since(offset)
    assert "rsync IST completed on joiner" in log and "rsync SST completed" not in log, \
        log[-3000:]
    assert count_rows(n2) == count_rows(n1) == before + 5
    time.sleep(3)
    for n in (1, 2, 3):
        recs = c.actions(n)
        assert len(recs) == 1, [(r.id, r.node, r.check, r.action) for r in recs]
        r = recs[0]
        assert (r.node, r.check, r.action, r.attempt) == ("node-2", "db", "start", 1)
        assert admin.ActionState.Name(r.state) == "ACTION_STATE_SUCCEEDED"
        assert r.coordinator == f"coord-{leader}" and r.fencing_token == token
        assert len(set(r.opinions)) >= 2
    assert "the server answers" in recs[0].message or recs[0].message.startswith("start: ")
    kinds = [e.kind for e in c.events(leader)]
    assert kinds.count("action_started") == 1 and kinds.count("action_done") == 1
