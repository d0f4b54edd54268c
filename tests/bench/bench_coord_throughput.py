#!/usr/bin/python3
"""Benchmark: troika-coord against N simulated agents, and the same load
against a minimal python3-grpcio server as the reference. Not a test: it
asserts nothing.

    tests/bench/bench_coord_throughput.py [--agents 100] [--conns N]
        [--checks 10] [--mark 20] [--rate 10000] [--seconds 10]
        [--warmup 3] [--runs 3] [--only coord|ref] [--build build]

Both servers run pinned to CPU 1 (taskset), on 127.0.2.1 and free ports;
the load generator, tests/bench/coord_load (one process, one libevent
loop, one Connect stream and HTTP/2 connection per simulated agent, and
a WatchEvents watcher), runs pinned to CPU 0. Per run and server:

- saturation: every agent sends CheckResults as fast as HTTP/2 flow
  control lets them through; the figure is the server's own count
  (troika_coord_agent_messages_received_total{kind="check_result"} on its
  /metrics) over the measuring window, after a warm-up, with the server's
  and the generator's CPU from /proc/PID/stat over the same window;
- latency: the agents send --rate results per second in total; one in
  --mark of each agent's results flips the status of a check of its own,
  and its latency is the time from handing it to the gRPC client to
  receiving the check_status event the server emits for it on the
  watcher's stream (coord_load's own clock for both);
- the same latency run with the connections made by
  grpc_client_connect(), as troika-agent makes them (today without
  TCP_NODELAY); the runs above use sockets with TCP_NODELAY, as gRPC core
  and the servers do.

Runs alternate between the servers, and each waits until the server is
idle again, so a backlog of the previous run never runs into the next.
Every process is started in its own process group and stopped by PID,
also on Ctrl-C and failure; the temporary directory is removed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HOST = "127.0.2.1"
SERVER_CPU = "1"
LOAD_CPU = "0"
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def proc_cpu_s(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_busy_s(cpu):
    """Seconds CPU number cpu was busy (anything but idle and iowait),
    whoever ran on it."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v[:8]) - v[3] - v[4]) / TICK
    return 0.0


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Procs:
    """Every process started here, stopped by process group."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log, **kw):
        p = subprocess.Popen(argv, stdout=kw.pop("stdout", log), stderr=log,
                             start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, timeout=15):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
            except ProcessLookupError:
                pass
        # Children left in the group (none expected) go too.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p)


class Server:
    def __init__(self, name, proc, grpc_port, http_port, log):
        self.name = name
        self.proc = proc
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.log = log

    def counters(self):
        """(check results handled, events emitted) from its /metrics."""
        with urllib.request.urlopen(f"http://{HOST}:{self.http_port}/metrics",
                                    timeout=30) as r:
            text = r.read().decode()
        res = re.search(r'^troika_coord_agent_messages_received_total\{kind="check_result"\} (\S+)$',
                        text, re.M)
        ev = re.search(r"^troika_coord_events_total (\S+)$", text, re.M)
        return float(res.group(1)), float(ev.group(1))

    def cpu_s(self):
        return proc_cpu_s(self.proc.pid)

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited {self.proc.returncode}:\n" +
                                 self.log_tail())
            try:
                self.counters()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.name} did not come up:\n" + self.log_tail())
                time.sleep(0.1)

    def wait_idle(self, timeout=60):
        """Until it used under 5% CPU over half a second: a backlog of
        the previous run would otherwise run into the next one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c0 = self.cpu_s()
            time.sleep(0.5)
            if self.cpu_s() - c0 < 0.025:
                return
        print(f"  ({self.name} still busy after {timeout} s)", flush=True)

    def log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""


