"""The redis plugin against real Redis servers: a master on 127.0.1.1:6379
and replicas on 127.0.1.2 and 127.0.1.3 (started once for this module,
their roles restored before every test), standalone servers for AUTH,
BGSAVE and the service manager, and fake servers that misbehave."""
import signal
import subprocess
import time

import pytest

from conftest import AGENT, NODE1, Procs, free_port, wait_for
from redis_server import (NODES, PORT, REDIS_CLI, REDIS_SERVER, FakeServer,
                          RedisServer, Topology, command, kill_pidfile,
                          listening, write_conf)

M, R2, R3 = NODES


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    procs = Procs()
    t = Topology(procs, tmp_path_factory.mktemp("redis"))
    try:
        t.start()
        yield t
    finally:
        procs.stop_all()


@pytest.fixture
def cluster(topo):
    topo.reset()
    return topo


def check(name, host, interval="500ms", timeout="400ms", port=PORT, **opts):
    text = f"""
  - name: {name}
    plugin: redis
    interval: {interval}
    timeout: {timeout}
    host: "{host}"
    port: {port}
"""
    for k, v in opts.items():
        text += f"    {k}: {v}\n"
    return text


def status_line(agent, name):
    """(status word, message) of a check from `troika-agent status`."""
    r = subprocess.run([AGENT, "--admin-socket", agent.admin_socket, "status"],
                       capture_output=True, text=True, timeout=10)
    for line in r.stdout.splitlines():
        if line.startswith(f"check.{name}: "):
            _, status, msg = line.split(": ", 1)[1].split(" ", 2)
            return status, msg
    return None, None


def wait_status(agent, name, status, timeout=10.0):
    wait_for(lambda: agent.status(name) == status, timeout,
             what=f"{name} status {status} (now {agent.status(name)}, "
                  f"{status_line(agent, name)[1]!r})")


