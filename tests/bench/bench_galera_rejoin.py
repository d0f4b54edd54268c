#!/usr/bin/python3
"""Experiment for issue 5's mysqld figure: one Galera member killed (-9)
and started again at once, to Synced in a cluster of three; with and
without evicting the dead incarnation on a survivor first.

    tests/bench/bench_galera_rejoin.py [--trials 3]
                                       [--variants plain,evict,wait2,evict_wait2]
                                       [--keep]

Not a test, and no troika process takes part: this measures what Galera
itself allows a supervisor, so a design can be judged before it is built.
On the system tests' cluster (tests/system/galera_server.py: 127.0.1.1-3,
rsync SST, EVS suspect 2 s, inactive 4 s), each trial, on node 2:

  1. a row written on node 1 (each trial has a new position);
  2. node 2's gcomm UUID read (wsrep_gcomm_uuid), then SIGKILL, and wait
     until the process is gone;
  3. variant evict: `SET GLOBAL wsrep_provider_options='evs.evict=UUID'`
     on node 1, so the survivors drop the dead incarnation at once
     instead of after the EVS timeouts;
     variant wait2: wait until node 1 reports wsrep_cluster_size 2 (the
     survivors evicted it on their own) before the start;
     variant evict_wait2: both, the eviction and then the wait for its
     new view (a start during the survivors' view change was seen to
     make the new member suspect them and wait out the EVS timeouts);
     variant plain: neither, as troika and Monit restart it today;
  4. `mariadbd --wsrep-recover`, then the start at the recovered position
     (what the mysql plugin's restart does);
  5. wait until node 2 is Synced in a cluster of 3 (every 50 ms).

Prints each phase per trial (with the byte offset where node 2's error
log of that trial begins) and the median of the totals per variant.
--keep leaves the cluster's directory (its path is printed) for the logs.
Needs root (mariadbd runs as user mysql) and free ports 3306/4444/4567/
4568 on 127.0.1.1-3: never beside the system tests.
"""
import argparse
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

if sys.executable != "/usr/bin/python3":
    os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "system"))
import conftest  # noqa: E402
from galera_server import Cluster  # noqa: E402


def recovered_position(node, log):
    """The position --wsrep-recover found (the last such line of its log)."""
    found = re.findall(r"Recovered position: (\S+)", log.read_text())
    if not found:
        raise RuntimeError(f"n{node.n}: no recovered position in {log}")
    return found[-1]


def trial(c, variant):
    n1, n2 = c.nodes[0], c.nodes[1]
    n1.sql("INSERT INTO shop.orders (v) VALUES ('rejoin')")
    uuid = n2.status("wsrep_gcomm_uuid")
    log_offset = n2.log_size()
    t0 = time.monotonic()
    n2.kill()
    t_gone = time.monotonic()
    if variant in ("evict", "evict_wait2"):
        n1.sql(f"SET GLOBAL wsrep_provider_options='evs.evict={uuid}'")
    if variant in ("wait2", "evict_wait2"):
        conftest.wait_for(lambda: n1.status("wsrep_cluster_size") == "2", 30,
                          interval=0.05, what="the survivors evicting n2")
    t_evicted = time.monotonic()
    log = n2.dir / "recover.log"
    log.unlink(missing_ok=True)
    subprocess.run(n2.argv("--wsrep-recover", f"--log-error={log}"),
                   capture_output=True, timeout=120)
    pos = recovered_position(n2, log)
    t_recovered = time.monotonic()
    n2.start(f"--wsrep-start-position={pos}")
    conftest.wait_for(lambda: n2.synced(3) and n1.status("wsrep_cluster_size") == "3",
                      120, interval=0.05, what="n2 Synced in a cluster of 3")
    t_synced = time.monotonic()
    return {
        "gone": t_gone - t0,
        "evict_or_wait": t_evicted - t_gone,
        "recover": t_recovered - t_evicted,
        "start_to_synced": t_synced - t_recovered,
        "total": t_synced - t0,
    }, log_offset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--variants", default="plain,evict,wait2")
    ap.add_argument("--keep", action="store_true",
                    help="keep the cluster's directory (logs)")
    args = ap.parse_args()
    variants = args.variants.split(",")
    for v in variants:
        if v not in ("plain", "evict", "wait2", "evict_wait2"):
            ap.error(f"unknown variant {v}")

    work = pathlib.Path(tempfile.mkdtemp(prefix="troika-rejoin-", dir="/var/tmp"))
    procs = conftest.Procs()
    c = Cluster(procs, work)
    totals = {v: [] for v in variants}
    try:
        c.start()
        # Alternate the variants, so a slow minute hits all of them.
        for i in range(args.trials):
            for v in variants:
                r, offset = trial(c, v)
                totals[v].append(r["total"])
                print(f"trial {i + 1} {v:11}: " + " ".join(
                    f"{k} {x:.2f}" for k, x in r.items()) +
                    f" s (n2 error.log from byte {offset})", flush=True)
                time.sleep(3)
    finally:
        c.stop()
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for v in variants:
        xs = totals[v]
        print(f"{v:11}: kill to Synced median {statistics.median(xs):.2f} s "
              f"(min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})")


if __name__ == "__main__":
    main()
