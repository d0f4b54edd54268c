#!/usr/bin/python3
"""Benchmark: from kill -9 of redis-server to the restart command and to
Redis answering again: troika with its 2-of-3 quorum, and Monit.

    tests/bench/bench_recovery.py [--build build] [--kills 7] [--pause 2.5]
        [--only troika-pidfd,troika-interval,monit] [--keep]

Not a test: it asserts nothing but that every kill was acted on, and
builds nothing (run `cmake --preset default && cmake --build --preset
default` first; troika-agent, troika-coord and troika-redis.so are used).
Issue 5's benchmark, in one run, one after another:

  troika-pidfd     tests/system/cluster.py's three nodes on 127.0.1.1-3
                   (etcd member, troika-coord with store etcd and quorum 2,
                   troika-agent, redis-server on :6390 each); node 2's check
                   has `service.pidfile`, so the agent watches the
                   redis-server process with a pidfd
  troika-interval  the same without `service.pidfile`: the check's 1 s
                   interval finds the killed server
  monit            Debian's monit 5.33 in the foreground (`set daemon 1`,
                   `check process` by pidfile with a start program and
                   `if failed host ... port ... protocol redis then
                   restart`) and its own redis-server on 127.0.2.1 (a free
                   port), as an operator would write it

Every variant kills its redis-server with SIGKILL --kills times, each
after --pause seconds plus a random 0-1 s (so kills fall anywhere in the
1 s cycle), once the previous recovery is complete: for troika, the
action record SUCCEEDED, Redis answering and no FAILED opinion left in
etcd. The coordinators' policy lets every kill be acted on: fail_after 3,
certain_after 2 (the cluster's defaults), ladder of --kills restarts,
max_attempts --kills, backoff 0s, cooldown 1s.

The intervals, all on the wall clock (CLOCK_REALTIME) of this one machine:

  kill          just before kill(2), in this script
  command       troika: the leader's `action_started` event (its
                time_unix_nano), emitted after the action record's guarded
                transaction succeeded and right before the command is
                written to the agent's stream. Monit has no command to
                send; its restart is `start program`, so "kill -> start"
                below is the figure to compare
  start         the restarted redis-server's "Redis is starting" log line
                (ms resolution), both troika and Monit
  answering     the first PONG: after the killed process is gone, a PING
                on a new connection every 5 ms
  quorum        troika: from the quorum-th (2nd) FAILED opinion of node-2/
                redis in etcd to the command. The opinion's time in etcd is
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
resolution), its "service restart" line (ms), redis-server starting (ms)
and answering.

This machine's PID 1 reaps orphans seconds late, and Monit will not
restart a process that is still a zombie: the killed, daemonized
redis-server stays a zombie of PID 1 and Monit says "is a zombie" for a
cycle or two. So that Monit is measured as on a machine whose init reaps
at once (systemd), Monit and the troika agents each run under a tiny
subreaper (PR_SET_CHILD_SUBREAPER) that reaps every orphan at once;
troika's timings do not depend on it (pidfd and connection refused see
the exit whether or not the process was reaped).

Every process is started in its own process group and stopped by PID
(the daemonized redis-servers by their pidfiles), also on Ctrl-C or
SIGTERM; the temporary directory goes too (--keep leaves it, for a look at
the logs). etcd's fixed ports are held with the lock the system tests take
(cluster.ETCD_LOCK) for the whole run.
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


def kill_and_time(pidfile, host, port):
    """kill -9 the server of pidfile; (t_kill, t_answering) in ns. The
    first PING goes out once the killed process is gone (a zombie counts
    as gone), then one every 5 ms on a new connection."""
    pid = read_pid(pidfile)
    t_kill = now_ns()
    os.kill(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.0005)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ping(host, port):
            return t_kill, now_ns()
        time.sleep(0.005)
    raise SystemExit(f"{host}:{port} did not answer within 60 s of the kill")


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


# ---- troika ----

POLICY = """\
  policies:
    - match: "redis*"
      fail_after: 3
      certain_after: 2
      down_after: 30s
      ladder: [{ladder}]
      max_attempts: {n}
      window: 1h
      backoff: 0s
      cooldown: 1s
      action_timeout: 30s
