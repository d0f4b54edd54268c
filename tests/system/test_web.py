"""The nginx and phpfpm plugins in the real agent against a real nginx and
a real PHP-FPM pool (phpfpm_server.py): exact request counts, a pool
filled by slow scripts, stopped servers, actions, promtool.
"""
import json
import re
import subprocess
import threading
import time

import pytest

from conftest import AGENT, parse_metrics, wait_for
from phpfpm_server import start_stack


@pytest.fixture(scope="module")
def web(session_procs, tmp_path_factory):
    """php-fpm and nginx for the tests that leave them running."""
    return start_stack(session_procs, tmp_path_factory.mktemp("web"))


@pytest.fixture
def own_web(procs, tmp_path):
    """php-fpm and nginx for one test that stops or reloads them."""
    run = tmp_path / "web"
    run.mkdir()
    return start_stack(procs, run)


def nginx_check(name, url, interval="500ms", timeout="400ms", **opts):
    text = (f"  - name: {name}\n    plugin: nginx\n    interval: {interval}\n"
            f"    timeout: {timeout}\n    url: \"{url}\"\n")
    return text + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in opts.items())


def fpm_check(name, interval="500ms", timeout="400ms", **opts):
    text = (f"  - name: {name}\n    plugin: phpfpm\n    interval: {interval}\n"
            f"    timeout: {timeout}\n")
    return text + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in opts.items())


def message(agent, check):
    """The check's last message, through `troika-agent status`."""
    r = subprocess.run([AGENT, "--admin-socket", agent.admin_socket, "status"],
                       capture_output=True, timeout=30)
    for line in r.stdout.decode().splitlines():
        if line.startswith(f"check.{check}: "):
            value = line.split(" ", 3)[3] if line.count(" ") >= 3 else ""
            return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(
                m.group(1), m.group(1)), value)
    return None


def snapshot(agent, check, *names):
    """From one scrape: the check's OK runs and the named samples."""
    m = agent.metrics()

    def get(name, **labels):
        for (n, ls), v in m.items():
            d = dict(ls)
            if n == name and d.get("check") == check and \
                    all(d.get(k) == x for k, x in labels.items()):
                return v
        return None
    return (get("troika_check_runs_total", result="ok"), *[get(n) for n in names])


def test_nginx_counts_every_request(agent, web):
    fpm, nginx = web
    agent.write(nginx_check("nginx", nginx.url("/stub_status")))
    agent.start()
    wait_for(lambda: (agent.runs("nginx", "ok") or 0) >= 2, 10, what="two OK runs")
    runs1, req1, acc1 = snapshot(agent, "nginx", "nginx_http_requests_total",
                                 "nginx_connections_accepted_total")
    n = 7
    for i in range(n):
        assert nginx.get("/") == (200, b"hello troika\n")
    wait_for(lambda: agent.runs("nginx", "ok") >= runs1 + 2, 10, what="two more runs")
    runs2, req2, acc2, handled2, active, dropped, up = snapshot(
        agent, "nginx", "nginx_http_requests_total", "nginx_connections_accepted_total",
        "nginx_connections_handled_total", "nginx_connections_active",
        "nginx_connections_dropped_total", "nginx_up")
    # Each run's page counts the run's own request: the requests between
    # two pages are ours plus one per run in between.
    assert req2 - req1 == n + (runs2 - runs1), (req1, req2, runs1, runs2)
    # One connection per request (urllib and the check close theirs).
    assert acc2 - acc1 == n + (runs2 - runs1)
    assert handled2 == acc2
    assert dropped == 0
    assert active >= 1  # the check's own connection
    assert up == 1
    assert agent.status("nginx") == 0
    assert re.fullmatch(r"\d+ active connections \(\d+ reading, \d+ writing, \d+ waiting\), "
                        r"\d+ requests", message(agent, "nginx")), message(agent, "nginx")


def test_phpfpm_over_fastcgi_counts_every_request(agent, web):
    fpm, nginx = web
    agent.write(fpm_check("fpm", fastcgi=fpm.address))
    agent.start()
    wait_for(lambda: (agent.runs("fpm", "ok") or 0) >= 2, 10, what="two OK runs")
    runs1, acc1 = snapshot(agent, "fpm", "phpfpm_accepted_connections_total")
    n = 5
    for i in range(n):
        assert nginx.get("/hello.php") == (200, b"hello from php\n")
    wait_for(lambda: agent.runs("fpm", "ok") >= runs1 + 2, 10, what="two more runs")
    runs2, acc2, active, idle, total, queue, up = snapshot(
        agent, "fpm", "phpfpm_accepted_connections_total", "phpfpm_active_processes",
        "phpfpm_idle_processes", "phpfpm_total_processes", "phpfpm_listen_queue",
        "phpfpm_up")
    assert acc2 - acc1 == n + (runs2 - runs1), (acc1, acc2, runs1, runs2)
    assert active == 1  # the worker serving the status request itself
    assert idle == total - 1 and total in (1, 2)
    assert queue == 0
    assert up == 1
    assert agent.find("phpfpm_up", check="fpm", pool="www") == 1
    assert agent.status("fpm") == 0
    assert message(agent, "fpm") == \
        f"pool www: 1 active, {idle:.0f} idle, {total:.0f} total processes, listen queue 0"


