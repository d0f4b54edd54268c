#!/usr/bin/python3
"""Benchmark: troika-agent running N tcp checks at one interval against a
local listener. Prints CPU per 1,000 checks, peak RSS and how evenly the
check starts spread over the interval. Not a test: it asserts nothing.

    tests/bench/bench_tcp_checks.py [--checks 1000] [--interval 1s]
                                    [--seconds 60] [--build build]

The listener (asyncio, in this process) accepts and closes; its own CPU is
not counted. The agent's CPU is read from /proc/PID/stat after a warm-up of
one interval, so start-up (plugin loading, config) is excluded.
"""
import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HOST = "127.0.1.1"


def proc_cpu(pid):
    """(user, system) CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks  # utime, stime


def proc_switches(pid):
    """Voluntary context switches: how often the loop went to sleep."""
    return proc_status_kib(pid, "voluntary_ctxt_switches")


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def total_runs(listen):
    text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read().decode()
    total = 0
    for m in re.finditer(r'^troika_check_runs_total\{[^}]*\} (\S+)$', text, re.M):
        total += float(m.group(1))
    return int(total)


FLOOR = r"""
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    s = socket.socket()
    s.connect((host, port))
    s.close()
    if i % 50 == 49:
        time.sleep(0.01)   # paced like the agent, so the listener keeps up
"""


def kernel_floor(port, n):
    """CPU of the bare minimum a tcp check costs the kernel here: a plain
    loop of connect+close to the same listener, in a child process.
    Returns (user, system) seconds per connection."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", FLOOR, HOST, str(port), str(n)], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((after.ru_utime - before.ru_utime) / n, (after.ru_stime - before.ru_stime) / n)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


async def run(args):
    accepts = []

    async def on_conn(reader, writer):
        accepts.append(time.monotonic())
        writer.close()

    server = await asyncio.start_server(on_conn, HOST, 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    listen = f"{HOST}:{free_port()}"
    interval_s = args.interval_ms / 1000

    work = tempfile.mkdtemp(prefix="troika-bench-")
    conf = os.path.join(work, "agent.yaml")
    with open(conf, "w") as f:
        f.write(f'node: bench\nworkers: 2\nmetrics:\n  listen: "{listen}"\n'
                "log:\n  level: warning\n")
        f.write("checks:\n")
        for i in range(args.checks):
            f.write(f'  - name: tcp-{i}\n    plugin: tcp\n    interval: {args.interval_ms}ms\n'
                    f'    timeout: {min(args.interval_ms, 500)}ms\n'
                    f'    host: "{HOST}"\n    port: {port}\n')
    agent = subprocess.Popen([args.agent, "--config", conf, "--plugin-dir", args.plugins,
                              "--admin-socket", ""],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "agent.log"), "w"))
    try:
        # Wait for /metrics, then one interval so every check has started.
        deadline = time.monotonic() + 20
        while True:
            try:
                total_runs(listen)
                break
            except OSError:
                if agent.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("agent did not come up:\n" +
                                     open(os.path.join(work, "agent.log")).read()[-2000:])
                await asyncio.sleep(0.1)
        await asyncio.sleep(interval_s * 1.5)

        runs0, cpu0, t0 = total_runs(listen), proc_cpu(agent.pid), time.monotonic()
        sw0 = proc_switches(agent.pid)
        accepts.clear()
        await asyncio.sleep(args.seconds)
        cpu1, t1 = proc_cpu(agent.pid), time.monotonic()
        seen = list(accepts)
        sw1 = proc_switches(agent.pid)
        runs1 = total_runs(listen)
        hwm = proc_status_kib(agent.pid, "VmHWM")
        with open(f"/proc/{agent.pid}/smaps_rollup") as f:
            rollup = {l.split(":")[0]: int(l.split()[1]) for l in f if l.split()[-1] == "kB"}
        rss = proc_status_kib(agent.pid, "VmRSS")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    floor = await asyncio.get_running_loop().run_in_executor(None, kernel_floor, port, 5000)
    server.close()

    runs = runs1 - runs0
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = user + system
    # Spread: where in the interval each connection arrived, in 10 slots.
    slots = [0] * 10
    for a in seen:
        slots[int(((a - t0) % interval_s) / interval_s * 10) % 10] += 1
    mean = sum(slots) / len(slots) if seen else 0
    print(f"checks: {args.checks} tcp at {args.interval_ms} ms for {t1 - t0:.1f} s")
    print(f"runs completed: {runs} ({runs / (t1 - t0):.0f}/s; expected {args.checks / interval_s:.0f}/s)")
    per_k = 1000 * 1000 / max(runs, 1)
    print(f"agent CPU: {cpu:.2f} s = {cpu * per_k:.1f} ms per 1,000 checks "
          f"(user {user * per_k:.1f} ms, system {system * per_k:.1f} ms)")
    print(f"floor, a plain connect+close loop on this machine: system {floor[1] * 1e6:.1f} ms "
          f"per 1,000 (its user time, Python's, is not comparable: {floor[0] * 1e6:.1f} ms)")
    print(f"loop wake-ups (voluntary context switches): {(sw1 - sw0) / (t1 - t0):.0f}/s")
    print(f"agent RSS: peak {hwm / 1024:.1f} MiB, now {rss / 1024:.1f} MiB "
          f"(anonymous {rollup.get('Anonymous', 0) / 1024:.1f} MiB, file-backed "
          f"{(rollup.get('Rss', 0) - rollup.get('Anonymous', 0)) / 1024:.1f} MiB)")
    print(f"connections seen by the listener: {len(seen)}")
    if seen:
        print("start spread over the interval (10 slots, % of mean): " +
              " ".join(f"{s / mean * 100:.0f}" for s in slots) +
              f"; min/max {min(slots) / mean * 100:.0f}%/{max(slots) / mean * 100:.0f}%")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checks", type=int, default=1000)
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "..", "build"))
    args = ap.parse_args()
    args.agent = os.path.join(args.build, "core", "agent", "troika-agent")
    args.plugins = os.path.join(args.build, "plugins")
    asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