"""


def troika_variant(args, run, pb, name):
    from cluster import IPS, REDIS_PORT, Cluster

    pidfd = name == "troika-pidfd"

    class BenchCluster(Cluster):
        """cluster.py's three nodes; the pidfile only with the pidfd watch,
        room for every kill in the limits, agents under the subreaper."""

        def coord_conf(self, n):
            text = super().coord_conf(n)
            assert "max_per_hour: 20\n" in text
            return text.replace("max_per_hour: 20\n", f"max_per_hour: {args.kills + 10}\n")

        def checks_yaml(self, n):
            text = super().checks_yaml(n)
            line = f"      pidfile: {self.redis_pidfile(n)}\n"
            assert line in text, text
            return text if pidfd else text.replace(line, "")

        def start_agent(self, n):
            d = self.run / f"agent{n}"
            d.mkdir(exist_ok=True)
            (d / "agent.yaml").write_text(self.agent_conf(n))
            from conftest import AGENT
            self.agents[n] = self.procs.start(reaped(
                [AGENT, "--config", str(d / "agent.yaml"), "--admin-socket",
                 str(d / "admin.sock")]), d / "agent.log")

    policy = POLICY.format(ladder=", ".join(["restart"] * args.kills), n=args.kills)
    run.mkdir()
    c = BenchCluster(args.procs, run, pb, policy=policy)
    args.cleanup.append(c.stop)
    print(f"\n{name}: starting three nodes ...", flush=True)
    c.start()
    leader, token = c.leader()
    watch = OpinionWatch(args.etcd_pb2, IPS[leader])
    args.cleanup.append(watch.close)
    host, port, pidfile = IPS[NODE], REDIS_PORT, c.redis_pidfile(NODE)
    node, check = f"node-{NODE}", "redis"
    admin = pb[1]
    kills = []
    seen = set()
    print(f"{name}: leader coord-{leader} (token {token}); {args.kills} kills of "
          f"node {NODE}'s redis-server", flush=True)
    for i in range(args.kills):
        def steady():
            if watch.failed_now(node, check) or not ping(host, port):
                return False
            recs = c.actions(leader)
            return all(r.state == admin.ACTION_STATE_SUCCEEDED for r in recs)
        wait_for(steady, 60, "the previous recovery to be complete")
        time.sleep(args.pause + random.random())
        load = os.getloadavg()[0]
        t_kill, t_answer = kill_and_time(pidfile, host, port)

        def recorded():
            new = [r for r in c.actions(leader) if r.id not in seen]
            if len(new) == 1 and new[0].state == admin.ACTION_STATE_SUCCEEDED:
                return new
            return None
        new = wait_for(recorded, 60, f"the restart of kill {i + 1} recorded as SUCCEEDED")
        rec = new[0]
        seen.add(rec.id)
        kills.append({"kill": t_kill, "answer": t_answer, "id": rec.id, "load": load,
                      "started": rec.started_unix_nano, "attempt": rec.attempt})
        print(f"  kill {i + 1}: answering after {ms(t_answer - t_kill):7.1f} ms "
              f"(action {rec.id}, attempt {rec.attempt}, load {load:.2f})", flush=True)
    if watch.error:
        raise SystemExit(f"the etcd watch failed: {watch.error}")

    # Everything the processes logged or kept about it.
    events = {n: c.events(n) for n in (1, 2, 3)}
    agent = agent_lines(c.run / f"agent{NODE}" / "agent.log")
    starts = redis_starts(str(c.redis_dir(NODE) / "redis.log"))
    watched = sum("check=redis: watching main process" in t for _, t in agent)
    if pidfd and watched == 0:
        raise SystemExit("pidfd variant: the agent never watched the process")
    if not pidfd and watched:
        raise SystemExit("interval variant: the agent watched the process")
    recs = c.actions(leader)
    if len(recs) != args.kills:
        raise SystemExit(f"{len(recs)} actions for {args.kills} kills")

    def ev_times(kind, coords=(1, 2, 3), **fields):
        out = []
        for n in coords:
            for e in events[n]:
                if e.kind != kind or e.node != node or e.check != check:
                    continue
                f = {lab.name: lab.value for lab in e.fields}
                if all(f.get(k) == v for k, v in fields.items()):
                    out.append((e.time_unix_nano, n))
        return out

    for i, k in enumerate(kills):
        t, end = k["kill"], kills[i + 1]["kill"] if i + 1 < len(kills) else None
        sent = ev_times("action_started", id=k["id"])
        k["sent"] = min(x for x, _ in sent) if sent else None
        k["verdict"] = first_after([x for x, _ in ev_times("verdict")], t, end)
        k["result_coord"] = first_after([x for x, _ in ev_times("check_status", to="critical")],
                                        t, end)
        # The quorum-th coordinator to form its FAILED opinion.
        ops = sorted(first_after([x for x, m in ev_times("opinion", opinion="failed")
                                  if m == n], t, end) or 2**63 for n in (1, 2, 3))
        k["opinion"] = ops[1] if ops[1] < 2**63 else None
        # In etcd: the earlier of our watch receiving the put and the
        # leader's verdict (which its own watch must have delivered first;
        # python's grpcio adds a fraction of a millisecond to ours).
        k["etcd_watch"] = watch.quorum_time(node, check, t)
        known = [x for x in (k["etcd_watch"], k["verdict"]) if x is not None]
        k["etcd"] = min(known) if known else None
        crit = [x for x, s in agent if "event=check_status check=redis" in s and
                "to=critical" in s.lower()]
        k["result_agent"] = first_after(crit, t, end)
        k["recv"] = first_after([x for x, s in agent
                                 if s.startswith(f"command {k['id']} from ")], t - 10**6, end)
        k["svc"] = first_after([x for x, s in agent if s == "check=redis: service restart"],
                               t - 10**6, end)
        k["start"] = first_after(starts, t, end)
    watch.close()
    print(f"{name}: stopping", flush=True)
    args.cleanup.remove(watch.close)
    args.cleanup.remove(c.stop)
    try:
        c.stop()
    except AssertionError as e:
        print(f"warning: {name}: {e}", file=sys.stderr)
    return kills


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

check process redis with pidfile {dir}/redis.pid
    start program = "{redis} {dir}/redis.conf"
    stop program = "{cli} -h {host} -p {port} shutdown nosave"
    if failed host {host} port {port} protocol redis then restart
"""


