#!/usr/bin/python3
"""Benchmark: from kill -9 of redis-server (and of mysqld) to the restart
command and to the service answering again: troika with its 2-of-3
quorum, and Monit.

    tests/bench/bench_recovery.py [--build build] [--kills 7] [--pause 2.5]
        [--services redis,mysql] [--only troika-pidfd,troika-interval,monit]
        [--json FILE] [--keep]

Not a test: it asserts nothing but that every kill was acted on, once,
after two opinions, and builds nothing (run `cmake --preset default &&
cmake --build --preset default` first; troika-agent, troika-coord,
troika-redis.so and troika-mysql.so are used). Issue 5's benchmark, in
one run, one after another, for each service:

  troika-pidfd     the system tests' three nodes on 127.0.1.1-3 (etcd
                   member, troika-coord with store etcd and quorum 2,
                   troika-agent each): redis-server on :6390 each
                   (tests/system/cluster.py), or a MariaDB Galera member
                   on :3306 each (test_recovery_galera.py's GaleraCluster);
                   node 2's check has `service.pidfile`, so the agent
                   watches the server process with a pidfd
  troika-interval  the same without `service.pidfile`: the check's 1 s
                   interval finds the killed server
  monit            Debian's monit 5.33 in the foreground (`set daemon 1`,
                   `check process` by pidfile with a start program, and
                   `if failed host ... port ... protocol redis|mysql ...
                   then restart`), as an operator would write it, with a
                   server of its own: redis-server on 127.0.2.1 (a free
                   port), or a Galera cluster of its own on 127.0.2.1-3
                   (SQL port 3316) watched on node 2, whose start program
                   does what Debian's unit does with galera_recovery
                   (--wsrep-recover after a crash, so the node rejoins by
                   IST), starts mariadbd in the background and waits until
                   it answers, as troika's mysql plugin does

Every variant kills its server with SIGKILL --kills times, each after
--pause seconds plus a random 0-1 s (so kills fall anywhere in the 1 s
cycle), once the previous recovery is complete: for troika, the action
record SUCCEEDED, the service answering (Galera: three Synced members),
no FAILED opinion left in etcd and the policy's cooldown over. The
coordinators' policy lets every kill be acted on: fail_after 3,
certain_after 2 (the clusters' defaults), a ladder of --kills restarts
(Redis) or starts (mysql), max_attempts --kills, backoff 0s, cooldown 1s
(Redis) or 5s (mysql).

The intervals, all on the wall clock (CLOCK_REALTIME) of this one machine:

  kill          just before kill(2), in this script
  command       troika: the leader's `action_started` event (its
                time_unix_nano), emitted after the action record's guarded
                transaction succeeded and right before the command is
                written to the agent's stream. Monit has no command to
                send; its restart is `start program`, so "kill -> start"
                below is the figure to compare
  start         the restarted redis-server's "Redis is starting" log line
                (ms resolution); for mysql, the new mariadbd's start time
                from /proc (10 ms steps); both troika and Monit
  answering     the first PONG, or the first SELECT 1 answered over TCP
                (a mysql_native_password login): after the killed process
                is gone, one probe on a new connection every 5 ms
  quorum        troika: from the quorum-th (2nd) FAILED opinion of node 2's
                check in etcd to the command. The opinion's time in etcd is
                the earlier of: this script's own gRPC watch on
                <prefix>/opinions/, on the leader's etcd member (the one the
                leader watches), receiving its put; and the leader's
                `verdict` event (the leader counts an opinion only once its
                own watch delivered it). grpcio's threads add about half a
                millisecond to this script's watch, so the verdict is
                usually the earlier

and, per troika variant, the path as the processes log it (medians): the
agent's first CRITICAL result, the first coordinator to receive it
(`check_status` event), the quorum-th coordinator forming its FAILED
opinion (`opinion` event), the opinion in etcd (the watch), the leader's
`verdict`, the command sent, the agent's "command ... from" log line (ms
resolution), its "service restart|start" line (ms; for mysql after the
plugin's --wsrep-recover), the server starting and answering.

This machine's PID 1 reaps orphans seconds late, and Monit will not
restart a process that is still a zombie: the killed, daemonized
redis-server stays a zombie of PID 1 and Monit says "is a zombie" for a
cycle or two. So that Monit is measured as on a machine whose init reaps
at once (systemd), Monit and the troika agents each run under a tiny
subreaper (PR_SET_CHILD_SUBREAPER) that reaps every orphan at once;
troika's timings do not depend on it (pidfd and connection refused see
the exit whether or not the process was reaped).

Every process is started in its own process group and stopped by PID
(the daemonized servers by their pidfiles), also on Ctrl-C or
SIGTERM; the temporary directory goes too (--keep leaves it, for a look at
the logs). etcd's fixed ports are held with the lock the system tests take
(cluster.ETCD_LOCK) for the whole run.
"""
import argparse
import calendar
import fcntl
import hashlib
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
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
SYSTEM = os.path.join(SRC, "tests", "system")
MONIT = shutil.which("monit") or "/usr/bin/monit"
MONIT_HOST = "127.0.2.1"      # 127.0.1.x belongs to the cluster
PREFIX = "/troika-test"       # cluster.py's etcd prefix
NODE = 2                      # whose redis-server is killed
VARIANTS = ("troika-pidfd", "troika-interval", "monit")
SERVICES = ("redis", "mysql")