def test_topology_statuses_and_metrics(agent, cluster):
    master = cluster.nodes[0]
    # Offsets hold still between the master's pings: 10 s apart here.
    master.cmd("CONFIG", "SET", "repl-ping-replica-period", "10")
    for i in range(10):
        master.cmd("SET", f"k{i}", "v")
    agent.write(check("m", M, expected_role="master", min_replicas=2)
                + check("r2", R2, expected_role="replica")
                + check("r3", R3, expected_role="replica")
                + check("r2-as-master", R2, expected_role="master")
                + check("m-min3", M, min_replicas=3)
                + check("m-mem", M, memory_warning=1))
    agent.start()
    for name, want in (("m", 0), ("r2", 0), ("r3", 0), ("r2-as-master", 2),
                       ("m-min3", 1), ("m-mem", 1)):
        wait_status(agent, name, want)
    assert agent.find("redis_up", check="m", plugin="redis") == 1
    assert agent.find("redis_instance_info", check="m", role="master") == 1
    assert agent.find("redis_instance_info", check="r2", role="slave") == 1
    assert agent.find("redis_connected_slaves", check="m") == 2
    assert agent.find("redis_master_link_up", check="r2") == 1
    assert agent.find("redis_master_link_up", check="r3") == 1
    assert agent.find("redis_slave_info", check="r3", master_host=M, master_port="6379") == 1
    assert agent.find("redis_memory_max_bytes", check="m") == 64 * 1024 * 1024
    wait_for(lambda: agent.find("redis_db_keys", check="m", db="db0") == 10, 5,
             what="10 keys on the master")
    wait_for(lambda: agent.find("redis_db_keys", check="r3", db="db0") == 10, 5,
             what="10 keys on a replica")
    # Replicas catch up with the master's offset (compared within one
    # scrape, between two pings of the master).
    def caught_up():
        page = agent.metrics()
        def one(name, **labels):
            for (n, ls), v in page.items():
                if n == name and set(labels.items()) <= set(ls):
                    return v
            return None
        mo = one("redis_master_repl_offset", check="m")
        return mo and all(one("redis_slave_repl_offset", check=c) == mo
                          and one("redis_connected_slave_offset_bytes", check="m",
                                  slave_ip=ip) == mo
                          for c, ip in (("r2", R2), ("r3", R3)))
    wait_for(caught_up, 10, what="replica offsets equal to the master's")
    assert agent.find("redis_connected_slave_lag_seconds", check="m", slave_ip=R2,
                      slave_port="6379", slave_state="online") is not None
    assert agent.find("redis_commands_processed_total", check="m") > 10
    st, msg = status_line(agent, "m")
    assert st == "ok" and msg.startswith("master, 2 replicas online, offset "), msg
    st, msg = status_line(agent, "r2")
    assert msg.startswith(f"replica of {M}:6379, link up, offset "), msg
    st, msg = status_line(agent, "r2-as-master")
    assert msg.startswith("role is replica, expected master (replica of"), msg
    st, msg = status_line(agent, "m-min3")
    assert msg.startswith("2 replicas online, min_replicas 3 ("), msg
    st, msg = status_line(agent, "m-mem")
    assert "% of maxmemory (memory_warning 1%)" in msg, msg
    # One connection per check, kept across runs: the master counts its
    # clients (three checks and this INFO; replicas are not counted).
    runs = agent.runs("m", "ok")
    wait_for(lambda: agent.runs("m", "ok") >= runs + 3, 5, what="three more runs")
    assert int(master.info("clients")["connected_clients"]) == 3 + 1
    # The page passes promtool with every redis family on it.
    r = subprocess.run(["promtool", "check", "metrics"], input=agent.scrape_text(),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promote_and_replicate(agent, cluster):
    agent.write(check("n1", M, interval="2s", timeout="2s")
                + check("n2", R2, interval="2s", timeout="2s")
                + check("n3", R3, interval="2s", timeout="2s"))
    agent.start()
    for n in ("n1", "n2", "n3"):
        wait_status(agent, n, 0)
    # A write that n2 has: its offset is then above 0. Without one, a fresh
    # replica reports 0 until the master's first PING (10 s).
    cluster.nodes[0].cmd("SET", "before-failover", "yes")
    wait_for(lambda: cluster.nodes[1].cmd("GET", "before-failover") == "yes", 5,
             what="the write replicated to n2")
    rc, reply = agent.action("n2", "role")
    assert (rc, reply["field.role"], reply["field.master_host"]) == (0, "replica", M), reply
    offset = int(reply["field.slave_repl_offset"])
    assert offset > 0
    rc, reply = agent.action("n2", "promote")
    assert rc == 0, reply
    assert reply["message"].startswith(f"{R2}:6379 promoted: master after "), reply
    assert reply["field.role"] == "master"
    assert int(reply["field.master_repl_offset"]) >= offset
    rc, reply = agent.action("n3", "replicate", R2, "6379")
    assert rc == 0, reply
    assert reply["message"].startswith(f"{R3}:6379 is a replica of {R2}:6379, link up after ")
    assert (reply["field.role"], reply["field.master_host"], reply["field.master_port"],
            reply["field.master_link_status"]) == ("replica", R2, "6379", "up")
    # The checks see the new roles.
    wait_for(lambda: agent.find("redis_instance_info", check="n2", role="master") == 1, 5,
             what="n2 reported as master")
    wait_for(lambda: agent.find("redis_connected_slaves", check="n2") == 1, 5,
             what="n2 with one replica")
    wait_for(lambda: agent.find("redis_slave_info", check="n3", master_host=R2) == 1, 5,
             what="n3 following n2")
    wait_for(lambda: agent.find("redis_connected_slaves", check="n1") == 0, 5,
             what="n1 alone")
    rc, reply = agent.action("n2", "role")
    assert (reply["field.role"], reply["field.connected_slaves"]) == ("master", "1")
    assert reply["field.slave0"].startswith(f"ip={R3},port=6379,state=online,"), reply
    # The new master takes writes, and its replica gets them.
    cluster.nodes[1].cmd("SET", "after-failover", "yes")
    wait_for(lambda: cluster.nodes[2].cmd("GET", "after-failover") == "yes", 5,
             what="the write on the new master replicated")
    # Promoting a master changes nothing.
    rc, reply = agent.action("n2", "promote")
    assert (rc, reply["message"]) == (0, f"{R2}:6379 is a master already")
    # Bad arguments, and actions without a service manager.
    rc, reply = agent.action("n3", "replicate", R2, "99999")
    assert (rc, reply["result"]) == (1, "failed")
    assert reply["message"].startswith("replicate: expected <host> <port>")
    rc, reply = agent.action("n3", "replicate", R2)
    assert (rc, reply["message"]) == (2, "usage: replicate <host> <port>")
    rc, reply = agent.action("n1", "restart")
    assert (rc, reply["result"], reply["message"]) == (
        1, "failed", "no service manager configured for this check")
    for n in ("n1", "n2", "n3"):
        assert agent.status(n) == 0


def test_handover(agent, cluster):
    """A planned switchover with Redis' own FAILOVER: n1 hands over to n2
    and becomes its replica; every write n1 acknowledged is on n2."""
    agent.write(check("n1", M, interval="3s", timeout="3s")
                + check("n2", R2, interval="3s", timeout="3s")
                + check("n3", R3, interval="3s", timeout="3s"))
    agent.start()
    for n in ("n1", "n2", "n3"):
        wait_status(agent, n, 0)
    for i in range(100):
        cluster.nodes[0].cmd("SET", f"k{i}", str(i))
    rc, reply = agent.action("n1", "handover", R2, "6379", "2000")
    assert rc == 0, reply
    assert reply["message"].startswith(f"{M}:6379 handed over to {R2}:6379 after "), reply
    assert reply["message"].endswith(" ms: now its replica"), reply
    assert (reply["field.role"], reply["field.master_host"], reply["field.master_port"]) == (
        "replica", R2, "6379"), reply
    r2 = cluster.nodes[1].info("replication")
    assert r2["role"] == "master", r2
    assert cluster.nodes[1].cmd("DBSIZE") == 100
    assert cluster.nodes[1].cmd("SET", "on-n2", "yes") == "OK"
    # n1 is a replica now: nothing to hand over, nothing sent.
    rc, reply = agent.action("n1", "handover", R2, "6379", "2000")
    assert (rc, reply["result"], reply["message"]) == (
        1, "failed", f"{M}:6379 is not a master (role replica): nothing to hand over")
    # n3 still follows n1, not n2: Redis refuses it as a target.
    rc, reply = agent.action("n2", "handover", R3, "6379", "2000")
    assert (rc, reply["result"]) == (1, "failed"), reply
    assert reply["message"].startswith(f"{R2}:6379: FAILOVER TO {R3} 6379 refused: ERR "), reply
    assert cluster.nodes[1].info("replication")["role"] == "master"
    rc, reply = agent.action("n2", "handover", R3, "6379")
    assert (rc, reply["message"]) == (2, "usage: handover <host> <port> <timeout_ms>")
    rc, reply = agent.action("n2", "handover", R3, "6379", "0")
    assert (rc, reply["result"]) == (1, "failed"), reply
    assert reply["message"].startswith("handover: expected <host> <port> <timeout_ms>")


def test_master_killed(agent, cluster):
    agent.write(check("m", M, expected_role="master")
                + check("r2", R2, expected_role="replica")
                + check("r3", R3, expected_role="replica"))
    agent.start()
    for n in ("m", "r2", "r3"):
        wait_status(agent, n, 0)
    t0 = time.monotonic()
    cluster.nodes[0].kill(signal.SIGKILL)
    # interval 500ms: the replicas' next runs see the link down.
    wait_status(agent, "r2", 2, timeout=3)
    wait_status(agent, "r3", 2, timeout=3)
    wait_status(agent, "m", 2, timeout=3)
    assert time.monotonic() - t0 < 3
    assert agent.find("redis_master_link_up", check="r2") == 0
    assert agent.find("redis_master_link_up", check="r3") == 0
    assert agent.find("redis_up", check="r2") == 1  # up, with its link down
    assert agent.find("redis_up", check="m") == 0
    st, msg = status_line(agent, "r2")
    assert msg.startswith(f"link to master {M}:6379 down for "), msg
    st, msg = status_line(agent, "m")
    assert msg == f"connection to {M}:6379 refused", msg
    # The master comes back: the replicas resync, the checks recover.
    cluster.nodes[0].start()
    for n in ("m", "r2", "r3"):
        wait_status(agent, n, 0, timeout=10)


def test_replication_lag(agent, cluster):
    """A stopped (SIGSTOP) replica: its master sees its acks stop, its own
    check times out. A stopped master: its replicas hear nothing."""
    agent.write(check("m", M, max_replication_lag="2s")
                + check("r2", R2, max_replication_lag="2s")
                + check("r3", R3, max_replication_lag="2s"))
    agent.start()
    for n in ("m", "r2", "r3"):
        wait_status(agent, n, 0)
    r3 = cluster.nodes[2]
    r3.kill(signal.SIGSTOP)
    try:
        wait_status(agent, "m", 1)
        wait_status(agent, "r3", 2)
        msg = status_line(agent, "m")[1]
        assert msg.startswith(f"replica {R3}:6379 silent for "), msg
        assert "s (max_replication_lag 2 s) (master, 2 replicas online" in msg, msg
        assert agent.find("redis_connected_slave_lag_seconds", check="m",
                          slave_ip=R3) >= 3
        assert status_line(agent, "r3")[1] == (
            f"no reply to PING from {R3}:6379 within 360 ms")
        assert agent.status("r2") == 0
    finally:
        r3.kill(signal.SIGCONT)
    for n in ("m", "r3"):
        wait_status(agent, n, 0)
    master = cluster.nodes[0]
    master.kill(signal.SIGSTOP)
    try:
        wait_status(agent, "r2", 1)
        wait_status(agent, "r3", 1)
        wait_status(agent, "m", 2)
        msg = status_line(agent, "r2")[1]
        assert msg.startswith(f"nothing from master {M}:6379 for "), msg
        assert agent.find("redis_master_last_io_seconds_ago", check="r2") >= 3
        assert agent.find("redis_master_link_up", check="r2") == 1
    finally:
        master.kill(signal.SIGCONT)
    for n in ("m", "r2", "r3"):
        wait_status(agent, n, 0)


def test_auth(agent, procs, tmp_path):
    port = free_port()
    srv = RedisServer(procs, tmp_path / "auth", NODE1, port, password="s3cret", extra=(
        "requirepass s3cret\n"
        "user monitor on >mpw ~* &* +@all\n"
        "user weak on >wpw +ping +auth\n")).start()
    agent.write(check("good", NODE1, port=port, password="s3cret")
                + check("wrong", NODE1, port=port, password="guess")
                + check("none", NODE1, port=port)
                + check("acl", NODE1, port=port, username="monitor", password="mpw")
                + check("acl-wrong", NODE1, port=port, username="monitor", password="x")
                + check("weak", NODE1, port=port, username="weak", password="wpw"))
    agent.start()
    for name, want in (("good", 0), ("wrong", 2), ("none", 2), ("acl", 0),
                       ("acl-wrong", 2), ("weak", 2)):
        wait_status(agent, name, want)
    here = f"{NODE1}:{port}"
    assert status_line(agent, "wrong")[1] == (
        f"{here}: authentication failed: WRONGPASS invalid username-password pair or "
        "user is disabled.")
    assert status_line(agent, "none")[1] == (
        f"{here}: authentication required, and no password is configured for this "
        "check: NOAUTH Authentication required.")
    assert status_line(agent, "acl-wrong")[1].startswith(
        f"{here}: authentication failed for user monitor: WRONGPASS")
    assert status_line(agent, "weak")[1].startswith(f"{here}: INFO refused: NOPERM")
    assert agent.find("redis_up", check="good") == 1
    assert agent.find("redis_up", check="wrong") == 0
    assert agent.find("redis_up", check="weak") == 0
    srv.stop()


def test_bgsave(agent, procs, tmp_path):
    port = free_port()
    data = tmp_path / "bgsave"
    srv = RedisServer(procs, data, NODE1, port,
                      extra="enable-protected-configs yes\n").start()
    srv.cmd("SET", "k", "v")
    before = int(srv.info("persistence")["rdb_last_save_time"])
    agent.write(check("s", NODE1, port=port, interval="2s", timeout="2s"))
    agent.start()
    wait_status(agent, "s", 0)
    rc, reply = agent.action("s", "bgsave")
    assert rc == 0, reply
    assert reply["message"].startswith("bgsave done after "), reply
    assert reply["field.rdb_last_bgsave_status"] == "ok"
    assert int(reply["field.lastsave"]) >= before
    assert (data / "dump.rdb").stat().st_size > 0
    # A save that fails: the server's directory vanishes under it.
    srv.fail_saves()
    rc, reply = agent.action("s", "bgsave")
    assert (rc, reply["result"], reply["message"]) == (
        1, "failed", "bgsave failed (rdb_last_bgsave_status:err)"), reply
    wait_status(agent, "s", 1)
    assert status_line(agent, "s")[1].startswith(
        "last bgsave failed (rdb_last_bgsave_status:err) (master, 0 replicas online")
    assert agent.find("redis_rdb_last_bgsave_status", check="s") == 0
    srv.restore_saves()
    rc, reply = agent.action("s", "bgsave")
    assert rc == 0, reply
    wait_status(agent, "s", 0)
    assert agent.find("redis_rdb_last_bgsave_status", check="s") == 1
    srv.stop()


def test_service_start_stop_restart(agent, tmp_path):
    port = free_port()
    run = tmp_path / "svc"
    conf = run / "redis.conf"
    write_conf(str(conf), NODE1, port, str(run), daemonize=True,
               logfile=str(run / "redis.log"))
    pidfile = run / "redis.pid"
    agent.write(check("svc", NODE1, port=port, interval="2s", timeout="2s") + f"""    service:
      manager: exec
      start: ["{REDIS_SERVER}", "{conf}"]
      stop: ["{REDIS_CLI}", "-h", "{NODE1}", "-p", "{port}", "shutdown", "nosave"]
""")
    try:
        agent.start()
        wait_status(agent, "svc", 2)
        assert status_line(agent, "svc")[1] == f"connection to {NODE1}:{port} refused"
        rc, reply = agent.action("svc", "start")
        assert rc == 0, reply
        assert reply["message"].startswith("start: done in "), reply
        assert f"; {NODE1}:{port} answers PING after " in reply["message"]
        wait_status(agent, "svc", 0)
        run_id = command(NODE1, port, "INFO", "server").split("run_id:")[1][:40]
        rc, reply = agent.action("svc", "restart")
        assert rc == 0, reply
        assert f"; {NODE1}:{port} answers PING after " in reply["message"]
        assert command(NODE1, port, "INFO", "server").split("run_id:")[1][:40] != run_id
        wait_status(agent, "svc", 0)
        rc, reply = agent.action("svc", "stop")
        assert (rc, reply["result"]) == (0, "ok"), reply
        wait_status(agent, "svc", 2)
    finally:
        # The daemon left our process groups: stop what could start it
        # again, then kill it by its pidfile.
        if agent.proc is not None:
            agent.stop()
        kill_pidfile(pidfile)
        wait_for(lambda: not listening(NODE1, port), 5, what="the daemon gone")


def test_misbehaving_servers(agent, cluster):
    silent, garbage = FakeServer("silent"), FakeServer("garbage")
    closing, huge = FakeServer("close"), FakeServer("huge")
    try:
        agent.write(check("silent", silent.ip, port=silent.port, interval="1s",
                          timeout="800ms")
                    + check("garbage", garbage.ip, port=garbage.port)
                    + check("closing", closing.ip, port=closing.port)
                    + check("huge", huge.ip, port=huge.port, interval="3s", timeout="3s")
                    + check("m", M, interval="200ms", timeout="150ms"))
        agent.start()
        rss_before = rss_kib(agent.proc.pid)
        for name in ("silent", "garbage", "closing", "huge"):
            wait_status(agent, name, 2)
        assert status_line(agent, "silent")[1] == (
            f"no reply to PING from {silent.ip}:{silent.port} within 720 ms")
        assert status_line(agent, "garbage")[1].startswith(
            f"{garbage.ip}:{garbage.port}: not a Redis reply: Protocol error")
        assert status_line(agent, "closing")[1] == (
            f"{closing.ip}:{closing.port}: the server closed the connection "
            "(waiting for the reply to INFO)")
        assert status_line(agent, "huge")[1] == (
            f"{huge.ip}:{huge.port}: reply larger than max_reply (1048576 bytes) "
            "(waiting for the reply to INFO)")
        # While they fail, the master's check keeps its 200 ms schedule.
        t0, runs0 = time.monotonic(), agent.runs("m", "ok")
        time.sleep(3)
        runs = agent.runs("m", "ok") - runs0
        expected = (time.monotonic() - t0) / 0.2
        assert runs >= expected - 3, (runs, expected)
        assert agent.runs("m", "timeout") == 0
        assert agent.runs("silent", "timeout") == 0  # the plugin's own timeout came first
        assert agent.status("m") == 0
        # The endless reply costs at most about max_reply a time.
        assert rss_kib(agent.proc.pid) - rss_before < 64 * 1024
    finally:
        for s in (silent, garbage, closing, huge):
            s.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
