#!/usr/bin/python3
"""Benchmark: a Redis primary killed with its restart prevented, to a
replica accepting writes and to every coordinator reporting the new
primary: troika, and Redis Sentinel as the reference, in one run.

    tests/bench/bench_redis_failover.py [--build build] [--trials 7]
        [--only sentinel,troika] [--pause 1.0] [--json FILE] [--keep]

Not a test: it builds nothing (troika-agent, troika-coord and
troika-redis.so of --build are used) and asserts nothing but that every
trial ended with one new primary that all coordinators name (troika: and
its failover record SUCCEEDED). Issue 6's benchmark, one contender after
the other, never both at once:

  sentinel   three redis-server (Debian's, daemonize no) on 127.0.3.1-3,
             port 6391: .1 the primary, .2 and .3 replicas (replicaof),
             and three redis-sentinel on the same addresses, port 26391,
             each monitoring the primary with quorum 2,
             down-after-milliseconds 1000, failover-timeout 10000,
             parallel-syncs 1
  troika     the system tests' three nodes (tests/system/cluster.py,
             test_redis_failover.py's ReplicatedCluster) on 127.0.1.1-3:
             an etcd member, a troika-coord (store etcd, quorum 2) and a
             troika-agent each, and a daemonized redis-server on port
             6390, node-1 the primary; the agents' redis check at a 1 s
             interval with the service's pidfile (so the agent watches
             the server with a pidfd) and restart [/bin/false]; the
             coordinators' policy: fail_after 3, certain_after 2 (the
             defaults), ladder [restart, alert], and the cluster
             `cache` of kind redis with failover_after 1s, troika's
             detection timeout: how long the primary, failed by quorum,
             has to come back before the failover. etcd's fixed ports
             are the system tests' too: their lock
             (/tmp/troika-etcd-ports.lock) is held while troika runs.

Sentinel on 127.0.3.x: the system tests use 127.0.1.x at the same time.

Every trial starts fresh servers (troika: fresh etcd, coordinators and
agents too) in a fresh directory and waits until the replication and the
coordinators are settled: both replicas online at the primary; every
sentinel knowing the primary, both replicas (link ok) and the two other
sentinels, or every coordinator with quorum, one leader, every agent
connected and every check OK, and all three naming node-1 the primary.
A key is written and WAIT confirms both replicas have it. After --pause
seconds plus a random 0-1 s (so the kill falls anywhere in the sentinels'
1 s ping cycle or the agents' 1 s check interval), the primary gets
SIGKILL, and nothing restarts it. Then, with time.monotonic() from just
before kill(2), and every 5 ms until both are seen (or 60 s):

  writable   the first moment a replica answers +OK to a SET (a replica
             answers -READONLY until it is promoted); one persistent
             connection per replica, reopened at once when the server
             closed it (Sentinel's reconfiguration kills normal clients)
  agree      the first moment all three sentinels answer SENTINEL
             get-master-addr-by-name with the same address, or all three
             coordinators' Admin/GetStatus name the same member in
             `clusters`, not the old primary

Both are printed raw and "beyond the timeout" (minus down-after or
failover_after, 1000 ms each), the figure that does not depend on the
timeout chosen, and the issue's target (troika's beyond-the-timeout
medians at most a quarter of Sentinel's, both figures) met or not. Each
trial also checks that the agreed primary is the replica that became
writable and that the two replicas were never writable at once. The
path, step by step: the sentinels' own log lines (ms, wall clock):
+sdown, +odown, +elected-leader, +selected-slave,
+failover-state-send-slaveof-noone, +promoted-slave, +switch-master;
for troika the agent's log line of the process exit (ms), the
coordinators' events (check_status, opinion, verdict, primary_changed;
ns) and the leader's action records (restart, failover, role, promote,
replicate: started and ended, ns); for both, the promoted replica's
"MASTER MODE enabled" log line.

A contender is a subclass of Contender: start(), kill_primary(),
writable_replica(), all_agree(), stop(), and path() for its own records,
on a RedisTrio (troika: ClusterRedis, the same probes on the cluster's
servers), with the same trial loop.

Every process is started in its own process group through the system
tests' Procs and stopped by PID (the daemonized redis-servers by their
pidfiles), also on failure, Ctrl-C or SIGTERM; the temporary directory
goes too (--keep leaves it, for the logs).
"""
import argparse
import calendar
import fcntl
import json
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
SYSTEM = os.path.join(SRC, "tests", "system")
REDIS_SERVER = "/usr/bin/redis-server"
REDIS_SENTINEL = "/usr/bin/redis-sentinel"

IPS = {1: "127.0.3.1", 2: "127.0.3.2", 3: "127.0.3.3"}
REDIS_PORT = 6391
SENTINEL_PORT = 26391
PRIMARY = 1                 # the node whose server is killed
MASTER_NAME = "bench"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10000
QUORUM = 2
POLL = 0.005                # seconds between polls, after the kill
WARNINGS = []               # what stopping found (exit codes, sanitizer reports)
AFTER_KILL = 60.0           # a failover that has not happened by then failed