def start_coord(procs, args, work):
    grpc_port, http_port = free_port(), free_port()
    # The defaults of conf/coord.yaml (log level info: every event is a
    # log line), on this benchmark's addresses; written here, so that the
    # benchmark runs against older and newer builds alike.
    conf = os.path.join(work, "coord.yaml")
    with open(conf, "w") as f:
        f.write(f'node:\n  name: coord-bench\nlisten: "{HOST}:{grpc_port}"\n'
                f'metrics:\n  listen: "{HOST}:{http_port}"\n'
                "agents:\n  heartbeat: 5s\n  timeout: 15s\n"
                "log:\n  level: info\n  target: stderr\n")
    log = os.path.join(work, "coord.log")
    p = procs.start(["taskset", "-c", SERVER_CPU, args.coord, "--config", conf],
                    open(log, "w"))
    return Server("troika-coord", p, grpc_port, http_port, log)


def start_ref(procs, args, work):
    grpc_port, http_port = free_port(), free_port()
    log = os.path.join(work, "ref.log")
    pb = os.path.join(work, "pb")
    os.makedirs(pb, exist_ok=True)
    p = procs.start(["taskset", "-c", SERVER_CPU, "/usr/bin/python3",
                     os.path.join(SRC, "tests", "bench", "coord_ref_server.py"),
                     "--listen", f"{HOST}:{grpc_port}", "--metrics", f"{HOST}:{http_port}",
                     "--workers", str(args.agents + 16), "--pb-dir", pb],
                    open(log, "w"))
    return Server("python3-grpcio", p, grpc_port, http_port, log)


def run_load(procs, args, work, server, rate, agent_connect=False):
    """One coord_load run against server; the window's figures."""
    log = os.path.join(work, f"load-{server.proc.pid}.log")
    argv = ["taskset", "-c", LOAD_CPU, args.load, "--agents", str(args.agents),
            "--checks", str(args.checks), "--mark", str(args.mark), "--rate", str(rate),
            "--warmup", str(args.warmup), "--seconds", str(args.seconds)]
    if agent_connect:
        argv.append("--agent-connect")
    if args.conns:
        argv += ["--conns", str(args.conns)]
    argv += [HOST, str(server.grpc_port)]
    p = procs.start(argv, open(log, "w"), stdout=subprocess.PIPE, text=True)
    marks = {}
    result = None
    try:
        for line in p.stdout:
            line = line.strip()
            if line in ("window_start", "window_end"):
                t0 = time.monotonic()
                counts = server.counters()
                t = (t0 + time.monotonic()) / 2
                marks[line] = (t, counts, server.cpu_s(), proc_cpu_s(p.pid),
                               cpu_busy_s(SERVER_CPU))
            elif line.startswith("result "):
                result = json.loads(line[len("result "):])
        p.wait(60)
    finally:
        rc = procs.stop(p)
    if result is None or len(marks) != 2 or rc != 0:
        with open(log) as f:
            raise SystemExit(f"coord_load against {server.name} failed "
                             f"(exit {rc}):\n{f.read()[-3000:]}")
    (t0, (r0, e0), s0, g0, b0), (t1, (r1, e1), s1, g1, b1) = \
        marks["window_start"], marks["window_end"]
    dt = t1 - t0
    result.update(handled_per_s=(r1 - r0) / dt, events_per_s=(e1 - e0) / dt,
                  server_cpu=(s1 - s0) / dt, load_cpu=(g1 - g0) / dt,
                  core_busy=(b1 - b0) / dt, server_window_s=dt,
                  per_cpu_s=(r1 - r0) / (s1 - s0) if s1 > s0 else 0)
    return result


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def fmt_n(x):
    return f"{x:,.0f}"


def fmt_ms(x):
    return "-" if x is None or x < 0 else f"{x:.2f}"


def median(xs):
    return statistics.median(xs) if xs else None


