"""The mysql plugin against a real three-node MariaDB Galera cluster.

One cluster for the module (galera_server.py, ~12 s to start); the tests
run in file order and each leaves all three nodes Synced. Every node has
two checks: dbN (500 ms) for statuses and metrics, and dbN-ctl (long
timeout) for actions, which run with their check's timeout. Nodes are
started and stopped the way the agent does it in production: through the
check's `service:` (start-stop-daemon in the background), and bootstrap
through bootstrap_command.
"""
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import AGENT, NODE1, free_port, parse_metrics, wait_for
from conftest import Procs
from galera_server import MARIADBD, PASSWORD, USER, Cluster

SSD = "/usr/sbin/start-stop-daemon"
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


@pytest.fixture(scope="module")
def galera(tmp_path_factory):
    procs = Procs()
    cluster = Cluster(procs, tmp_path_factory.mktemp("galera"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def node_checks(cluster, nodes=(1, 2, 3), extra=""):
    """dbN for watching, dbN-ctl for actions (30 s for joins and bootstrap)."""
    text = ""
    for n in nodes:
        node = cluster.nodes[n - 1]
        common = f"""    plugin: mysql
    host: "{node.ip}"
    port: {node.port}
    user: {USER}
    password: "{PASSWORD}"
    expected_cluster_size: 3
    datadir: "{node.datadir}"
    defaults_file: "{node.cnf}"
"""
        text += f"""  - name: db{n}
    interval: 500ms
    timeout: 450ms
{common}  - name: db{n}-ctl
    interval: 60s
    timeout: 30s
{common}    bootstrap_command: ["{SSD}", "--start", "--background", "--pidfile", "{node.pidfile}", "--exec", "{MARIADBD}", "--", "--defaults-file={node.cnf}"]
    service:
      manager: exec
      start: ["{SSD}", "--start", "--background", "--pidfile", "{node.pidfile}", "--exec", "{MARIADBD}", "--", "--defaults-file={node.cnf}"]
      stop: ["{SSD}", "--stop", "--pidfile", "{node.pidfile}", "--exec", "{MARIADBD}", "--retry", "TERM/60/KILL/5"]
"""
    return text + extra


def messages(agent):
    """{check: (status word, message)} from `troika-agent status`."""
    r = subprocess.run([AGENT, "--admin-socket", agent.admin_socket, "status"],
                       capture_output=True, timeout=30)
    out = {}
    for line in r.stdout.decode().splitlines():
        if not line.startswith("check."):
            continue
        name, _, rest = line[len("check."):].partition(": ")
        parts = rest.split(" ", 2)
        if len(parts) >= 2:
            out[name] = (parts[1], parts[2] if len(parts) > 2 else "")
    return out


def message(agent, check):
    return messages(agent).get(check, (None, None))[1]


def all_status(agent, checks, status):
    return all(agent.status(c) == status for c in checks)


def info_labels(agent, check):
    for (name, labels), _ in agent.metrics().items():
        labels = dict(labels)
        if name == "mysql_galera_status_info" and labels.get("check") == check:
            return labels
    return None


def count_rows(node):
    return int(node.sql("SELECT COUNT(*) FROM shop.orders")[0][0])


def insert_rows(node, n, tag):
    for i in range(n):
        node.sql(f"INSERT INTO shop.orders (v) VALUES ('{tag}-{i}')")


def joined_by_ist(node, offset):
    """What the joiner's error log says since offset: IST, never SST."""
    log = node.log_since(offset)
    return ("rsync IST completed on joiner" in log and "rsync SST completed" not in log,
            log[-3000:])


def test_synced_cluster(agent, galera):
    agent.write(node_checks(galera))
    agent.start()
    checks = ["db1", "db2", "db3"]
    wait_for(lambda: all_status(agent, checks, OK), 15, what="three OK checks")
    uuid = galera.nodes[0].status("wsrep_cluster_state_uuid")
    for n, node in enumerate(galera.nodes, 1):
        c = f"db{n}"
        assert agent.find("mysql_up", check=c, plugin="mysql") == 1
        assert agent.find("mysql_global_status_wsrep_cluster_size", check=c) == 3
        assert agent.find("mysql_global_status_wsrep_local_state", check=c) == 4
        assert agent.find("mysql_global_status_wsrep_ready", check=c) == 1
        assert agent.find("mysql_global_status_wsrep_connected", check=c) == 1
        assert agent.find("mysql_global_status_wsrep_cluster_status", check=c) == 1
        assert agent.find("mysql_global_variables_max_connections", check=c) == 151
        assert agent.find("mysql_global_variables_read_only", check=c) == 0
        assert agent.find("mysql_global_status_threads_connected", check=c) >= 1
        assert agent.find("mysql_global_status_wsrep_last_committed", check=c) == \
            int(node.status("wsrep_last_committed"))
        labels = info_labels(agent, c)
        assert labels["wsrep_cluster_state_uuid"] == uuid
        assert labels["wsrep_local_state_uuid"] == uuid
        assert labels["wsrep_provider_version"] == node.status("wsrep_provider_version")
        assert message(agent, c).startswith("Synced, Primary, cluster size 3; ")
    # The whole page, with the plugin's families, passes promtool.
    text = agent.scrape_text()
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def test_desync_on_and_off(agent, galera):
    agent.write(node_checks(galera))
    agent.start()
    wait_for(lambda: all_status(agent, ["db1", "db2", "db3"], OK), 15, what="OK")
    rc, reply = agent.action("db2-ctl", "desync", "on")
    assert rc == 0, reply
    assert reply["message"] == "wsrep_desync ON: local state Donor/Desynced"
    assert reply["field.wsrep_local_state_comment"] == "Donor/Desynced"
    wait_for(lambda: agent.status("db2") == WARNING, 5, what="db2 WARNING")
    assert message(agent, "db2") == "local state Donor/Desynced"
    assert agent.find("mysql_global_status_wsrep_local_state", check="db2") == 2
    assert agent.status("db1") == OK and agent.status("db3") == OK
    rc, reply = agent.action("db2-ctl", "desync", "off")
    assert rc == 0, reply
    assert reply["message"].startswith("wsrep_desync OFF: local state ")
    wait_for(lambda: agent.status("db2") == OK, 10, what="db2 OK again")
    assert agent.find("mysql_global_status_wsrep_local_state", check="db2") == 4
    rc, reply = agent.action("db2-ctl", "desync", "sideways")
    assert (rc, reply["message"]) == (1, "usage: desync on|off")


def test_position_stop_and_start_one_node(agent, galera):
    n1, _, n3 = galera.nodes
    agent.write(node_checks(galera))
    agent.start()
    wait_for(lambda: all_status(agent, ["db1", "db2", "db3"], OK), 15, what="OK")
    uuid = n1.status("wsrep_cluster_state_uuid")

    rc, reply = agent.action("db1-ctl", "position")
    assert rc == 0, reply
    assert reply["field.source"] == "server"
    assert reply["field.cluster_uuid"] == uuid
    assert int(reply["field.seqno"]) == int(n1.status("wsrep_last_committed"))

    # A clean stop through the service manager. (The view change that
    # follows takes a seqno of its own on the others.)
    committed = int(n3.status("wsrep_last_committed"))
    rc, reply = agent.action("db3-ctl", "stop")
    assert rc == 0, reply
    wait_for(lambda: not n3.running(), 30, what="n3 to exit")
    # While it shuts down it may reset connections; then it refuses them.
    wait_for(lambda: message(agent, "db3") == "connection to 127.0.1.3:3306 refused",
             10, what="db3 refused")
    assert agent.status("db3") == CRITICAL
    assert agent.find("mysql_up", check="db3") == 0
    wait_for(lambda: agent.status("db1") == WARNING, 10, what="db1 sees a smaller cluster")
    assert message(agent, "db1") == "cluster size 2, expected 3"

    # Its position comes from grastate.dat now.
    rc, reply = agent.action("db3-ctl", "position")
    assert rc == 0, reply
    assert (reply["field.source"], reply["field.cluster_uuid"]) == ("grastate", uuid)
    assert int(reply["field.seqno"]) == committed
    assert reply["field.safe_to_bootstrap"] == "0"  # the others still run

    # Writes it misses, then back through the service manager, by IST.
    insert_rows(n1, 5, "while-n3-stopped")
    offset = n3.log_size()
    rc, reply = agent.action("db3-ctl", "start")
    assert rc == 0, reply
    assert reply["message"].startswith("start: ")
    assert "the server answers" in reply["message"]
    n3.adopt()
    wait_for(lambda: all_status(agent, ["db1", "db2", "db3"], OK), 30, what="all OK")
    ist, log = joined_by_ist(n3, offset)
    assert ist, log
    assert count_rows(n3) == count_rows(n1)

    # Starting a running server is nothing to do.
    rc, reply = agent.action("db3-ctl", "start")
    assert (rc, reply["message"]) == (0, "start: already running at 127.0.1.3:3306")


def test_quorum_loss_and_full_crash_recovery(agent, galera):
    n1, n2, n3 = galera.nodes
    agent.write(node_checks(galera))
    agent.start()
    wait_for(lambda: all_status(agent, ["db1", "db2", "db3"], OK), 15, what="OK")
    uuid = n1.status("wsrep_cluster_state_uuid")
    rows = count_rows(n1)

    insert_rows(n1, 10, "before-crash")
    n3.kill()
    # n3 misses these: it will be the least advanced.
    insert_rows(n1, 10, "after-n3")
    rows += 20
    n2.kill()
    wait_for(lambda: agent.status("db1") == CRITICAL, 20, what="n1 non-Primary")
    msg = message(agent, "db1")
    assert "cluster status non-Primary (component of 1)" in msg, msg
    assert "not ready (wsrep_ready OFF)" in msg, msg
    assert agent.find("mysql_global_status_wsrep_cluster_status", check="db1") == 0
    assert agent.find("mysql_global_status_wsrep_ready", check="db1") == 0
    assert agent.find("mysql_up", check="db1") == 1
    for c in ("db2", "db3"):
        wait_for(lambda: agent.status(c) == CRITICAL, 5, what=f"{c} CRITICAL")
        assert message(agent, c).endswith("refused")
    n1.kill()
    for node in galera.nodes:
        assert node.grastate()["seqno"] == "-1"  # crashed: grastate cannot tell

    # Every node's position, recovered from InnoDB.
    pos = {}
    for n in (1, 2, 3):
        rc, reply = agent.action(f"db{n}-ctl", "position")
        assert rc == 0, reply
        assert reply["field.source"] == "wsrep-recover", reply
        assert reply["field.cluster_uuid"] == uuid
        assert reply["field.safe_to_bootstrap"] == "0"
        pos[n] = int(reply["field.seqno"])
    # n2 may not have applied n1's very last write set when it died.
    assert pos[3] < pos[2] <= pos[1], pos
    best = max(pos, key=lambda n: (pos[n], -n))
    assert best == 1

    # Bootstrap the most advanced node, at its recovered position.
    rc, reply = agent.action(f"db{best}-ctl", "bootstrap")
    assert rc == 0, reply
    assert reply["message"].startswith(f"bootstrapped at {uuid}:{pos[best]}: Primary, Synced"), reply
    assert reply["field.safe_to_bootstrap"] == "1"
    n1.adopt()
    assert n1.status("wsrep_cluster_state_uuid") == uuid  # the same history
    wait_for(lambda: agent.status("db1") == WARNING, 10, what="db1 alone")
    assert message(agent, "db1") == "cluster size 1, expected 3"
    rc, reply = agent.action("db1-ctl", "bootstrap")
    assert rc == 1
    assert reply["message"] == ("refusing to bootstrap: the server at 127.0.1.1:3306 "
                                "is running (Primary, Synced)")

    # The others rejoin through start: recovered position first, then IST.
    for node, n in ((n2, 2), (n3, 3)):
        offset = node.log_size()
        rc, reply = agent.action(f"db{n}-ctl", "start")
        assert rc == 0, reply
        assert (reply["field.source"], reply["field.seqno"]) == ("wsrep-recover", str(pos[n]))
        node.adopt()
        wait_for(lambda: node.synced(), 60, interval=0.2, what=f"n{n} Synced")
        ist, log = joined_by_ist(node, offset)
        assert ist, log
    wait_for(lambda: all_status(agent, ["db1", "db2", "db3"], OK), 30, what="all OK")
    for node in galera.nodes:
        assert count_rows(node) == rows
        assert node.status("wsrep_cluster_state_uuid") == uuid


class BadServer:
    """Accepts on 127.0.1.1 and then says nothing, or garbage."""

    def __init__(self, garbage):
        self.garbage = garbage
        self.sock = socket.socket()
        self.sock.bind((NODE1, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(0.2)
        rnd = random.Random(7)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            if self.garbage:
                try:
                    c.sendall(bytes(rnd.randrange(256) for _ in range(300)))
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


def test_bad_input_within_the_timeout(agent, galera):
    silent, garbage = BadServer(False), BadServer(True)
    try:
        def check(name, port, password=PASSWORD):
            return f"""  - name: {name}
    plugin: mysql
    interval: 500ms
    timeout: 400ms
    host: "{NODE1}"
    port: {port}
    user: {USER}
    password: "{password}"
"""
        agent.write(node_checks(galera, nodes=(1,)) +
                    check("wrong-password", 3306, "not-the-password") +
                    check("silent", silent.port) + check("garbage", garbage.port))
        agent.start()
        bad = ["wrong-password", "silent", "garbage"]
        wait_for(lambda: all(agent.runs(c, r) >= 2 for c, r in
                             (("wrong-password", "unknown"), ("silent", "critical"),
                              ("garbage", "critical"))), 15, what="bad checks ran twice")
        assert agent.status("wrong-password") == UNKNOWN
        assert "Access denied for user 'troika'" in message(agent, "wrong-password")
        assert agent.status("silent") == CRITICAL
        assert re.fullmatch(rf"{NODE1}:{silent.port}: timed out after 3[0-9][0-9] ms connecting",
                            message(agent, "silent")), message(agent, "silent")
        assert agent.status("garbage") == CRITICAL
        assert message(agent, "garbage").startswith(f"{NODE1}:{garbage.port}: ")
        # Each answered before the agent's own deadline ...
        for c in bad:
            assert agent.runs(c, "timeout") == 0, c
        # ... and the good check kept its schedule meanwhile.
        before = agent.runs("db1", "ok")
        time.sleep(3)
        assert agent.runs("db1", "ok") - before >= 5
        assert agent.status("db1") == OK
    finally:
        silent.close()
        garbage.close()
