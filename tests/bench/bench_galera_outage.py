#!/usr/bin/python3
"""Benchmark: a Galera full outage (all three mariadbd killed at once) to
three Synced members again, recovered by troika's bootstrap procedure.

    tests/bench/bench_galera_outage.py [--build build] [--trials 3]
        [--rows 20] [--staging maintenance|none] [--json FILE] [--keep]

Not a test: it builds nothing (troika-agent, troika-coord and
troika-mysql.so of --build are used) and asserts nothing but that every
trial ended with the procedure SUCCEEDED, three Synced members and every
row written before the kill there. Issue 6's Galera figure, on the system
tests' three nodes as test_galera_outage.py sets them up (its
OutageCluster): on each of 127.0.1.1-3 an etcd member, a troika-coord
(store etcd, quorum 2), a troika-agent and a MariaDB Galera member
(tests/system/galera_server.py: rsync SST, EVS timeouts tuned to evict a
dead member in ~3 s); the agents' mysql check `db` at a 1 s interval with
the server's pidfile (pidfd watch), start and bootstrap commands through
start-stop-daemon; the coordinators' cluster `shop-db` of kind galera
(timeout 10m, retry 2s) and test_recovery_galera.py's policy for `db`
(fail_after 3, certain_after 2, backoff 5s, cooldown 10s), with room for
every trial (max_attempts).

One cluster for all trials. Each trial, once the previous one is over
(three Synced members, every coordinator with every check OK, the
procedure's backoff past):

  1. --rows rows are written on node-1 and seen on node-3, so every trial
     has new positions;
  2. --staging maintenance (the default): the whole cluster goes into
     maintenance (SetMaintenance, node and check empty), as
     test_galera_outage.py stages it: the three kills cannot be
     simultaneous for the coordinators, and a member whose verdict comes
     first could otherwise be started alone (the test shows that this
     only delays the procedure until that start has failed);
     --staging none leaves it out, as a real outage would;
  3. SIGKILL to the three mariadbd back to back (three kill(2) calls,
     their spread is reported), then wait until all three are gone;
  4. staged: wait until the leader has a verdict (a quorum of FAILED
     opinions) for every member (ListEvents, every 20 ms), so the clear
     starts the procedure at once, and clear the maintenance;
  5. every 100 ms, SHOW GLOBAL STATUS on each member over its unix socket
     until all three say Synced and wsrep_cluster_size 3 in one round.

Figures per trial, on the wall clock: from the last kill(2) and (staged)
from the maintenance clear to three Synced members (the round's end),
and the path, from the last kill, from the leader's action records (the
procedure, each member's position, the bootstrap, the starts: started
and ended) and events (verdicts, maintenance_off). Also: which member
was bootstrapped, its position, and whether any member took a full SST
instead of IST (its error log).

The run holds the system tests' etcd port lock (/tmp/troika-etcd-ports.lock)
from before the cluster starts until it is stopped. Every process is
started in its own process group and stopped by PID (the servers the
agents started by their pid files and command lines), also on failure,
Ctrl-C or SIGTERM; the temporary directory goes too (--keep leaves it).
"""
import argparse
import fcntl
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
SYSTEM = os.path.join(SRC, "tests", "system")
POLL = 0.1              # seconds between status rounds after the clear
AFTER_CLEAR = 180.0     # a recovery that has not happened by then failed

POLICY = """\
  policies:
    - match: "db"
      fail_after: 3
      certain_after: 2
      down_after: 30s
      ladder: [start, start, alert]
      max_attempts: {attempts}
      window: 1h
      backoff: 5s
      cooldown: 10s
      action_timeout: 90s
  clusters:
    - name: shop-db
      kind: galera
      check: db
      nodes: [node-1, node-2, node-3]
      timeout: 10m
      retry: 2s
"""
BACKOFF_NS = 5 * 10**9


def ms(ns):
    return ns / 1e6