def test_phpfpm_through_nginx(agent, web):
    fpm, nginx = web
    agent.write(fpm_check("fpm-http", url=nginx.url("/fpm-status"))
                + fpm_check("fpm-wrong-path", url=nginx.url("/hello.php?x=1")))
    agent.start()
    wait_for(lambda: agent.status("fpm-http") == 0 and agent.status("fpm-wrong-path") == 2,
             10, what="both results")
    assert agent.find("phpfpm_active_processes", check="fpm-http") == 1
    assert agent.find("phpfpm_up", check="fpm-http") == 1
    # A PHP page that is not the status page: not JSON.
    assert message(agent, "fpm-wrong-path").startswith("reply is not JSON (")
    assert agent.find("phpfpm_up", check="fpm-wrong-path") == 0


def test_slow_scripts_fill_the_pool(agent, web):
    """Four clients keep two slow requests running and two waiting: the
    pool (at most 2 children) is full, requests queue, and the process
    manager hits pm.max_children."""
    fpm, nginx = web
    agent.write(fpm_check("fpm", interval="4s", timeout="4s", fastcgi=fpm.address,
                          listen_queue_warning=0)
                + nginx_check("nginx", nginx.url("/stub_status"), interval="300ms",
                              timeout="250ms"))
    agent.start()
    wait_for(lambda: agent.status("fpm") == 0, 10, what="an OK run before the load")
    reached0 = agent.find("phpfpm_max_children_reached_total", check="fpm")
    slow0 = agent.find("phpfpm_slow_requests_total", check="fpm")
    stop = threading.Event()
    done = []

    def client():
        while not stop.is_set():
            done.append(nginx.get("/slow.php?ms=2500", timeout=20))
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: agent.status("fpm") == 1, 20, what="a WARNING under load")
        msg = message(agent, "fpm")
        m = agent.metrics()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    values = {n: v for (n, ls), v in m.items() if dict(ls).get("check") == "fpm"}
    assert values["phpfpm_total_processes"] == 2
    assert values["phpfpm_active_processes"] == 2
    assert values["phpfpm_idle_processes"] == 0
    assert values["phpfpm_max_active_processes"] == 2
    # The status request got the first worker to free up; the three other
    # clients' requests wait behind it (two, if one was between requests).
    found = re.fullmatch(r"pool www: (\d+) requests wait in the listen queue \(more than 0\); "
                     r"pm.max_children reached (\d+) more times since the last run "
                     r"\(2 active, 0 idle\)", msg)
    assert found, msg
    queued = int(found.group(1))
    assert queued == values["phpfpm_listen_queue"] and queued in (2, 3), msg
    assert int(found.group(2)) >= 1
    # Every slow request worked, through a full pool.
    assert done and all(r == (200, b"slept\n") for r in done), done[:3]
    # The process manager noticed: max children reached grew, and the
    # 2.5 s scripts are slow requests (request_slowlog_timeout 1s).
    wait_for(lambda: agent.status("fpm") == 0, 20, what="OK again after the load")
    assert agent.find("phpfpm_max_children_reached_total", check="fpm") > reached0
    assert agent.find("phpfpm_slow_requests_total", check="fpm") >= slow0 + len(done)
    assert agent.find("phpfpm_listen_queue", check="fpm") == 0
    assert agent.find("phpfpm_max_listen_queue", check="fpm") >= 1
    # nginx kept its schedule through the load, without drops.
    assert agent.status("nginx") == 0
    assert agent.runs("nginx", "ok") >= 20
    assert agent.runs("nginx", "timeout") == 0 and agent.runs("nginx", "critical") == 0
    assert agent.find("nginx_connections_dropped_total", check="nginx") == 0
    assert "server reached pm.max_children setting (2)" in fpm.log()