def monit_variant(args, run):
    from redis_server import REDIS_CLI, REDIS_SERVER, kill_pidfile

    run.mkdir()
    with socket.socket() as s:
        s.bind((MONIT_HOST, 0))
        port = s.getsockname()[1]
    d = str(run)
    (run / "redis.conf").write_text(REDIS_CONF.format(host=MONIT_HOST, port=port, dir=d))
    rc = run / "monitrc"
    rc.write_text(MONITRC.format(dir=d, redis=REDIS_SERVER, cli=REDIS_CLI,
                                 host=MONIT_HOST, port=port))
    rc.chmod(0o600)    # monit refuses a control file others can read
    pidfile = str(run / "redis.pid")
    args.cleanup.append(lambda: kill_pidfile(pidfile))
    print(f"\nmonit: starting monit (set daemon 1) and redis-server on {MONIT_HOST}:{port} ...",
          flush=True)
    p = args.procs.start(reaped([MONIT, "-I", "-c", str(rc)]), run / "monit.out")
    # Monit's first cycle starts the server.
    wait_for(lambda: p.poll() is None and ping(MONIT_HOST, port), 30, "monit's redis-server")
    kills = []
    for i in range(args.kills):
        wait_for(lambda: ping(MONIT_HOST, port), 60, "redis answering")
        time.sleep(args.pause + random.random())
        load = os.getloadavg()[0]
        t_kill, t_answer = kill_and_time(pidfile, MONIT_HOST, port)
        kills.append({"kill": t_kill, "answer": t_answer, "load": load})
        print(f"  kill {i + 1}: answering after {ms(t_answer - t_kill):7.1f} ms "
              f"(load {load:.2f})", flush=True)
    starts = redis_starts(str(run / "redis.log"))
    for i, k in enumerate(kills):
        end = kills[i + 1]["kill"] if i + 1 < len(kills) else None
        k["start"] = first_after(starts, k["kill"], end)
    with open(run / "monit.log", errors="replace") as f:
        log = f.read()
    print(f"monit: {log.count('process is not running')} cycles found the process not running, "
          f"{log.count('is a zombie')} found a zombie, "
          f"{log.count('failed protocol test')} a failed protocol test", flush=True)
    args.procs.stop(p)
    kill_pidfile(pidfile)
    return kills


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
        ("recv", "svc", "the agent starts the service restart (ms)"),
        ("svc", "start", "redis-server starting (its log, ms)"),
        ("start", "answer", "redis answering PING (5 ms polls)"))