def wait_for(cond, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def wsrep(node):
    """(state comment, cluster size) of a member, over its unix socket, or
    None when it does not answer."""
    from galera_server import CLIENT
    try:
        r = subprocess.run([CLIENT, "--no-defaults", "-S", str(node.sock), "-uroot", "-N",
                            "-B", "-e", "SHOW GLOBAL STATUS WHERE Variable_name IN "
                            "('wsrep_local_state_comment', 'wsrep_cluster_size')"],
                           capture_output=True, timeout=5)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    st = dict(line.split("\t", 1) for line in r.stdout.decode().splitlines() if "\t" in line)
    return st.get("wsrep_local_state_comment"), st.get("wsrep_cluster_size")


def all_synced(nodes):
    for node in nodes:
        if wsrep(node) != ("Synced", "3"):
            return False
    return True


def pids_of(node):
    """The live mariadbd of a member: the one the harness started, the one
    an agent started (pid file), or any with its my.cnf."""
    pids = set(node.find())
    p = node.pid()
    if p is not None:
        pids.add(p)
    return pids


def events_since(c, n, since_ns):
    return [e for e in c.events(n) if e.time_unix_nano >= since_ns]


class Bench:
    def __init__(self, args, procs, run, pb):
        from test_galera_outage import OutageCluster
        self.args = args
        self.c = OutageCluster(procs, run, pb, policy=POLICY.format(
            attempts=args.trials + 2))
        self.admin = pb[1]
        self.last_proc_end = 0
        self.stopped = False
        self.warnings = []

    def start(self):
        self.c.start()

    def stop(self):
        """Stop everything (once); what stopping found (an exit code, a
        sanitizer report in a log) is kept in self.warnings."""
        if self.stopped:
            return
        self.stopped = True
        try:
            self.c.stop()
        except AssertionError as e:
            self.warnings.append(str(e)[:2000])
            print(f"warning: {str(e)[:400]}", file=sys.stderr)

    def leader(self):
        return wait_for(self.c.leader, 30, "one leader")[0]

    def steady(self):
        """Three Synced members, every coordinator with every check OK."""
        if not all_synced(self.c.galera.nodes):
            return False
        try:
            return self.c.settled() and all(
                all(x.status == self.c.agent_pb2.CHECK_STATUS_OK for x in node.checks)
                for n in (1, 2, 3) for node in self.c.status(n).nodes)
        except Exception:       # a coordinator busy or a status in flux
            return False

    def trial(self, i):
        from test_galera_outage import set_maintenance
        from test_recovery_galera import count_rows, insert_rows
        c, admin = self.c, self.admin
        nodes = c.galera.nodes
        wait_for(self.steady, 120, "three Synced members and every check OK", interval=0.5)
        # The next procedure may start only after the last one's backoff.
        time.sleep(max(0.0, (self.last_proc_end + BACKOFF_NS - time.time_ns()) / 1e9))
        leader = self.leader()
        insert_rows(nodes[0], self.args.rows, f"trial{i}")
        rows = count_rows(nodes[0])
        wait_for(lambda: count_rows(nodes[2]) == rows, 10, "the rows on node-3")
        offsets = [n.log_size() for n in nodes]
        staged = self.args.staging == "maintenance"
        if staged:
            set_maintenance(c, leader, "")
        load = os.getloadavg()[0]
        pids = [pids_of(n) for n in nodes]
        for n, ps in zip(nodes, pids):
            if len(ps) != 1:
                raise RuntimeError(f"node-{n.n}: {len(ps)} mariadbd processes: {ps}")
        t_first = time.time_ns()
        for ps in pids:
            for p in ps:
                os.kill(p, signal.SIGKILL)
        t_last = time.time_ns()
        for n, ps in zip(nodes, pids):
            p = next(iter(ps))
            wait_for(lambda: not n.find() and not n.running(), 30, f"node-{n.n} gone",
                     interval=0.01)
            if n.proc is not None and n.proc.pid == p:
                n.proc.wait(5)      # the harness's child: reaped here
            n.adopted = None

        t_clear = None
        if staged:
            a = c.admin_pb2

            def verdicts():
                evs = c.rpc(leader, "ListEvents", a.ListEventsRequest(
                    kinds=["verdict"], limit=50), a.ListEventsResponse).events
                seen = {e.node for e in evs if e.time_unix_nano >= t_first}
                return seen >= {"node-1", "node-2", "node-3"}
            wait_for(verdicts, 60, "the leader's verdict on every member", interval=0.02)
            if [r for r in c.actions(leader) if r.action == "bootstrap_cluster" and
                    r.started_unix_nano >= t_first]:
                raise RuntimeError("a procedure started during the maintenance")
            t_clear = time.time_ns()
            set_maintenance(c, leader, "", clear=True)
        deadline = time.monotonic() + AFTER_CLEAR
        while True:
            if all_synced(nodes):
                t_synced = time.time_ns()
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"no three Synced members {AFTER_CLEAR:.0f} s after the "
                                   f"{'clear' if staged else 'kills'}; the leader's records "
                                   f"and holds since the kills:\n{self.story(leader, t_first)}")
            time.sleep(POLL)

        def done():
            for r in c.actions(leader):
                if (r.action == "bootstrap_cluster" and r.started_unix_nano >= t_first and
                        r.state != admin.ACTION_STATE_RUNNING):
                    return r
            return None
        proc = wait_for(done, 60, "the procedure to end")
        if proc.state != admin.ACTION_STATE_SUCCEEDED:
            raise RuntimeError(f"procedure {proc.id}: {admin.ActionState.Name(proc.state)}: "
                               f"{proc.message}")
        self.last_proc_end = proc.ended_unix_nano
        for n in nodes:
            n.adopt()
        for n in nodes:
            got = count_rows(n)
            if got != rows:
                raise RuntimeError(f"node-{n.n} has {got} rows, {rows} were written")
        sst = [f"node-{n.n}" for n, off in zip(nodes, offsets)
               if "SST completed" in n.log_since(off)]
        facts = {f.name: f.value for f in proc.fields}
        # Actions outside the procedure (unstaged: a member started alone).
        extra = [f"{x.node} {x.action} {admin.ActionState.Name(x.state)[13:]}"
                 for x in sorted(c.actions(leader), key=lambda x: x.started_unix_nano)
                 if x.started_unix_nano >= t_first and x.id != proc.id and
                 x.procedure != proc.id]
        r = {"extra": extra, "load": load, "kill_spread_us": (t_last - t_first) / 1e3,
             "from_clear": ms(t_synced - t_clear) if staged else None,
             "from_kill": ms(t_synced - t_last),
             "bootstrapped": facts.get("bootstrapped"), "sst": sst,
             "positions": {k: v for k, v in facts.items() if k.startswith("node-")},
             "path": self.path(leader, proc, t_first, t_last, t_clear, t_synced)}
        return r

    def story(self, leader, since):
        """The leader's records and recovery_held events since `since`, one
        line each, for a trial that did not end: what troika did instead."""
        c, admin = self.c, self.admin
        lines = []
        try:
            for r in c.actions(leader):
                if r.started_unix_nano >= since:
                    lines.append((r.started_unix_nano, f"record {r.node or r.cluster} "
                                  f"{r.action} {admin.ActionState.Name(r.state)[13:]}: "
                                  f"{r.message[:160]}"))
            for e in events_since(c, leader, since):
                if e.kind in ("recovery_held", "cluster_held", "action_locked"):
                    lines.append((e.time_unix_nano, f"{e.kind} {e.node}: {e.message[:160]}"))
        except Exception as e:      # the coordinator may be the trouble
            lines.append((since, f"(could not ask coord-{leader}: {e})"))
        return "\n".join(f"  +{ms(t - since):9.1f} ms  {text}" for t, text in sorted(lines))

    def path(self, leader, proc, t_first, t_last, t_clear, t_synced):
        """{step: ms after the last kill}, from the leader's records and
        events."""
        c, admin = self.c, self.admin
        out = {}

        def put(key, ns):
            if ns is not None and ns > 0:
                out[key] = ms(ns - t_last)
        put("maintenance cleared (this script)", t_clear)
        verdicts = {}
        evs = events_since(c, leader, t_first)
        for e in evs:
            if e.kind == "verdict" and e.node:
                verdicts.setdefault(e.node, e.time_unix_nano)
        if verdicts:
            put("leader's first verdict", min(verdicts.values()))
            put("leader's last verdict", max(verdicts.values()))
        off = [e.time_unix_nano for e in evs if e.kind == "maintenance_off"]
        put("maintenance_off event", min(off) if off else None)
        put("procedure record written (bootstrap_cluster)", proc.started_unix_nano)
        steps = sorted((r for r in c.actions(leader) if r.procedure == proc.id),
                       key=lambda r: r.started_unix_nano)
        for r in steps:
            state = admin.ActionState.Name(r.state)[len("ACTION_STATE_"):]
            put(f"{r.action} {r.node} sent", r.started_unix_nano)
            put(f"{r.action} {r.node} done ({state})", r.ended_unix_nano)
        put("procedure SUCCEEDED", proc.ended_unix_nano)
        put("three Synced, size 3 (this script's polls)", t_synced)
        return out


