"""Fast on certainty, in the agent (core/lib/check_watch.c): a check whose
`service.pidfile` names a running process is run the moment that process
exits (pidfd), and a new failure with certain evidence is confirmed by one
immediate re-check, so two certain CRITICAL results exist within
milliseconds of a kill -9 instead of an interval apart."""
import signal
import sys
import time

from conftest import NODE1, free_port, wait_for

# A TCP service that writes its pidfile once it listens.
SERVICE = """
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
open(sys.argv[3] + ".tmp", "w").write(f"{os.getpid()}\\n")
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
while True:
    c, _ = s.accept()
    c.close()
"""


def start_service(procs, tmp_path, port, pidfile):
    if pidfile.exists():
        pidfile.unlink()
    p = procs.start([sys.executable, "-c", SERVICE, NODE1, str(port), str(pidfile)],
                    tmp_path / "service.log")
    wait_for(pidfile.exists, 10, what="the service's pidfile")
    return p


def test_process_exit_runs_the_check_at_once(agent, procs, tmp_path):
    port = free_port()
    pidfile = tmp_path / "svc.pid"
    svc = start_service(procs, tmp_path, port, pidfile)
    # 30 s between scheduled runs: anything faster is the watch.
    agent.write(f"  - name: svc\n    plugin: tcp\n    host: {NODE1}\n    port: {port}\n"
                f"    interval: 30s\n    timeout: 2s\n"
                f"    service: {{pidfile: {pidfile}}}\n")
    agent.start()
    wait_for(lambda: f"watching main process {svc.pid}" in agent.log_text(), 10,
             what="the agent watching the service's pid")

    def rechecks(reason):
        return agent.find("troika_check_rechecks_total", check="svc", reason=reason)

    assert rechecks("process_exit") == 0
    t0 = time.monotonic()
    svc.send_signal(signal.SIGKILL)
    svc.wait(5)  # reaped, as init or systemd would at once
    # Two certain CRITICAL results: the run the exit caused, and the one
    # confirming it. Both long before the next scheduled run.
    wait_for(lambda: agent.runs("svc", "critical") >= 2, 5, interval=0.01,
             what="two CRITICAL results after the kill")
    took = time.monotonic() - t0
    print(f"kill -9 to the confirming CRITICAL result: {took * 1000:.0f} ms")
    assert took < 2
    assert agent.status("svc") == 2
    assert rechecks("process_exit") == 1 and rechecks("certain_failure") == 1
    assert agent.runs("svc", "critical") == 2
    assert "event=process_exited check=svc" in agent.log_text()
    assert f'main process {svc.pid} ({pidfile}) exited' in agent.log_text()
    # Nothing more until the schedule: the failure was confirmed once.
    time.sleep(1)
    assert agent.runs("svc", "critical") == 2

    # A changed check (interval 2s) is a new instance; the service is
    # down, so there is nothing to watch until a result finds it back:
    # every result re-reads the pidfile.
    agent.write(f"  - name: svc\n    plugin: tcp\n    host: {NODE1}\n    port: {port}\n"
                f"    interval: 2s\n    timeout: 1s\n"
                f"    service: {{pidfile: {pidfile}}}\n")
    agent.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: agent.find("troika_check_rechecks_total", check="svc",
                                reason="process_exit") == 0, 5, what="the reloaded check")
    svc2 = start_service(procs, tmp_path, port, pidfile)
    assert svc2.pid != svc.pid
    wait_for(lambda: agent.status("svc") == 0, 10, what="the service OK again")
    wait_for(lambda: f"watching main process {svc2.pid}" in agent.log_text(), 5,
             what="the watch following the new pid")
    svc2.send_signal(signal.SIGKILL)
    svc2.wait(5)
    wait_for(lambda: rechecks("process_exit") == 1, 5, interval=0.01,
             what="the exit of the new process noticed")
    wait_for(lambda: agent.status("svc") == 2, 5, what="CRITICAL again")