def report(args, servers, sat, lat, nagle, mem):
    cols = [s.name for s in servers]
    rows = []

    def row(label, f):
        rows.append([label] + [f(n) for n in cols])

    def rng(vals, f):
        if not vals:
            return "-"
        if len(vals) == 1:
            return f(vals[0])
        return f"{f(median(vals))} ({f(min(vals))}-{f(max(vals))})"

    row("saturation: results/s handled, median (range)",
        lambda n: rng([r["handled_per_s"] for r in sat[n]], fmt_n))
    row("  results per CPU-second of the server",
        lambda n: rng([r["per_cpu_s"] for r in sat[n]], fmt_n))
    row("  server CPU in the window",
        lambda n: rng([r["server_cpu"] * 100 for r in sat[n]], lambda x: f"{x:.0f}%"))
    row(f"  CPU {SERVER_CPU} busy (any process)",
        lambda n: rng([r["core_busy"] * 100 for r in sat[n]], lambda x: f"{x:.0f}%"))
    row("  load generator CPU",
        lambda n: rng([r["load_cpu"] * 100 for r in sat[n]], lambda x: f"{x:.0f}%"))
    row("  events/s emitted",
        lambda n: rng([r["events_per_s"] for r in sat[n]], fmt_n))
    row("  markers seen / sent",
        lambda n: ", ".join(f"{r['markers_seen']}/{r['markers_sent']}" for r in sat[n]))
    row(f"at {args.rate:,.0f}/s: results/s handled",
        lambda n: rng([r["handled_per_s"] for r in lat[n]], fmt_n))
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"),
                       ("max_ms", "max")):
        row(f"  report latency {label}, ms",
            lambda n, key=key: rng([r[key] for r in lat[n] if r[key] >= 0], fmt_ms))
    row("  markers seen / sent",
        lambda n: ", ".join(f"{r['markers_seen']}/{r['markers_sent']}" for r in lat[n]))
    row("  server CPU",
        lambda n: rng([r["server_cpu"] * 100 for r in lat[n]], lambda x: f"{x:.0f}%"))
    if any(nagle.values()):
        row(f"at {args.rate:,.0f}/s, agents' own connect (no TCP_NODELAY): p50, ms",
            lambda n: rng([r["p50_ms"] for r in nagle[n] if r["p50_ms"] >= 0], fmt_ms))
        for key, label in (("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max")):
            row(f"  {label}, ms",
                lambda n, key=key: rng([r[key] for r in nagle[n] if r[key] >= 0], fmt_ms))
    row("RSS after the runs / peak, MiB",
        lambda n: f"{mem[n][0] / 1024:.1f} / {mem[n][1] / 1024:.1f}")
    widths = [max(len(r[i]) for r in rows + [["figure"] + cols]) for i in range(len(cols) + 1)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    print()
    print(line(["figure"] + cols))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()
    if "troika-coord" in sat:
        s = median([r["handled_per_s"] for r in sat["troika-coord"]])
        p99 = median([r["p99_ms"] for r in lat["troika-coord"]])
        print(f"target >= 100,000 results/s on one core: {fmt_n(s)}/s, "
              f"{'met' if s >= 100000 else 'NOT met'}")
        print(f"target p99 < 5 ms at {args.rate:,.0f}/s: {fmt_ms(p99)} ms, "
              f"{'met' if p99 is not None and 0 <= p99 < 5 else 'NOT met'}")
        for i, r in enumerate(sat["troika-coord"]):
            if r["server_cpu"] >= 0.95:
                continue
            if r["core_busy"] - r["server_cpu"] > 0.03:
                why = (f"other processes took {(r['core_busy'] - r['server_cpu']) * 100:.0f}% "
                       f"of CPU {SERVER_CPU}: the machine was not quiet")
            elif r["load_cpu"] >= 0.95:
                why = "the generator saturated its own core: that is its limit, not the server's"
            else:
                why = "neither side was CPU-bound (flow control or the network)"
            print(f"note: saturation run {i + 1}: troika-coord used {r['server_cpu'] * 100:.0f}% "
                  f"of its core; {why}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--conns", type=int, default=0,
                    help="HTTP/2 connections (default: one per agent)")
    ap.add_argument("--checks", type=int, default=10, help="checks per agent")
    ap.add_argument("--mark", type=int, default=20, help="one result in N is a marker")
    ap.add_argument("--rate", type=float, default=10000, help="results/s of the latency run")
    ap.add_argument("--seconds", type=float, default=10, help="measuring window")
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=("coord", "ref"))
    ap.add_argument("--no-agent-connect", action="store_true",
                    help="skip the latency run through grpc_client_connect() (no TCP_NODELAY)")
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    args = ap.parse_args()
    args.coord = os.path.join(args.build, "core", "coord", "troika-coord")
    args.load = os.path.join(args.build, "tests", "bench", "coord_load")
    for f in (args.coord, args.load):
        if not os.access(f, os.X_OK):
            raise SystemExit(f"{f} is missing: build the tree first "
                             "(cmake --preset default && cmake --build --preset default)")

    # SIGTERM ends the run like Ctrl-C: through the finally below. Ctrl-C
    # is restored too: a shell starting us in the background ignores it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    procs = Procs()
    work = tempfile.mkdtemp(prefix="troika-bench-coord-")
    try:
        print(f"load average before: {loadavg()}")
        commit = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip() or "unknown"
        print(f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, build {args.build}")
        print(f"{args.agents} agents, {args.conns or args.agents} connections, "
              f"{args.checks} checks each + a marker check, 1 result in {args.mark} a marker; "
              f"window {args.seconds:g} s after {args.warmup:g} s warm-up, {args.runs} runs; "
              f"servers on CPU {SERVER_CPU}, generator on CPU {LOAD_CPU}", flush=True)
        servers = []
        if args.only in (None, "coord"):
            servers.append(start_coord(procs, args, work))
        if args.only in (None, "ref"):
            servers.append(start_ref(procs, args, work))
        for s in servers:
            s.wait_ready()
        sat = {s.name: [] for s in servers}
        lat = {s.name: [] for s in servers}
        nagle = {s.name: [] for s in servers}
        modes = [("saturation", 0, False, sat), (f"{args.rate:,.0f}/s", args.rate, False, lat)]
        if not args.no_agent_connect:
            modes.append((f"{args.rate:,.0f}/s, agent connect", args.rate, True, nagle))
        for i in range(args.runs):
            for mode, rate, agent_connect, into in modes:
                for s in servers:
                    # Both share CPU 1: a backlog of either would be
                    # measured with the next run of the other.
                    for other in servers:
                        other.wait_idle()
                    r = run_load(procs, args, work, s, rate, agent_connect)
                    into[s.name].append(r)
                    print(f"run {i + 1} {s.name} {mode}: handled {fmt_n(r['handled_per_s'])}/s "
                          f"(sent {fmt_n(r['sent_per_s'])}/s), server CPU "
                          f"{r['server_cpu'] * 100:.0f}% (CPU {SERVER_CPU} busy {r['core_busy'] * 100:.0f}%), "
                          f"generator CPU {r['load_cpu'] * 100:.0f}%, "
                          f"markers {r['markers_seen']}/{r['markers_sent']}, p50 "
                          f"{fmt_ms(r['p50_ms'])} p99 {fmt_ms(r['p99_ms'])} p99.9 "
                          f"{fmt_ms(r['p999_ms'])} max {fmt_ms(r['max_ms'])} ms, "
                          f"load {loadavg()}" +
                          "".join(f", {k} {r[k]}" for k in ("streams_lost", "send_errors",
                                                           "watch_cuts") if r[k]), flush=True)
        mem = {s.name: (proc_status_kib(s.proc.pid, "VmRSS"),
                        proc_status_kib(s.proc.pid, "VmHWM")) for s in servers}
        for s in servers:
            rc = procs.stop(s.proc)
            if rc not in (0, -signal.SIGTERM):
                print(f"note: {s.name} exited {rc}:\n{s.log_tail()}")
        report(args, servers, sat, lat, nagle, mem)
        print(f"load average after: {loadavg()}")
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Everything was stopped and removed on the way out of main().
        print("interrupted", file=sys.stderr)
        sys.exit(130)