def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v), len(v)


def fmt(s, width=26, unit=1.0):
    if s is None:
        return f"{'-':>{width}}"
    med, lo, hi, _ = s
    return f"{med / unit:8.1f} ({lo / unit:7.1f}-{hi / unit:7.1f})".rjust(width)


def report(args, rs, failed):
    loads = [r["load"] for r in rs] or [float("nan")]
    print(f"\n{len(rs)} trials, staging {args.staging}; 1-minute load average at the kills "
          f"{min(loads):.2f}-{max(loads):.2f}; median (min-max)")
    print(f"{'':32} {'seconds':>26}")
    print(f"{'last kill -> three Synced':32} "
          f"{fmt(stats(r['from_kill'] for r in rs), unit=1e3)}")
    if args.staging == "maintenance":
        print(f"{'maintenance clear -> three Synced':32} "
              f"{fmt(stats(r['from_clear'] for r in rs), unit=1e3)}")
    print(f"(three kill(2) calls within "
          f"{max((r['kill_spread_us'] for r in rs), default=0):.0f} µs; three Synced: "
          f"wsrep_local_state_comment Synced and wsrep_cluster_size 3 on every member "
          f"in one round of {POLL * 1e3:.0f} ms polls)")
    steps = {k: stats(r["path"].get(k) for r in rs) for r in rs for k in r["path"]}
    print("\nthe path, ms after the last kill (the leader's records and events), "
          "median (min-max)")
    for k, s in sorted(steps.items(), key=lambda kv: kv[1][0]):
        n = f" [{s[3]} of {len(rs)}]" if s[3] != len(rs) else ""
        print(f"  {fmt(s)}  {k}{n}")
    for i, r in enumerate(rs):
        print(f"  trial {i + 1}: bootstrapped {r['bootstrapped']}; positions "
              f"{', '.join(f'{k} {v}' for k, v in sorted(r['positions'].items()))}; "
              f"{'full SST on ' + ', '.join(r['sst']) if r['sst'] else 'no SST (IST)'}"
              f"{'; outside the procedure: ' + ', '.join(r['extra']) if r['extra'] else ''}")
    for why in failed:
        print(f"\na trial FAILED: {why}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"trials": rs, "failed": failed}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build"),
                    help="the build tree of troika-agent, troika-coord and troika-mysql.so")
    ap.add_argument("--trials", type=int, default=3, help="full outages (3 to 10)")
    ap.add_argument("--rows", type=int, default=20, help="rows written before each outage")
    ap.add_argument("--staging", choices=("maintenance", "none"), default="maintenance",
                    help="the cluster in maintenance while the kills are seen, cleared "
                         "once every member has its verdict (as test_galera_outage.py), "
                         "or no maintenance at all")
    ap.add_argument("--json", help="also write every trial's figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args()
    if not 3 <= args.trials <= 10 or not 1 <= args.rows <= 10000:
        ap.error("--trials takes 3 to 10, --rows 1 to 10000")
    args.build = os.path.abspath(args.build)
    for f in ("core/agent/troika-agent", "core/coord/troika-coord",
              "plugins/troika-mysql.so"):
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
    from cluster import ETCD_LOCK
    from grpc_echo import generate_modules

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    procs = Procs()
    # Below /tmp, not pytest's shared root (galera_server refuses that);
    # mariadbd (user mysql) is let through from here down.
    run = pathlib.Path(tempfile.mkdtemp(prefix="troika-bench-galera-"))
    bench = None
    rs, failed = [], []
    lock = open(ETCD_LOCK, "w")
    try:
        commit = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        version = subprocess.run(["/usr/sbin/mariadbd", "--version"], capture_output=True,
                                 text=True).stdout.split()
        print(f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
              f"{' '.join(version[1:3])}, {os.cpu_count()} CPUs, load average "
              f"{' '.join(open('/proc/loadavg').read().split()[:3])}, build {args.build}",
              flush=True)
        print("waiting for the etcd port lock ...", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        (run / "pb").mkdir()
        _, agent_pb2, admin_pb2 = generate_modules(run / "pb")
        (run / "cluster").mkdir()
        bench = Bench(args, procs, run / "cluster", (agent_pb2, admin_pb2))
        print("starting three nodes (etcd, troika-coord, troika-agent, Galera) ...",
              flush=True)
        t = time.monotonic()
        bench.start()
        print(f"started in {time.monotonic() - t:.1f} s", flush=True)
        for i in range(1, args.trials + 1):
            try:
                r = bench.trial(i)
            except Exception as e:     # grpc, the system tests' assertions
                failed.append(f"trial {i}: {type(e).__name__}: {e}")
                print(f"  trial {i} FAILED: {type(e).__name__}: {e}", file=sys.stderr,
                      flush=True)
                args.keep = True
                break       # the cluster's state is unknown: no more trials
            rs.append(r)
            clear = (f", {r['from_clear'] / 1e3:6.2f} s after the clear"
                     if r["from_clear"] is not None else "")
            print(f"  trial {i}: three Synced {r['from_kill'] / 1e3:6.2f} s after the "
                  f"last kill{clear}; "
                  f"bootstrapped {r['bootstrapped']}, load {r['load']:.2f}", flush=True)
        bench.stop()
        report(args, rs, failed)
        for w in bench.warnings:
            print(f"\nstopping the cluster found: {w}")
        return 0 if len(rs) == args.trials and not bench.warnings else 1
    except KeyboardInterrupt:
        print("interrupted; stopping every process started", file=sys.stderr)
        return 130
    finally:
        if bench is not None:
            bench.stop()
        procs.stop_all()
        lock.close()
        if args.keep:
            print(f"kept {run}")
        else:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