# Run as `python3 -c REAPER argv...`: a subreaper that runs argv and reaps
# every orphan its descendants leave at once, as systemd would; it ignores
# TERM and INT (they reach argv through the process group) and exits as
# argv did.
REAPER = r"""
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
while True:
    p, st = os.wait()
    if p == pid:
        break
code = os.waitstatus_to_exitcode(st)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def reaped(argv):
    return ["/usr/bin/python3", "-c", REAPER, *argv]


def now_ns():
    return time.time_ns()


def ms(ns):
    return ns / 1e6


# ---- small helpers on processes and Redis ----

def alive(pid):
    """True unless pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def ping(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def read_pid(path):
    with open(path) as f:
        return int(f.read().strip())


def wait_for(cond, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


# ---- logs ----

AGENT_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z \S+\[\d+\] \w+: (.*)$")
REDIS_START = re.compile(r"^\d+:\w (\d+ \w{3} \d{4} \d\d:\d\d:\d\d)\.(\d{3}) . "
                         r"oO0OoO0OoO0Oo Redis is starting")


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


def redis_starts(path):
    """[ns] of every "Redis is starting" line (local time, ms)."""
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = REDIS_START.match(line)
                if m:
                    t = time.mktime(time.strptime(m.group(1), "%d %b %Y %H:%M:%S"))
                    out.append(int(t) * 10**9 + int(m.group(2)) * 10**6)
    except FileNotFoundError:
        pass
    return out


def first_after(times, t, until=None):
    for x in sorted(times):
        if x >= t and (until is None or x < until):
            return x
    return None


# ---- etcd: our own watch on the opinions ----

class OpinionWatch:
    """A watch on <prefix>/opinions/ over etcd's gRPC API (as troika-coord
    watches), on the given member, in grpcio's threads. Keeps (arrival ns,
    put|delete, key) of every event."""

    def __init__(self, etcd_pb2, host, port=2379):
        import grpc
        self.events = []
        self.lock = threading.Lock()
        self.error = None
        self.closing = threading.Event()
        key = f"{PREFIX}/opinions/".encode()
        end = key[:-1] + bytes([key[-1] + 1])
        create = etcd_pb2.WatchRequest(create_request=etcd_pb2.WatchCreateRequest(
            key=key, range_end=end))
        self.channel = grpc.insecure_channel(f"{host}:{port}")
        call = self.channel.stream_stream(
            "/etcdserverpb.Watch/Watch",
            request_serializer=etcd_pb2.WatchRequest.SerializeToString,
            response_deserializer=etcd_pb2.WatchResponse.FromString)

        def requests():
            yield create
            self.closing.wait()
        self.stream = call(requests())
        first = next(self.stream)
        if not first.created:
            raise SystemExit(f"etcd watch not created: {first}")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import grpc
        try:
            for resp in self.stream:
                t = now_ns()
                for ev in resp.events:
                    kind = "delete" if ev.type == 1 else "put"
                    with self.lock:
                        self.events.append((t, kind, ev.kv.key.decode()))
                if resp.canceled:
                    self.error = f"watch cancelled: {resp.cancel_reason}"
                    return
        except grpc.RpcError as e:
            if not self.closing.is_set():
                self.error = e

    def of(self, node, check):
        """[(ns, kind, coordinator)] for node/check."""
        suffix = f"/{node}/{check}"
        base = f"{PREFIX}/opinions/"
        with self.lock:
            return [(t, k, key[len(base):-len(suffix)]) for t, k, key in self.events
                    if key.startswith(base) and key.endswith(suffix)]

    def failed_now(self, node, check):
        live = set()
        for _, kind, coord in self.of(node, check):
            (live.add if kind == "put" else live.discard)(coord)
        return live

    def quorum_time(self, node, check, after, quorum=2):
        """When the quorum-th FAILED opinion was put after `after`."""
        live = set()
        for t, kind, coord in sorted(self.of(node, check)):
            (live.add if kind == "put" else live.discard)(coord)
            if t >= after and len(live) >= quorum:
                return t
        return None

    def close(self):
        self.closing.set()
        self.stream.cancel()
        self.channel.close()


# ---- MySQL: is the server answering queries? ----

def mysql_answers(host, port, user, password, timeout=0.5):
    """True if the server takes a mysql_native_password login over TCP and
    answers SELECT 1 with a result set (a Galera node that is not ready
    answers 1047 instead)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            f = s.makefile("rb")

            def read():
                head = f.read(4)
                if len(head) < 4:
                    raise ConnectionError("closed")
                return head[3], f.read(int.from_bytes(head[:3], "little"))

            def send(seq, body):
                s.sendall(len(body).to_bytes(3, "little") + bytes([seq]) + body)
            seq, p = read()
            if not p or p[0] != 10:          # not a v10 handshake: an error
                return False
            i = p.index(b"\0", 1) + 1 + 4    # server version, thread id
            salt = p[i:i + 8]
            i += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
            salt += p[i:i + 12]
            h1 = hashlib.sha1(password.encode()).digest()
            h3 = hashlib.sha1(salt + hashlib.sha1(h1).digest()).digest()
            token = bytes(x ^ y for x, y in zip(h1, h3))
            # LONG_PASSWORD, PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH
            caps = 0x1 | 0x200 | 0x8000 | 0x80000
            send(seq + 1, caps.to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") +
                 bytes([33]) + bytes(23) + user.encode() + b"\0" + bytes([len(token)]) +
                 token + b"mysql_native_password\0")
            _, r = read()
            if not r or r[0] != 0:
                return False
            send(0, b"\x03SELECT 1")
            _, r = read()
            return bool(r) and r[0] not in (0x00, 0xff)
    except (OSError, ValueError, IndexError):
        return False


def process_start_ns(pid):
    """When pid was started (exec'd or forked), on the wall clock: /proc
    gives clock ticks (10 ms) since boot, CLOCK_BOOTTIME's zero (btime is
    whole seconds, too coarse)."""
    with open(f"/proc/{pid}/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    since = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - ticks * 10**9 // os.sysconf(
        "SC_CLK_TCK")
    return now_ns() - since


# ---- troika ----

POLICY = """\
  policies:
    - match: "{match}"
      fail_after: 3
      certain_after: 2
      down_after: 30s
      ladder: [{ladder}]
      max_attempts: {n}
      window: 1h
      backoff: 0s
      cooldown: {cooldown}
      action_timeout: {timeout}
"""


class RedisService:
    """tests/system/cluster.py as it is: redis-server on each node."""
    name, check, action, match = "redis", "redis", "restart", "redis*"
    cooldown, timeout = "1s", "30s"

    def __init__(self):
        from cluster import IPS, REDIS_PORT, Cluster
        self.base = Cluster
        self.host, self.port = IPS[NODE], REDIS_PORT

    def pidfile(self, c):
        return c.redis_pidfile(NODE)

    def answers(self):
        return ping(self.host, self.port)

    def ready(self, c):
        return self.answers()

    def killed(self, galera):
        pass

    def back(self, c):
        pass

    def starts(self, c):
        return redis_starts(str(c.redis_dir(NODE) / "redis.log"))


class MysqlService:
    """tests/system/test_recovery_galera.py's GaleraCluster: a MariaDB
    Galera member on each node; the action is the mysql plugin's start
    (recovers the position after a crash, so the node rejoins by IST)."""
    name, check, action, match = "mysql", "db", "start", "db"
    # The start waits until the node is Synced; a little more for the
    # check to say OK before the cooldown ends.
    cooldown, timeout = "5s", "90s"

    def __init__(self):
        from cluster import IPS
        from galera_server import PASSWORD, PORT, USER
        from test_recovery_galera import GaleraCluster
        self.base = GaleraCluster
        self.host, self.port = IPS[NODE], PORT
        self.user, self.password = USER, PASSWORD

    def pidfile(self, c):
        return str(c.galera.nodes[NODE - 1].pidfile)

    def answers(self):
        return mysql_answers(self.host, self.port, self.user, self.password)

    def ready(self, c):
        for node in c.galera.nodes:
            if not node.running():
                node.adopt(timeout=5)
        return all(node.synced(3) for node in c.galera.nodes)

    def killed(self, galera):
        node = galera.nodes[NODE - 1]
        if node.proc is not None and node.proc.poll() is None:
            # The harness started it: reap it. The leader thread is a
            # zombie before the other threads are gone, so wait.
            node.proc.wait(30)

    def back(self, c):
        c.galera.nodes[NODE - 1].adopt()

    def starts(self, c):
        return []


def kill_and_time(svc, c, pidfile):
    """kill -9 the server of pidfile; (t_kill, t_answering) in ns. The
    first probe goes out once the killed process is gone (a zombie counts
    as gone), then one every 5 ms on a new connection."""
    pid = read_pid(pidfile)
    t_kill = now_ns()
    os.kill(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.0005)
    svc.killed(getattr(c, "galera", None))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if svc.answers():
            return t_kill, now_ns()
        time.sleep(0.005)
    raise SystemExit(f"{svc.name} did not answer within 120 s of the kill")


def troika_variant(args, run, pb, svc, pidfd, kills, extra):
    from cluster import IPS
    from conftest import AGENT

    name = f"{svc.name} troika-{'pidfd' if pidfd else 'interval'}"

    class BenchCluster(svc.base):
        """The system tests' three nodes; the pidfile only with the pidfd
        watch, room for every kill in the limits, agents under the
        subreaper."""

        def coord_conf(self, n):
            text = super().coord_conf(n)
            assert "max_per_hour: 20\n" in text
            return text.replace("max_per_hour: 20\n", f"max_per_hour: {args.kills + 10}\n")

        def checks_yaml(self, n):
            text = super().checks_yaml(n)
            line = re.search(r"\n      pidfile: [^\n]*\n", text)
            assert line, text
            return text if pidfd else text.replace(line.group(0), "\n")

        def start_agent(self, n):
            d = self.run / f"agent{n}"
            d.mkdir(exist_ok=True)
            (d / "agent.yaml").write_text(self.agent_conf(n))
            self.agents[n] = self.procs.start(reaped(
                [AGENT, "--config", str(d / "agent.yaml"), "--admin-socket",
                 str(d / "admin.sock")]), d / "agent.log")

    policy = POLICY.format(match=svc.match, ladder=", ".join([svc.action] * args.kills),
                           n=args.kills, cooldown=svc.cooldown, timeout=svc.timeout)
    run.mkdir()
    c = BenchCluster(args.procs, run, pb, policy=policy)
    args.cleanup.append(c.stop)
    print(f"\n{name}: starting three nodes ...", flush=True)
    c.start()
    leader, token = c.leader()
    watch = OpinionWatch(args.etcd_pb2, IPS[leader])
    args.cleanup.append(watch.close)
    pidfile = svc.pidfile(c)
    node, check = f"node-{NODE}", svc.check
    admin = pb[1]
    seen = set()
    cooldown_ns = int(svc.cooldown[:-1]) * 10**9
    print(f"{name}: leader coord-{leader} (token {token}); {args.kills} kills of "
          f"node {NODE}'s server", flush=True)
    for i in range(args.kills):
        def steady():
            if watch.failed_now(node, check) or not svc.ready(c):
                return False
            return all(r.state != admin.ACTION_STATE_RUNNING for r in c.actions(leader))
        wait_for(steady, 120, "the previous recovery to be complete", interval=0.1)
        # Past the cooldown, whatever the pause.
        if kills:
            ended = max(r.ended_unix_nano for r in c.actions(leader))
            time.sleep(max(0, (ended + cooldown_ns - now_ns()) / 1e9))
        time.sleep(args.pause + random.random())
        load = os.getloadavg()[0]
        t_kill, t_answer = kill_and_time(svc, c, pidfile)

        def recorded():
            mine = sorted((r for r in c.actions(leader) if r.id not in seen and
                           (r.node, r.check) == (node, check) and
                           r.started_unix_nano >= t_kill),
                          key=lambda r: r.started_unix_nano)
            if not mine or mine[0].state == admin.ACTION_STATE_RUNNING:
                return None
            if mine[0].state != admin.ACTION_STATE_SUCCEEDED:
                raise SystemExit(f"kill {i + 1}: {mine[0]}")
            return mine
        new = wait_for(recorded, 120, f"the {svc.action} of kill {i + 1} recorded as "
                       "SUCCEEDED", interval=0.05)
        svc.back(c)
        rec = new[0]
        seen.add(rec.id)
        k = {"kill": t_kill, "answer": t_answer, "id": rec.id, "load": load,
             "attempt": rec.attempt, "opinions": len(set(rec.opinions))}
        if not svc.starts(c):
            k["start"] = process_start_ns(read_pid(pidfile))
        kills.append(k)
        print(f"  kill {i + 1}: answering after {ms(t_answer - t_kill):7.1f} ms "
              f"(action {rec.id}, attempt {rec.attempt}, {len(set(rec.opinions))} "
              f"opinions, load {load:.2f})", flush=True)
        if len(set(rec.opinions)) < 2:
            raise SystemExit(f"action {rec.id} with fewer than 2 opinions: {rec.opinions}")
    if watch.error:
        raise SystemExit(f"the etcd watch failed: {watch.error}")

    # Everything the processes logged or kept about it.
    events = {n: c.events(n) for n in (1, 2, 3)}
    agent = agent_lines(c.run / f"agent{NODE}" / "agent.log")
    starts = svc.starts(c)
    watched = sum(f"check={check}: watching main process" in t for _, t in agent)
    exits = sum(f"event=process_exited check={check}" in t for _, t in agent)
    print(f"{name}: the agent saw the process exit (pidfd) {exits} times", flush=True)
    if pidfd and watched == 0:
        raise SystemExit("pidfd variant: the agent never watched the process")
    if not pidfd and watched:
        raise SystemExit("interval variant: the agent watched the process")
    # Actions the kills did not ask for: on other nodes (a Galera member
    # that lost its Primary component while node 2 rejoined), or a second
    # one on node 2.
    recs = c.actions(leader)
    ids = {k["id"] for k in kills}
    mine = [r for r in recs if (r.node, r.check) == (node, check)]
    other = [r for r in recs if r.id not in ids]
    if len(mine) != len(kills) or other:
        print(f"{name}: {len(mine)} actions on {node}/{check} for {len(kills)} kills, "
              f"{len(other)} that no kill asked for:", flush=True)
        for r in sorted(other, key=lambda r: r.started_unix_nano):
            print(f"  {r.node}/{r.check} {r.action} ({r.reason[:100]}): "
                  f"{admin.ActionState.Name(r.state)}: {r.message[:100]}", flush=True)
    extra[name] = [(r.node, r.action, r.reason, r.message) for r in other]

    def ev_times(kind, **fields):
        """{(time, coordinator)} of the events of kind on node/check, as
        any coordinator shows them (each its own ring)."""
        out = set()
        for n in (1, 2, 3):
            for e in events[n]:
                if e.kind != kind or e.node != node or e.check != check:
                    continue
                f = {lab.name: lab.value for lab in e.fields}
                if all(f.get(k) == v for k, v in fields.items()):
                    out.add((e.time_unix_nano, e.coordinator or f"coord-{n}"))
        return out

    for i, k in enumerate(kills):
        t, end = k["kill"], kills[i + 1]["kill"] if i + 1 < len(kills) else None
        sent = ev_times("action_started", id=k["id"])
        k["sent"] = min(x for x, _ in sent) if sent else None
        k["verdict"] = first_after([x for x, _ in ev_times("verdict")], t, end)
        k["result_coord"] = first_after([x for x, _ in ev_times("check_status", to="critical")],
                                        t, end)
        # The quorum-th coordinator to form its FAILED opinion.
        opinions = ev_times("opinion", opinion="failed")
        ops = sorted(first_after([x for x, who in opinions if who == co], t, end) or 2**63
                     for co in {who for _, who in opinions})
        k["opinion"] = ops[1] if len(ops) > 1 and ops[1] < 2**63 else None
        # In etcd: the earlier of our watch receiving the put and the
        # leader's verdict (which its own watch must have delivered first;
        # python's grpcio adds a fraction of a millisecond to ours).
        k["etcd_watch"] = watch.quorum_time(node, check, t)
        known = [x for x in (k["etcd_watch"], k["verdict"]) if x is not None]
        k["etcd"] = min(known) if known else None
        crit = [x for x, s in agent if f"event=check_status check={check} " in s and
                "to=critical" in s.lower()]
        k["result_agent"] = first_after(crit, t, end)
        k["recv"] = first_after([x for x, s in agent
                                 if s.startswith(f"command {k['id']} from ")], t - 10**6, end)
        k["svc"] = first_after([x for x, s in agent
                                if s == f"check={check}: service {svc.action}"], t - 10**6, end)
        if starts:
            k["start"] = first_after(starts, t, end)
    watch.close()
    print(f"{name}: stopping", flush=True)
    args.cleanup.remove(watch.close)
    args.cleanup.remove(c.stop)
    try:
        c.stop()
    except AssertionError as e:
        print(f"warning: {name}: {e}", file=sys.stderr)


# ---- Monit ----

REDIS_CONF = """bind {host}
port {port}
daemonize yes
protected-mode no
dir {dir}
pidfile {dir}/redis.pid
logfile "{dir}/redis.log"
save ""
appendonly no
maxmemory 64mb
"""

MONITRC = """set daemon 1
set logfile {dir}/monit.log
set pidfile {dir}/monit.pid
set idfile {dir}/monit.id
set statefile {dir}/monit.state

"""

MONIT_REDIS = """check process redis with pidfile {dir}/redis.pid
    start program = "{redis} {dir}/redis.conf"
    stop program = "{cli} -h {host} -p {port} shutdown nosave"
    if failed host {host} port {port} protocol redis then restart
"""

# A Galera node without systemd: what Debian's unit does with
# galera_recovery (the position after a crash, so the node rejoins by IST),
# start in the background, and wait until it answers, as troika's mysql
# plugin does.
MYSQL_START = """#!/bin/sh
pos=
if grep -q '^seqno: *-1' {datadir}/grastate.dat 2>/dev/null; then
    : > {dir}/recover.log
    chown mysql:mysql {dir}/recover.log
    {mariadbd} --defaults-file={cnf} --wsrep-recover --log-error={dir}/recover.log
    pos=$(sed -n 's/.*WSREP: Recovered position: *//p' {dir}/recover.log | tail -n 1)
fi
/usr/sbin/start-stop-daemon --start --background --pidfile {pidfile} --exec {mariadbd} \\
    -- --defaults-file={cnf} ${{pos:+--wsrep_start_position=$pos}}
i=0
while [ $i -lt 900 ]; do
    /usr/bin/mariadb-admin --no-defaults -S {sock} -uroot ping >/dev/null 2>&1 && exit 0
    sleep 0.1
    i=$((i + 1))
done
exit 1
"""

MONIT_MYSQL = """check process mysqld with pidfile {pidfile}
    start program = "{start}" with timeout 120 seconds
    stop program = "/usr/sbin/start-stop-daemon --stop --pidfile {pidfile} --exec {mariadbd} --retry 60"
    if failed host {host} port {port} protocol mysql for 3 cycles then restart
"""
MONIT_MYSQL_PORT = 3316       # bench_agent_vs_collectd has 127.0.2.1:3306


def monit_galera(procs, run):
    """A Galera cluster of its own for Monit, on 127.0.2.1-3 (SQL port
    3316), made by tests/system/galera_server.py."""
    import galera_server

    class Node(galera_server.Node):
        def __init__(self, cluster, n):
            super().__init__(cluster, n)
            self.ip = f"{MONIT_HOST[:-1]}{n}"
            self.port = MONIT_MYSQL_PORT

        def write_config(self):
            super().write_config()
            self.cnf.write_text(self.cnf.read_text().replace("127.0.1.", MONIT_HOST[:-1]))

    class Cluster(galera_server.Cluster):
        def __init__(self, procs, workdir):
            super().__init__(procs, workdir)
            self.nodes = [Node(self, n) for n in (1, 2, 3)]

    (run / "galera").mkdir()
    galera_server.let_mysql_through(run / "galera", run.parent)
    return Cluster(procs, run / "galera")


def monit_variant(args, run, svc, kills):
    from redis_server import REDIS_CLI, REDIS_SERVER, kill_pidfile

    name = f"{svc.name} monit"
    run.mkdir()
    d = str(run)
    rc = run / "monitrc"
    galera = None
    if svc.name == "redis":
        with socket.socket() as s:
            s.bind((MONIT_HOST, 0))
            host, port = MONIT_HOST, s.getsockname()[1]
        (run / "redis.conf").write_text(REDIS_CONF.format(host=host, port=port, dir=d))
        rc.write_text(MONITRC.format(dir=d) + MONIT_REDIS.format(
            dir=d, redis=REDIS_SERVER, cli=REDIS_CLI, host=host, port=port))
        pidfile = str(run / "redis.pid")
        args.cleanup.append(lambda: kill_pidfile(pidfile))

        def answers():
            return ping(host, port)
        ready = answers
    else:
        from galera_server import MARIADBD
        galera = monit_galera(args.procs, run)
        n2 = galera.nodes[NODE - 1]
        host, port, pidfile = n2.ip, n2.port, str(n2.pidfile)
        start = run / "start-mysqld"
        start.write_text(MYSQL_START.format(datadir=n2.datadir, dir=d, mariadbd=MARIADBD,
                                            cnf=n2.cnf, pidfile=pidfile, sock=n2.sock))
        start.chmod(0o755)
        rc.write_text(MONITRC.format(dir=d) + MONIT_MYSQL.format(
            pidfile=pidfile, start=start, host=host, port=port, mariadbd=MARIADBD))
        args.cleanup.append(galera.stop)
        print(f"\n{name}: starting a Galera cluster on {MONIT_HOST[:-1]}1-3 ...", flush=True)
        galera.start()

        def answers():
            return mysql_answers(host, port, svc.user, svc.password)

        def ready():
            for node in galera.nodes:
                if not node.running():
                    node.adopt(timeout=5)
            return all(node.synced(3) for node in galera.nodes)
    rc.chmod(0o600)    # monit refuses a control file others can read
    print(f"\n{name}: starting monit (set daemon 1), server on {host}:{port} ...", flush=True)
    p = args.procs.start(reaped([MONIT, "-I", "-c", str(rc)]), run / "monit.out")
    # For Redis, Monit's first cycle starts the server.
    wait_for(lambda: p.poll() is None and answers(), 60, f"{name}'s server")
    for i in range(args.kills):
        wait_for(ready, 120, "the server answering", interval=0.1)
        time.sleep(args.pause + random.random())
        load = os.getloadavg()[0]
        pid = read_pid(pidfile)
        t_kill = now_ns()
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.0005)
        if galera is not None:
            svc.killed(galera)
        deadline = time.monotonic() + 120
        while not answers():
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: no answer within 120 s of kill {i + 1}")
            time.sleep(0.005)
        t_answer = now_ns()
        k = {"kill": t_kill, "answer": t_answer, "load": load}
        if galera is not None:
            galera.nodes[NODE - 1].adopt()
            k["start"] = process_start_ns(read_pid(pidfile))
        kills.append(k)
        print(f"  kill {i + 1}: answering after {ms(t_answer - t_kill):7.1f} ms "
              f"(load {load:.2f})", flush=True)
    if galera is None:
        starts = redis_starts(str(run / "redis.log"))
        for i, k in enumerate(kills):
            end = kills[i + 1]["kill"] if i + 1 < len(kills) else None
            k["start"] = first_after(starts, k["kill"], end)
    with open(run / "monit.log", errors="replace") as f:
        log = f.read()
    print(f"{name}: {log.count('process is not running')} cycles found the process not "
          f"running, {log.count('is a zombie')} found a zombie, "
          f"{log.count('failed protocol test')} a failed protocol test", flush=True)
    args.procs.stop(p)
    if galera is not None:
        args.cleanup.remove(galera.stop)
        galera.stop()
    else:
        kill_pidfile(pidfile)


# ---- report ----

def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v), len(v)


def span(kills, a, b):
    return [ms(k[b] - k[a]) if k.get(a) is not None and k.get(b) is not None else None
            for k in kills]


def fmt(s, width=24):
    if s is None:
        return f"{'-':>{width}}"
    med, lo, hi, n = s
    return f"{med:7.1f} ({lo:6.1f}-{hi:6.1f})".rjust(width)


PATH = (("kill", "result_agent", "agent's first CRITICAL result (agent log, ms)"),
        ("result_agent", "result_coord", "the first coordinator has it (check_status event)"),
        ("result_coord", "opinion", "the 2nd coordinator's FAILED opinion (opinion event)"),
        ("opinion", "etcd", "that opinion put in etcd (see quorum decision)"),
        ("etcd", "verdict", "the leader's verdict (its watch, quorum counted)"),
        ("verdict", "sent", "record transaction; command sent (action_started)"),
        ("sent", "recv", "the agent logs the command (ms)"),
        ("recv", "svc", "the agent starts the service (ms; mysql: after --wsrep-recover)"),
        ("svc", "start", "the server starts (redis: its log, ms; mariadbd: /proc, 10 ms)"),
        ("start", "answer", "answering (5 ms polls)"))


def report(args, results, extra, failed):
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    loads = [k["load"] for kills in results.values() for k in kills] or [float("nan")]
    print(f"\n{args.kills} kills per variant; 1-minute load average at the kills "
          f"{min(loads):.2f}-{max(loads):.2f}, at the end {load}; median (min-max) in ms")
    print(f"{'variant':22} {'kill -> command':>24} {'kill -> start':>24} "
          f"{'kill -> answering':>24} {'quorum decision':>24}")
    rows = {}
    for name, kills in results.items():
        row = (stats(span(kills, "kill", "sent")), stats(span(kills, "kill", "start")),
               stats(span(kills, "kill", "answer")), stats(span(kills, "etcd", "sent")))
        rows[name] = row
        print(f"{name:22} " + " ".join(fmt(s) for s in row))
    print("\nkill -> command: troika's leader emits action_started (after the record's "
          "transaction, right before\n  writing the command); Monit has no command: "
          "see kill -> start.\nkill -> start: redis: the restarted redis-server's "
          "\"Redis is starting\" log line (ms); mysql: the new\n  mariadbd's start time "
          "(/proc, 10 ms steps).\nkill -> answering: redis: the first PONG; mysql: the "
          "first SELECT 1 answered over TCP; polled every\n  5 ms on new connections once "
          "the process is gone.\nquorum decision: the 2nd FAILED opinion in etcd (this "
          "script's watch or the leader's verdict,\n  whichever came first) to the "
          "command.")
    for name, kills in results.items():
        if "troika" not in name:
            continue
        print(f"\n{name}: the path, median (min-max) ms per step")
        for a, b, what in PATH:
            print(f"  {fmt(stats(span(kills, a, b)))}  {what}")
        print(f"  {fmt(stats(span(kills, 'kill', 'answer')))}  total, kill -> answering")
        print(f"  {fmt(stats(span(kills, 'verdict', 'etcd_watch')))}  (this script's watch "
              f"after the leader's verdict)")
    for service in SERVICES:
        monit = rows.get(f"{service} monit")
        if not monit or not monit[2]:
            continue
        m = monit[2][0]
        print(f"\n{service}: targets: answering again in at most a quarter of Monit's median "
              f"({m / 4:.1f} ms); quorum decision under 4 ms median")
        for name, row in rows.items():
            if not name.startswith(f"{service} troika") or row[2] is None:
                continue
            ok = row[2][0] <= m / 4
            q = row[3]
            qok = q is not None and q[0] < 4
            print(f"  {name:22} answering {row[2][0]:8.1f} ms = {row[2][0] / m:.2f} "
                  f"of Monit's: {'met' if ok else 'NOT met'}; quorum decision "
                  f"{q[0] if q else float('nan'):.1f} ms: {'met' if qok else 'NOT met'}")
    for name, why in failed.items():
        print(f"\n{name}: FAILED ({why}); its figures are of the kills before")
    for name, recs in extra.items():
        if recs:
            print(f"\n{name}: {len(recs)} actions nobody killed for:")
            for node, action, reason, message in recs:
                print(f"  {node} {action}: {reason[:120]} -> {message[:80]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"kills": results, "extra": extra, "failed": failed}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--kills", type=int, default=7, help="kills per variant (1 to 30)")
    ap.add_argument("--pause", type=float, default=2.5,
                    help="seconds between a complete recovery and the next kill, "
                         "plus a random 0-1 s")
    ap.add_argument("--services", default=",".join(SERVICES),
                    help="services, comma-separated: " + ", ".join(SERVICES))
    ap.add_argument("--only", default=",".join(VARIANTS),
                    help="variants, comma-separated: " + ", ".join(VARIANTS))
    ap.add_argument("--json", help="also write every kill's times (ns) to this file")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args()
    args.only = [v for v in args.only.split(",") if v]
    args.services = [v for v in args.services.split(",") if v]
    if (any(v not in VARIANTS for v in args.only) or not 1 <= args.kills <= 30 or
            any(v not in SERVICES for v in args.services)):
        ap.error(f"--only takes {', '.join(VARIANTS)}; --services {', '.join(SERVICES)}; "
                 "--kills 1 to 30")
    args.build = os.path.abspath(args.build)
    for f in ["core/agent/troika-agent", "core/coord/troika-coord"] + [
            f"plugins/troika-{svc}.so" for svc in args.services]:
        if not os.path.exists(os.path.join(args.build, f)):
            raise SystemExit(f"missing {os.path.join(args.build, f)}")
    if "monit" in args.only and not os.path.exists(MONIT):
        raise SystemExit("monit is not installed (apt-get install monit)")
    # cluster.py reads the build directory when it is imported.
    os.environ["TROIKA_BUILD_DIR"] = args.build
    sys.path.insert(0, SYSTEM)
    from cluster import ETCD_LOCK
    from conftest import Procs
    from grpc_echo import generate_modules
    # The watch thread's timestamps should not wait for the main thread.
    sys.setswitchinterval(0.0005)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args.procs = Procs()
    args.cleanup = []
    run = pathlib.Path(tempfile.mkdtemp(prefix="troika-bench-recovery-"))
    lock = open(ETCD_LOCK, "w")
    try:
        commit = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        print(f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, build "
              f"{args.build}, load average "
              f"{' '.join(open('/proc/loadavg').read().split()[:3])}", flush=True)
        print("waiting for the etcd port lock ...", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        (run / "pb").mkdir()
        _, agent_pb2, admin_pb2 = generate_modules(run / "pb")
        # etcd's gRPC messages, for the watch on the opinions.
        subprocess.run(["protoc", f"--python_out={run / 'pb'}", f"-I{SRC}/proto",
                        "etcd/kv.proto", "etcd/etcd.proto"], check=True)
        import importlib
        args.etcd_pb2 = importlib.import_module("etcd.etcd_pb2")
        results, extra, failed = {}, {}, {}
        for service in args.services:
            svc = RedisService() if service == "redis" else MysqlService()
            for v in args.only:
                d = run / f"{service}-{v}"
                name = f"{service} {v}"
                results[name] = kills = []
                # One variant failing leaves the others' figures.
                try:
                    if v == "monit":
                        monit_variant(args, d, svc, kills)
                    else:
                        troika_variant(args, d, (agent_pb2, admin_pb2), svc,
                                       v == "troika-pidfd", kills, extra)
                except (SystemExit, Exception) as e:
                    failed[name] = f"{type(e).__name__}: {e}"
                    print(f"{name} FAILED after {len(kills)} kills: {failed[name]}",
                          file=sys.stderr, flush=True)
                finally:
                    while args.cleanup:
                        fn = args.cleanup.pop()
                        try:
                            fn()
                        except Exception as e:     # cleanup goes on whatever failed
                            print(f"warning: cleanup: {e}", file=sys.stderr)
        report(args, results, extra, failed)
    finally:
        for fn in reversed(args.cleanup):
            try:
                fn()
            except Exception as e:     # cleanup goes on whatever failed
                print(f"warning: cleanup: {e}", file=sys.stderr)
        args.procs.stop_all()
        lock.close()
        if args.keep:
            print(f"kept {run}")
        else:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