def report(args, results):
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    loads = [k["load"] for kills in results.values() for k in kills]
    print(f"\n{args.kills} kills per variant; 1-minute load average at the kills "
          f"{min(loads):.2f}-{max(loads):.2f}, at the end {load}; median (min-max) in ms")
    print(f"{'variant':16} {'kill -> command':>24} {'kill -> start':>24} "
          f"{'kill -> answering':>24} {'quorum decision':>24}")
    rows = {}
    for name, kills in results.items():
        row = (stats(span(kills, "kill", "sent")), stats(span(kills, "kill", "start")),
               stats(span(kills, "kill", "answer")), stats(span(kills, "etcd", "sent")))
        rows[name] = row
        print(f"{name:16} " + " ".join(fmt(s) for s in row))
    print("\nkill -> command: troika's leader emits action_started (after the record's "
          "transaction, right before\n  writing the command); Monit has no command: "
          "see kill -> start.\nkill -> start: the restarted redis-server's \"Redis is "
          "starting\" log line (ms).\nkill -> answering: the first PONG (polled every "
          "5 ms on new connections once the process is gone).\nquorum decision: the "
          "2nd FAILED opinion in etcd (this script's watch or the leader's verdict, "
          "\n  whichever came first) to the command.")
    for name, kills in results.items():
        if not name.startswith("troika"):
            continue
        print(f"\n{name}: the path, median (min-max) ms per step")
        for a, b, what in PATH:
            print(f"  {fmt(stats(span(kills, a, b)))}  {what}")
        print(f"  {fmt(stats(span(kills, 'kill', 'answer')))}  total, kill -> answering")
        print(f"  {fmt(stats(span(kills, 'verdict', 'etcd_watch')))}  (this script's watch "
              f"after the leader's verdict)")
    if "monit" in rows and rows["monit"][2]:
        monit = rows["monit"][2][0]
        print(f"\ntargets: answering again in at most a quarter of Monit's median "
              f"({monit / 4:.1f} ms); quorum decision under 4 ms median")
        for name, row in rows.items():
            if not name.startswith("troika") or row[2] is None:
                continue
            ok = row[2][0] <= monit / 4
            q = row[3]
            qok = q is not None and q[0] < 4
            print(f"  {name:16} answering {row[2][0]:7.1f} ms = {row[2][0] / monit:.2f} "
                  f"of Monit's: {'met' if ok else 'NOT met'}; quorum decision "
                  f"{q[0] if q else float('nan'):.1f} ms: {'met' if qok else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--kills", type=int, default=7, help="kills per variant (1 to 30)")
    ap.add_argument("--pause", type=float, default=2.5,
                    help="seconds between a complete recovery and the next kill, "
                         "plus a random 0-1 s")
    ap.add_argument("--only", default=",".join(VARIANTS),
                    help="variants, comma-separated: " + ", ".join(VARIANTS))
    ap.add_argument("--json", help="also write every kill's times (ns) to this file")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args()
    args.only = [v for v in args.only.split(",") if v]
    if any(v not in VARIANTS for v in args.only) or not 1 <= args.kills <= 30:
        ap.error(f"--only takes {', '.join(VARIANTS)}; --kills 1 to 30")
    args.build = os.path.abspath(args.build)
    for f in ("core/agent/troika-agent", "core/coord/troika-coord", "plugins/troika-redis.so"):
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
        results = {}
        for name in args.only:
            if name == "monit":
                results[name] = monit_variant(args, run / name)
            else:
                results[name] = troika_variant(args, run / name, (agent_pb2, admin_pb2), name)
        report(args, results)
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