def test_stopped_servers_are_critical_and_recover(agent, own_web):
    fpm, nginx = own_web
    agent.write(fpm_check("fpm", interval="300ms", timeout="250ms", fastcgi=fpm.address)
                + fpm_check("fpm-http", interval="300ms", timeout="250ms",
                            url=nginx.url("/fpm-status"))
                + nginx_check("nginx", nginx.url("/stub_status"), interval="300ms",
                              timeout="250ms"))
    agent.start()
    wait_for(lambda: all(agent.status(c) == 0 for c in ("fpm", "fpm-http", "nginx")), 10,
             what="all OK")
    fpm.stop()
    wait_for(lambda: agent.status("fpm") == 2 and agent.status("fpm-http") == 2, 10,
             what="CRITICAL without php-fpm")
    assert message(agent, "fpm") == (f"connection refused: connecting to {fpm.address}: "
                                     "Connection refused")
    assert message(agent, "fpm-http") == "HTTP 502 from the status page"
    assert agent.find("phpfpm_up", check="fpm") == 0
    assert agent.status("nginx") == 0
    fpm.start()
    wait_for(lambda: agent.status("fpm") == 0 and agent.status("fpm-http") == 0, 10,
             what="OK with php-fpm back")
    nginx.stop()
    wait_for(lambda: agent.status("nginx") == 2 and agent.status("fpm-http") == 2, 10,
             what="CRITICAL without nginx")
    assert message(agent, "nginx").startswith("connection refused: ")
    assert agent.find("nginx_up", check="nginx") == 0
    assert agent.status("fpm") == 0
    nginx.start()
    wait_for(lambda: all(agent.status(c) == 0 for c in ("fpm", "fpm-http", "nginx")), 10,
             what="all OK again")
    # Refused connections are certain evidence: every failed run was
    # CRITICAL, none timed out.
    for c in ("fpm", "fpm-http", "nginx"):
        assert agent.runs(c, "critical") >= 1
        assert agent.runs(c, "timeout") == 0


def test_actions(agent, own_web):
    fpm, nginx = own_web
    agent.write(nginx_check("nginx", nginx.url("/stub_status"),
                            reload_command=nginx.reload_argv)
                + fpm_check("fpm", fastcgi=fpm.address,
                            reload_command=["/bin/kill", "-USR2", str(fpm.pid)])
                + fpm_check("fpm-bad-reload", fastcgi=fpm.address,
                            reload_command=["/bin/sh", "-c", "echo no such pool >&2; exit 4"]))
    agent.start()
    wait_for(lambda: agent.status("nginx") == 0 and agent.status("fpm") == 0, 10,
             what="OK runs")
    # No service manager yet (the check has no `service:`).
    for check in ("nginx", "fpm"):
        for op in ("start", "stop", "restart"):
            rc, reply = agent.action(check, op)
            assert (rc, reply["result"], reply["message"]) == \
                (1, "failed", "no service manager configured for this check"), (check, op)
            assert reply["field.action"] == op
    # nginx reload: new workers, same master, still serving.
    workers = nginx.workers()
    assert len(workers) == 1
    rc, reply = agent.action("nginx", "reload")
    assert (rc, reply["result"]) == (0, "ok"), reply
    assert reply["message"] == f"reload: {nginx.binary} exited with 0"
    wait_for(lambda: nginx.workers() and not (nginx.workers() & workers), 10,
             what="nginx to replace its worker")
    assert nginx.get("/") == (200, b"hello troika\n")
    # php-fpm reload (SIGUSR2): the pool restarts, so its start time moves.
    wait_for(lambda: (agent.find("phpfpm_start_since", check="fpm") or 0) >= 2, 10,
             what="the pool to be 2 s old")
    rc, reply = agent.action("fpm", "reload")
    assert (rc, reply["result"], reply["message"]) == (0, "ok", "reload: /bin/kill exited with 0")
    wait_for(lambda: (agent.find("phpfpm_start_since", check="fpm") or 99) < 2, 10,
             what="a restarted pool")
    assert "Reloading in progress" in fpm.log()
    assert agent.status("fpm") == 0
    rc, reply = agent.action("fpm-bad-reload", "reload")
    assert (rc, reply["result"], reply["message"]) == \
        (1, "failed", "reload: /bin/sh exited with 4: no such pool")
    rc, reply = agent.action("fpm", "promote")
    assert (rc, reply["message"]) == (2, "the check's plugin has no such action")


def test_web_metrics_pass_promtool(agent, web, tmp_path):
    fpm, nginx = web
    agent.write(nginx_check("nginx", nginx.url("/stub_status"))
                + fpm_check("fpm", fastcgi=fpm.address)
                + fpm_check("fpm-down", fastcgi="127.0.1.1:1"))
    agent.start()
    wait_for(lambda: agent.status("nginx") == 0 and agent.status("fpm") == 0
             and agent.status("fpm-down") == 2, 10, what="results")
    text = agent.scrape_text()
    (tmp_path / "metrics.prom").write_text(text)
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    for family, kind in (("nginx_http_requests_total", "counter"),
                         ("nginx_connections_active", "gauge"),
                         ("phpfpm_accepted_connections_total", "counter"),
                         ("phpfpm_active_processes", "gauge"), ("phpfpm_up", "gauge")):
        assert f"# TYPE {family} {kind}" in text, family
    assert parse_metrics(text)