def ms(s):
    return s * 1e3


# ---- RESP over a raw socket ----

class Busy(Exception):
    """An address and port this benchmark needs is taken: no trial can run."""


class RespError(Exception):
    """An error reply (-READONLY, -ERR ...), as opposed to a broken link."""


class Conn:
    """One connection to a Redis or Sentinel server; call() sends a command
    and returns the parsed reply, raising RespError on an error reply and
    OSError when the connection fails (the caller reconnects)."""

    def __init__(self, host, port, timeout=1.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    def close(self):
        self.f.close()
        self.sock.close()

    def call(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by the server")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("connection closed by the server")
            return data[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError(f"not RESP: {line[:40]!r}")


def call_once(host, port, *args):
    """One command on a new connection; None when the server is not there."""
    try:
        c = Conn(host, port, timeout=0.5)
    except OSError:
        return None
    try:
        return c.call(*args)
    except (OSError, RespError):
        return None
    finally:
        c.close()


class Poller:
    """A persistent connection for polling, reopened once at once when it
    fails (a server closing its clients must not cost a poll period)."""

    def __init__(self, host, port):
        self.host, self.port, self.conn = host, port, None

    def call(self, *args):
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = Conn(self.host, self.port)
                return self.conn.call(*args)
            except OSError:
                self.close()
                if attempt == 2:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def pairs(flat):
    """SENTINEL MASTER's reply (key, value, key, value ...) as a dict."""
    return dict(zip(flat[::2], flat[1::2])) if flat else {}


def info(text):
    return dict(line.split(":", 1) for line in (text or "").splitlines() if ":" in line)


def wait_for(cond, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---- logs ----

# "1234:X 26 Nov 2026 16:47:00.123 # +sdown master bench 127.0.3.1 6391";
# the role letter is X for a sentinel, M or S for a server.
LOG_LINE = re.compile(r"^\d+:[XMSC] (\d+ \w{3} \d{4} \d\d:\d\d:\d\d)\.(\d{3}) . (.*)$")


def log_lines(path, since):
    """[(wall clock s, text)] of a Redis or Sentinel log (local time, ms),
    from since on."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = LOG_LINE.match(line)
            if m:
                t = time.mktime(time.strptime(m.group(1), "%d %b %Y %H:%M:%S")) + \
                    int(m.group(2)) / 1e3
                if t >= since:
                    out.append((t, m.group(3)))
    return out


# ---- the three redis-servers, shared by every contender ----

REDIS_CONF = """bind {ip}
port {port}
daemonize no
protected-mode no
dir {dir}
logfile ""
save ""
appendonly no
maxmemory 64mb
bind-source-addr {ip}
replica-announce-ip {ip}
repl-diskless-sync yes
repl-diskless-sync-delay 0
"""


class RedisTrio:
    """redis-server on 127.0.3.1-3:6391, node 1 the primary, 2 and 3 its
    replicas. bind-source-addr and replica-announce-ip make the primary
    list each replica under its own address (else both are 127.0.0.1:6391
    to the primary and so to Sentinel); protected-mode no lets replicas
    and sentinels on 127.0.3.x in without a password (TESTENV.md §3).
    ips and port: troika's subclass (ClusterRedis) probes the system
    tests' servers on 127.0.1.1-3:6390 with the same polls."""

    def __init__(self, procs, run, ips=IPS, port=REDIS_PORT):
        self.procs, self.run = procs, run
        self.ips, self.port = ips, port
        self.proc = {}
        self.pollers = {}
        self.writable_seen = set()
        self.both_writable = False
        self.kill_wall = None

    def addr(self, n):
        return f"{self.ips[n]}:{self.port}"

    def replicas(self):
        return [n for n in self.ips if n != PRIMARY]

    def settle(self):
        """Both replicas online at the primary, a key on both (WAIT 2), and
        one polling connection per replica."""
        def online():
            rep = info(call_once(self.ips[PRIMARY], self.port, "INFO", "replication"))
            lines = [rep.get(f"slave{i}", "") for i in range(2)]
            return rep.get("connected_slaves") == "2" and all(
                any(f"ip={self.ips[n]},port={self.port},state=online," in x for x in lines)
                for n in self.replicas())
        wait_for(online, 20, "both replicas online at the primary")
        # Some data, on every replica, so the promotion has offsets to go by.
        c = Conn(self.ips[PRIMARY], self.port)
        try:
            c.call("SET", "bench:before", "1")
            acked = c.call("WAIT", 2, 2000)
        finally:
            c.close()
        if acked != 2:
            raise RuntimeError(f"WAIT 2: only {acked} replicas acknowledged")
        for n in self.replicas():
            self.pollers[n] = Poller(self.ips[n], self.port)

    def start(self):
        for n, ip in IPS.items():
            if call_once(ip, REDIS_PORT, "PING") is not None:
                raise Busy(f"something answers on {self.addr(n)} already")
        for n, ip in IPS.items():
            d = self.run / f"redis{n}"
            d.mkdir()
            conf = REDIS_CONF.format(ip=ip, port=REDIS_PORT, dir=d)
            if n != PRIMARY:
                conf += f"replicaof {IPS[PRIMARY]} {REDIS_PORT}\n"
            (d / "redis.conf").write_text(conf)
            self.proc[n] = self.procs.start([REDIS_SERVER, str(d / "redis.conf")],
                                            d / "redis.log")
        for n, ip in IPS.items():
            wait_for(lambda: self.running(n) and call_once(ip, REDIS_PORT, "PING") == "PONG",
                     10, f"redis-server on {self.addr(n)} to answer")
        self.settle()

    def running(self, n):
        p = self.proc.get(n)
        if p is None or p.poll() is not None:
            raise RuntimeError(f"redis-server on {self.addr(n)} exited; see "
                               f"{self.run / f'redis{n}' / 'redis.log'}")
        return True

    def kill_primary(self):
        """SIGKILL to the primary's process group; the monotonic time just
        before kill(2). Reaped here (it is our child); nothing restarts it."""
        p = self.proc[PRIMARY]
        self.kill_wall = time.time()
        t = time.monotonic()
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
        return t

    def writable_replica(self):
        """Try a SET on each replica, once; the address of the first that
        took it, or None. Notes it if both ever take one in the same poll."""
        took = []
        for n, poller in self.pollers.items():
            try:
                if poller.call("SET", "bench:probe", n) == "OK":
                    took.append(self.addr(n))
            except RespError as e:
                if not str(e).startswith("READONLY"):
                    raise RuntimeError(f"SET on {self.addr(n)}: {e}") from None
            except OSError:
                pass    # a replica being reconfigured; the next poll tries again
        if len(took) > 1:
            self.both_writable = True
        self.writable_seen.update(took)
        return took[0] if took else None

    def stop(self):
        for p in self.pollers.values():
            p.close()
        self.pollers.clear()
        for p in self.proc.values():
            self.procs.stop(p)

    def path(self):
        """{step: ms after the kill}: the first replica to log its promotion
        (its own log: wall clock, ms)."""
        if self.kill_wall is None:
            return {}
        times = [t for n in self.replicas()
                 for t, text in log_lines(self.run / f"redis{n}" / "redis.log",
                                          self.kill_wall - 1)
                 if text.startswith("MASTER MODE enabled")]
        return {"replica logs MASTER MODE enabled": ms(min(times) - self.kill_wall)} \
            if times else {}


# ---- the contenders ----

class Contender:
    """What the trial loop needs of a contender; troika's will be one more
    subclass beside Sentinel, on the same RedisTrio. name and coordinators
    (what agrees: "sentinels", "coordinators") are for the report;
    timeout_ms is the detection timeout that "beyond the timeout" takes
    off."""
    name = coordinators = timeout_ms = None

    def __init__(self, procs, run):
        self.procs, self.run = procs, run
        self.redis = RedisTrio(procs, run)

    def start(self):
        """Fresh servers and coordinators in self.run; return once settled."""
        raise NotImplementedError

    def kill_primary(self):
        """SIGKILL to the primary, nothing restarting it; the monotonic time
        just before the kill."""
        return self.redis.kill_primary()

    def writable_replica(self):
        """One poll: the address of a replica that took a write, or None."""
        return self.redis.writable_replica()

    def all_agree(self):
        """One poll: the new primary's address once every coordinator names
        it, else None."""
        raise NotImplementedError

    def stop(self):
        """Stop everything start() started; safe after a failed start."""
        raise NotImplementedError

    def path(self):
        """{step: ms after the kill} from the contender's own records."""
        return self.redis.path()



SENTINEL_CONF = """bind {ip}
port {port}
daemonize no
protected-mode no
dir {dir}
logfile ""
bind-source-addr {ip}
sentinel announce-ip {ip}
sentinel monitor {name} {primary} {redis_port} {quorum}
sentinel down-after-milliseconds {name} {down_after}
sentinel failover-timeout {name} {failover_timeout}
sentinel parallel-syncs {name} 1
"""


# The path as the sentinels log it: (event, which sentinel's line counts).
PATH = (("+sdown", "master", "first"), ("+odown", "master", "first"),
        ("+try-failover", "master", "first"), ("+elected-leader", "master", "first"),
        ("+selected-slave", "slave", "first"),
        ("+failover-state-send-slaveof-noone", "slave", "first"),
        ("+promoted-slave", "slave", "first"),
        ("+switch-master", "", "first"), ("+switch-master", "", "last"))


class Sentinel(Contender):
    """Redis Sentinel, as its documentation sets it up: one sentinel beside
    each server. announce-ip and bind-source-addr: every sentinel's
    connections come from 127.0.0.1 on lo otherwise, and all three would
    announce 127.0.0.1:26391 in their hellos."""
    name = "Redis Sentinel"
    coordinators = "sentinels"
    timeout_ms = DOWN_AFTER_MS

    def __init__(self, procs, run):
        super().__init__(procs, run)
        self.proc = {}
        self.pollers = {}

    def start(self):
        for n, ip in IPS.items():
            if call_once(ip, SENTINEL_PORT, "PING") is not None:
                raise Busy(f"something answers on {ip}:{SENTINEL_PORT} already")
        self.redis.start()
        for n, ip in IPS.items():
            d = self.run / f"sentinel{n}"
            d.mkdir()
            # Sentinel rewrites its configuration file: it must be writable.
            (d / "sentinel.conf").write_text(SENTINEL_CONF.format(
                ip=ip, port=SENTINEL_PORT, dir=d, name=MASTER_NAME,
                primary=IPS[PRIMARY], redis_port=REDIS_PORT, quorum=QUORUM,
                down_after=DOWN_AFTER_MS, failover_timeout=FAILOVER_TIMEOUT_MS))
            self.proc[n] = self.procs.start([REDIS_SENTINEL, str(d / "sentinel.conf")],
                                            d / "sentinel.log")
        for n, ip in IPS.items():
            wait_for(lambda: self.running(n) and self.settled(ip), 30,
                     f"the sentinel on {ip} to know the primary, both replicas and "
                     "the other two sentinels")
            self.pollers[n] = Poller(ip, SENTINEL_PORT)

    def running(self, n):
        p = self.proc.get(n)
        if p is None or p.poll() is not None:
            raise RuntimeError(f"the sentinel on {IPS[n]} exited; see "
                               f"{self.run / f'sentinel{n}' / 'sentinel.log'}")
        return True

    def settled(self, ip):
        m = pairs(call_once(ip, SENTINEL_PORT, "SENTINEL", "MASTER", MASTER_NAME))
        if (m.get("flags") != "master" or m.get("num-slaves") != "2" or
                m.get("num-other-sentinels") != "2" or m.get("ip") != IPS[PRIMARY]):
            return False
        reps = [pairs(r) for r in call_once(ip, SENTINEL_PORT, "SENTINEL", "REPLICAS",
                                            MASTER_NAME) or []]
        return (sorted(r.get("ip") for r in reps) == sorted(IPS[n] for n in
                                                               self.redis.replicas()) and
                all(r.get("flags") == "slave" and r.get("master-link-status") == "ok"
                    for r in reps))

    def all_agree(self):
        """The new primary's address once all three sentinels name it (SENTINEL
        get-master-addr-by-name), else None."""
        seen = set()
        for n, poller in self.pollers.items():
            try:
                r = poller.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            except (OSError, RespError):
                return None
            if not r:
                return None
            seen.add(f"{r[0]}:{r[1]}")
        if len(seen) != 1:
            return None
        addr = seen.pop()
        return None if addr == self.redis.addr(PRIMARY) else addr

    def stop(self):
        for p in self.pollers.values():
            p.close()
        self.pollers.clear()
        for p in self.proc.values():
            self.procs.stop(p)
        self.redis.stop()

    def path(self):
        """{step: ms after the kill} from the sentinels' logs (wall clock,
        ms; 'first' is the earliest sentinel, 'last' the latest) and the
        promoted replica's."""
        kill = self.redis.kill_wall
        if kill is None:
            return {}
        events = {}
        for n in IPS:
            for t, text in log_lines(self.run / f"sentinel{n}" / "sentinel.log", kill - 1):
                ev, _, rest = text.partition(" ")
                for name, kind, _ in PATH:
                    if ev == name and rest.startswith(kind):
                        events.setdefault(ev, {}).setdefault(n, t)
        out = self.redis.path()
        for ev, _, which in PATH:
            per = events.get(ev)
            if per:
                t = min(per.values()) if which == "first" else max(per.values())
                key = f"{ev} ({which} sentinel)" if ev == "+switch-master" else ev
                out[key] = ms(t - kill)
        return out


# ---- troika ----

# The system tests' addresses and Redis port (tests/system/cluster.py);
# held under its ETCD_LOCK while troika's nodes run.
TROIKA_IPS = {n: f"127.0.1.{n}" for n in (1, 2, 3)}
TROIKA_REDIS_PORT = 6390
FAILOVER_AFTER_MS = 1000

# The coordinators' policy: the defaults of fail_after and certain_after
# (2 certain CRITICAL results: the agent's pidfd sees the exit and
# re-checks at once, so both come within milliseconds; 3 of any kind
# otherwise), the restart tried once (it fails: /bin/false), and the
# cluster failing over 1 s after the primary failed by quorum.
TROIKA_POLICY = """\
  policies:
    - match: "redis*"
      fail_after: 3
      certain_after: 2
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
      failover_after: {}ms
      retry: 1s
""".format(FAILOVER_AFTER_MS)


class ClusterRedis(RedisTrio):
    """The probes of RedisTrio on the servers troika's cluster starts
    (daemonized, as a service manager starts them, with pidfiles: the
    agent's pidfd watch needs one)."""

    def __init__(self, procs, run, cluster):
        super().__init__(procs, run, ips=TROIKA_IPS, port=TROIKA_REDIS_PORT)
        self.cluster = cluster

    def start(self):
        self.settle()

    def kill_primary(self):
        """SIGKILL to the primary's pid (its pidfile); not our child, so
        not reaped here. Nothing restarts it: its restart is /bin/false."""
        pid = int(open(self.cluster.redis_pidfile(PRIMARY)).read().strip())
        self.kill_wall = time.time()
        t = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        return t

    def stop(self):
        for p in self.pollers.values():
            p.close()
        self.pollers.clear()


def troika_cluster_class():
    """test_redis_failover.py's ReplicatedCluster (imported late: cluster.py
    reads TROIKA_BUILD_DIR when it is imported)."""
    from test_redis_failover import ReplicatedCluster
    return ReplicatedCluster


class Troika(Contender):
    """troika on the system tests' three nodes (tests/system/cluster.py):
    on each of 127.0.1.1-3 an etcd member, a troika-coord (store etcd,
    quorum 2) and a troika-agent reporting to all three, and a
    redis-server on port 6390 (test_redis_failover.py's ReplicatedCluster:
    node-1 the primary); the agents' redis checks at a 1 s interval with
    the service's pidfile (pidfd watch) and restart [/bin/false]."""
    name = "troika"
    coordinators = "coordinators"
    timeout_ms = FAILOVER_AFTER_MS
    pb = None           # (agent_pb2, admin_pb2), set by main()

    def __init__(self, procs, run):
        self.procs, self.run = procs, run
        self.cluster = troika_cluster_class()(procs, run, self.pb, policy=TROIKA_POLICY,
                                              restart_argv=["/bin/false"])
        self.redis = ClusterRedis(procs, run, self.cluster)

    def start(self):
        for n, ip in TROIKA_IPS.items():
            if call_once(ip, TROIKA_REDIS_PORT, "PING") is not None:
                raise Busy(f"something answers on {ip}:{TROIKA_REDIS_PORT} already")
        self.cluster.start()
        # Every coordinator names node-1 the primary before the kill.
        want = f"node-{PRIMARY}"
        wait_for(lambda: all(self.primary_of(n) == want for n in TROIKA_IPS), 20,
                 f"every coordinator to name {want} the primary")
        self.redis.start()

    def primary_of(self, n):
        """Coordinator n's primary of the cluster (GetStatus), or None."""
        import grpc
        try:
            for cl in self.cluster.status(n).clusters:
                if cl.name == "cache":
                    return cl.primary or None
        except grpc.RpcError:
            return None
        return None

    def all_agree(self):
        """The new primary's address once all three coordinators name the
        same member, not the old primary, in GetStatus's clusters."""
        seen = set()
        for n in TROIKA_IPS:
            p = self.primary_of(n)
            if p is None:
                return None
            seen.add(p)
        if len(seen) != 1:
            return None
        node = seen.pop()
        if node == f"node-{PRIMARY}":
            return None
        return self.redis.addr(int(node.rsplit("-", 1)[1]))

    def stop(self):
        self.redis.stop()
        try:
            self.cluster.stop()
        except AssertionError as e:
            # Everything is stopped by then; the complaint (an exit code,
            # a sanitizer report) makes the run fail at its end.
            WARNINGS.append(f"{self.run.name}: {str(e)[:2000]}")
            print(f"warning: troika: {str(e)[:400]}", file=sys.stderr)

    def path(self):
        """{step: ms after the kill} from the leader's action records, the
        coordinators' events (ns, wall clock) and the agent's log (ms); the
        failover must have SUCCEEDED, naming the agreed primary."""
        import grpc
        c, kill = self.cluster, self.redis.kill_wall
        if kill is None:
            return {}
        admin = c.admin_pb2
        leader = c.leader()
        if leader is None:
            raise RuntimeError("no single leader after the failover")
        leader = leader[0]

        def failover():
            for r in c.actions(leader):
                if r.action == "failover" and r.state != admin.ACTION_STATE_RUNNING:
                    return r
            return None
        proc = wait_for(failover, 30, "the failover record to end")
        facts = {f.name: f.value for f in proc.fields}
        if proc.state != admin.ACTION_STATE_SUCCEEDED:
            raise RuntimeError(f"failover {proc.id} {admin.ActionState.Name(proc.state)}: "
                               f"{proc.message}")
        recs = sorted(c.actions(leader), key=lambda r: r.id)
        events = []
        for n in TROIKA_IPS:
            try:
                events += [(e, n) for e in c.events(n)]
            except grpc.RpcError as e:
                print(f"warning: events of coord-{n}: {e}", file=sys.stderr)
        kill_ns = int(kill * 1e9)
        old = f"node-{PRIMARY}"

        def at(ns):
            return (ns - kill_ns) / 1e6

        out = self.redis.path()
        out["failover SUCCEEDED: " + facts.get("primary", "?")] = at(proc.ended_unix_nano)

        def first(kind, node, **fields):
            ts = [e.time_unix_nano for e, _ in events if e.kind == kind and e.node == node
                  and e.time_unix_nano >= kill_ns and
                  all({f.name: f.value for f in e.fields}.get(k) == v
                      for k, v in fields.items())]
            return min(ts) if ts else None

        def put(key, ns):
            if ns is not None:
                out[key] = at(ns)
        put("1st coordinator has the CRITICAL result (check_status)",
            first("check_status", old, to="critical"))
        # The quorum-th (2nd) coordinator to turn its opinion FAILED.
        per = {}
        for e, n in events:
            f = {x.name: x.value for x in e.fields}
            if (e.kind == "opinion" and e.node == old and f.get("opinion") == "failed" and
                    e.time_unix_nano >= kill_ns):
                who = e.coordinator or f"coord-{n}"
                per[who] = min(per.get(who, e.time_unix_nano), e.time_unix_nano)
        if len(per) >= 2:
            put("2nd coordinator's FAILED opinion", sorted(per.values())[1])
        put("leader's verdict", first("verdict", old))
        put("primary_changed event", first("primary_changed", facts.get("primary", "")))
        for r in recs:
            if r.started_unix_nano < kill_ns:
                continue
            if r.action == "restart" and r.node == old:
                put("restart sent (/bin/false)", r.started_unix_nano)
                put(f"restart {admin.ActionState.Name(r.state)[13:]}", r.ended_unix_nano)
            elif r.action == "failover":
                put("failover record written (failover_after over)", r.started_unix_nano)
            elif r.procedure == proc.id:
                key = f"{r.action} {r.node}"
                put(f"{key} sent", r.started_unix_nano)
                put(f"{key} done", r.ended_unix_nano)
        agent_log = c.run / f"agent{PRIMARY}" / "agent.log"
        for t, text in agent_lines(agent_log) if agent_log.exists() else []:
            if t >= kill_ns - 10**6 and "event=process_exited check=redis" in text:
                out["agent sees the exit (pidfd; agent log, ms)"] = at(t)
                break
        return out


AGENT_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z \S+\[\d+\] \w+: (.*)$")


def agent_lines(path):
    """[(ns, text)] of a troika log (UTC, ms)."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = AGENT_LINE.match(line)
            if m:
                t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
                out.append((t * 10**9 + int(m.group(2)) * 10**6, m.group(3)))
    return out


CONTENDERS = {"sentinel": Sentinel, "troika": Troika}


# ---- the trial ----

def trial(args, contender_cls, run):
    """One trial with fresh servers: a dict of times (ms after the kill)."""
    procs = args.Procs()
    c = contender_cls(procs, run)
    args.current = c
    try:
        c.start()
        time.sleep(args.pause + random.random())
        load = os.getloadavg()[0]
        t_kill = c.kill_primary()
        writable = agreed = None
        t_writable = t_agree = None
        deadline = t_kill + AFTER_KILL
        next_poll = t_kill
        rounds = 0
        while t_writable is None or t_agree is None:
            rounds += 1
            now = time.monotonic()
            if now > deadline:
                missing = [what for what, t in (("no replica writable", t_writable),
                                                (f"no agreement of the {c.coordinators}",
                                                 t_agree)) if t is None]
                raise TimeoutError(f"{' and '.join(missing)} {AFTER_KILL:.0f} s after the kill")
            w = c.writable_replica()
            if w and t_writable is None:
                t_writable, writable = time.monotonic(), w
            if t_agree is None:
                a = c.all_agree()
                if a:
                    t_agree, agreed = time.monotonic(), a
            next_poll += POLL
            time.sleep(max(0.0, next_poll - time.monotonic()))
        r = {"writable": ms(t_writable - t_kill), "agree": ms(t_agree - t_kill),
             "promoted": writable, "agreed": agreed, "load": load,
             # A round polls both; one slower than POLL delays the next.
             "round_ms": ms(max(t_writable, t_agree) - t_kill) / rounds,
             "both_writable": c.redis.both_writable,
             "writable_seen": sorted(c.redis.writable_seen)}
        r["path"] = c.path()
        r["path"]["writable (this script's SET)"] = r["writable"]
        r["path"][f"all {c.coordinators} agree (this script's polls)"] = r["agree"]
        return r
    finally:
        args.current = None
        c.stop()
        procs.stop_all()


def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v), len(v)


def fmt(s, width=26, shift=0.0):
    if s is None:
        return f"{'-':>{width}}"
    med, lo, hi, _ = s
    return f"{med - shift:7.1f} ({lo - shift:6.1f}-{hi - shift:6.1f})".rjust(width)


def report(args, results, failed):
    loads = [r["load"] for rs in results.values() for r in rs] or [float("nan")]
    print(f"\n{args.trials} trials per contender; 1-minute load average at the kills "
          f"{min(loads):.2f}-{max(loads):.2f}; median (min-max) in ms after the kill; "
          f"'beyond' = minus the contender's detection timeout (Sentinel: "
          f"down-after-milliseconds {DOWN_AFTER_MS}; troika: failover_after "
          f"{FAILOVER_AFTER_MS} ms)")
    print(f"{'contender':16} {'kill -> writable':>26} {'beyond timeout':>26} "
          f"{'kill -> all agree':>26} {'beyond timeout':>26}")
    for key, rs in results.items():
        c = CONTENDERS[key]
        w, a = stats(r["writable"] for r in rs), stats(r["agree"] for r in rs)
        print(f"{c.name:16} {fmt(w)} {fmt(w, shift=c.timeout_ms)} "
              f"{fmt(a)} {fmt(a, shift=c.timeout_ms)}")
    print(f"\nwritable: the first +OK to a SET on a replica, polled every "
          f"{POLL * 1e3:.0f} ms per replica.\nall agree: all three coordinators "
          f"(sentinels: SENTINEL get-master-addr-by-name; troika: Admin/GetStatus's\n"
          f"  clusters) name the new primary, polled every {POLL * 1e3:.0f} ms each.")
    for key, rs in results.items():
        c = CONTENDERS[key]
        rounds = stats(r.get("round_ms") for r in rs)
        if rounds:
            print(f"{c.name}: one round of polls (SET on each replica, then each "
                  f"coordinator) every {rounds[0]:.1f} ms on average (median of trials; "
                  f"{rounds[1]:.1f}-{rounds[2]:.1f})")
    for key, rs in results.items():
        c = CONTENDERS[key]
        steps = {k: stats(r["path"].get(k) for r in rs) for r in rs for k in r["path"]}
        print(f"\n{c.name}: the path, from the logs, records and events and this "
              f"script's polls,\n  median (min-max) ms after the kill")
        for k, s in sorted(steps.items(), key=lambda kv: kv[1][0]):
            n = f" [{s[3]} of {len(rs)}]" if s[3] != len(rs) else ""
            print(f"  {fmt(s)}  {k}{n}")
        odd_trials = 0
        for i, r in enumerate(rs):
            odd = []
            if r["promoted"] != r["agreed"]:
                odd.append(f"writable {r['promoted']} but the {c.coordinators} agreed "
                           f"on {r['agreed']}")
            if r["both_writable"] or len(r["writable_seen"]) > 1:
                odd.append(f"writable at some point: {', '.join(r['writable_seen'])}")
            if odd:
                odd_trials += 1
                print(f"  trial {i + 1}: {'; '.join(odd)}")
        if rs and not odd_trials:
            print(f"\n{c.name}: in every trial the replica that took the first write was "
                  f"the one all {c.coordinators}\n  agreed on, and the two replicas never "
                  f"both took a write in one poll.")
        promoted = {}
        for r in rs:
            promoted[r["agreed"]] = promoted.get(r["agreed"], 0) + 1
        print(f"  promoted: {', '.join(f'{a} in {k}' for a, k in sorted(promoted.items()))}")
    for key, why in failed.items():
        for w in why:
            print(f"\n{CONTENDERS[key].name}: a trial FAILED: {w}")
    for w in WARNINGS:
        print(f"\nstopping troika's processes found: {w}")
    verdict = None
    w = stats(r["writable"] for r in results.get("sentinel", []))
    a = stats(r["agree"] for r in results.get("sentinel", []))
    if w and a:
        tw, ta = (w[0] - DOWN_AFTER_MS) / 4, (a[0] - DOWN_AFTER_MS) / 4
        print(f"\ntarget (issue 6): troika's time beyond the timeout at most a quarter of "
              f"Sentinel's, medians:\n  writable <= {tw:.1f} ms, all agree <= {ta:.1f} ms "
              f"beyond the timeout")
        xw = stats(r["writable"] for r in results.get("troika", []))
        xa = stats(r["agree"] for r in results.get("troika", []))
        if xw and xa:
            bw, ba = xw[0] - FAILOVER_AFTER_MS, xa[0] - FAILOVER_AFTER_MS
            verdict = bw <= tw and ba <= ta
            print(f"  troika: writable {bw:.1f} ms beyond ({bw / (w[0] - DOWN_AFTER_MS):.2f} "
                  f"of Sentinel's): {'met' if bw <= tw else 'NOT met'}; all agree "
                  f"{ba:.1f} ms beyond ({ba / (a[0] - DOWN_AFTER_MS):.2f} of Sentinel's): "
                  f"{'met' if ba <= ta else 'NOT met'}")
            print(f"  target {'MET' if verdict else 'NOT MET'}")
        else:
            print("  troika: not measured in this run")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"trials": results, "failed": failed, "target_met": verdict}, f,
                      indent=1)


def run_contender(args, key, run, results, failed):
    """args.trials good trials of one contender (fresh servers each)."""
    cls = CONTENDERS[key]
    results[key], failed[key] = rs, bad = [], []
    print(f"\n{cls.name}: {args.trials} trials", flush=True)
    i = 0
    while len(rs) < args.trials:
        i += 1
        if len(bad) > args.trials:
            print(f"{cls.name}: {len(bad)} trials failed; giving up", file=sys.stderr)
            break
        d = run / f"{key}-{i}"
        d.mkdir()
        try:
            r = trial(args, cls, d)
        except Busy:
            raise
        except Exception as e:      # grpc, assertions of the system tests' helpers
            bad.append(f"trial {i}: {type(e).__name__}: {e}")
            print(f"  trial {i} FAILED: {type(e).__name__}: {e} (logs in {d})",
                  file=sys.stderr, flush=True)
            args.keep = True
            continue
        rs.append(r)
        print(f"  trial {i}: writable after {r['writable']:7.1f} ms "
              f"({r['promoted']}), all {cls.coordinators} agree after "
              f"{r['agree']:7.1f} ms ({r['agreed']}), load {r['load']:.2f}",
              flush=True)
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build"),
                    help="the build tree of troika-agent, troika-coord and troika-redis.so")
    ap.add_argument("--trials", type=int, default=7, help="trials per contender (5 to 50)")
    ap.add_argument("--only", default=",".join(CONTENDERS),
                    help="contenders, comma-separated: " + ", ".join(CONTENDERS))
    ap.add_argument("--pause", type=float, default=1.0,
                    help="seconds between the settled cluster and the kill, plus a "
                         "random 0-1 s")
    ap.add_argument("--json", help="also write every trial's figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args()
    args.only = [k for k in args.only.split(",") if k]
    if not 5 <= args.trials <= 50:
        ap.error("--trials takes 5 to 50")
    if not args.only or any(k not in CONTENDERS for k in args.only):
        ap.error(f"--only takes {', '.join(CONTENDERS)}")
    for f, pkg in ((REDIS_SERVER, "redis-server"), (REDIS_SENTINEL, "redis-sentinel")):
        if not os.path.exists(f):
            raise SystemExit(f"missing {f} (apt-get install {pkg})")
    args.build = os.path.abspath(args.build)
    if "troika" in args.only:
        for f in ("core/agent/troika-agent", "core/coord/troika-coord",
                  "plugins/troika-redis.so"):
            if not os.path.exists(os.path.join(args.build, f)):
                raise SystemExit(f"missing {os.path.join(args.build, f)} (cmake --build "
                                 f"{args.build})")
    # cluster.py and conftest.py read the build directory when imported.
    os.environ["TROIKA_BUILD_DIR"] = args.build
    sys.path.insert(0, SYSTEM)
    try:
        from conftest import Procs
    except ModuleNotFoundError as e:
        # conftest imports pytest: Debian's python3 has it (python3-pytest),
        # the pyenv python3 first on PATH here does not.
        if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
            os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
        raise SystemExit(f"{e}: run this with /usr/bin/python3 (python3-pytest)")
    args.Procs = Procs

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args.current = None
    run = pathlib.Path(tempfile.mkdtemp(prefix="troika-bench-failover-"))
    try:
        commit = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        version = subprocess.run([REDIS_SERVER, "--version"], capture_output=True,
                                 text=True).stdout.split()[2]
        print(f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, redis-server "
              f"{version}, {os.cpu_count()} CPUs, load average "
              f"{' '.join(open('/proc/loadavg').read().split()[:3])}"
              f"{', build ' + args.build if 'troika' in args.only else ''}", flush=True)
        results, failed = {}, {}
        for key in args.only:
            if key != "troika":
                run_contender(args, key, run, results, failed)
                continue
            from cluster import ETCD_LOCK
            from grpc_echo import generate_modules
            (run / "pb").mkdir()
            _, agent_pb2, admin_pb2 = generate_modules(run / "pb")
            Troika.pb = (agent_pb2, admin_pb2)
            # etcd's fixed ports on 127.0.1.1-3 are the system tests' too:
            # their lock, for as long as troika's nodes run.
            with open(ETCD_LOCK, "w") as lock:
                print("waiting for the etcd port lock ...", flush=True)
                fcntl.flock(lock, fcntl.LOCK_EX)
                run_contender(args, key, run, results, failed)
        report(args, results, failed)
        return 1 if WARNINGS or any(len(rs) < args.trials for rs in results.values()) \
            else 0
    except Busy as e:
        raise SystemExit(f"{e}: stopped (is another run of this benchmark going on?)")
    except KeyboardInterrupt:
        print("interrupted; stopping every process started", file=sys.stderr)
        return 130
    finally:
        if args.current is not None:
            args.current.stop()
        if args.keep:
            print(f"kept {run}")
        else:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
