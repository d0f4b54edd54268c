"""troika-agent against real servers and real programs on loopback."""
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from conftest import (AGENT, NAGIOS, NODE1, PLUGIN_DIR, SANITIZED, TEST_PLUGIN_DIR,
                      free_port, parse_metrics, wait_for)


def closed_port():
    """A port on NODE1 that nothing listens on."""
    return free_port()


def test_tcp_and_http_checks_against_real_nginx(agent, nginx):
    dead = closed_port()
    agent.write(f"""
  - name: web-tcp
    plugin: tcp
    interval: 500ms
    timeout: 400ms
    host: "{nginx.host}"
    port: {nginx.port}
  - name: web-http
    plugin: http
    interval: 500ms
    timeout: 400ms
    url: "{nginx.url}"
    body_contains: "hello troika"
  - name: web-http-404
    plugin: http
    interval: 500ms
    timeout: 400ms
    url: "{nginx.url}missing"
  - name: dead-tcp
    plugin: tcp
    interval: 500ms
    timeout: 400ms
    host: "{NODE1}"
    port: {dead}
""")
    agent.start()
    wait_for(lambda: all(agent.status(c) is not None
                         for c in ("web-tcp", "web-http", "web-http-404", "dead-tcp")),
             10, what="a result of every check")
    assert agent.status("web-tcp") == 0
    assert agent.status("web-http") == 0
    assert agent.status("web-http-404") == 2  # expects 200 by default
    assert agent.status("dead-tcp") == 2      # connection refused
    # Plugin samples carry the host's check and plugin labels.
    assert agent.find("troika_tcp_connect_seconds", check="web-tcp", plugin="tcp") is not None
    assert agent.find("troika_http_status_code", check="web-http-404") == 404
    # A status change is an event, logged once.
    assert "event=check_status check=dead-tcp plugin=tcp to=critical" in agent.log_text()


def test_monitoring_plugins_through_exec(agent, nginx):
    dead = closed_port()
    agent.write(f"""
  - name: np-tcp
    plugin: exec
    interval: 1s
    timeout: 900ms
    command: ["{NAGIOS}/check_tcp", "-H", "{nginx.host}", "-p", "{nginx.port}"]
  - name: np-http
    plugin: exec
    interval: 1s
    timeout: 900ms
    command: ["{NAGIOS}/check_http", "-I", "{nginx.host}", "-p", "{nginx.port}", "-u", "/", "-s", "hello troika"]
  - name: np-tcp-dead
    plugin: exec
    interval: 1s
    timeout: 900ms
    command: ["{NAGIOS}/check_tcp", "-H", "{NODE1}", "-p", "{dead}"]
""")
    agent.start()
    wait_for(lambda: all(agent.status(c) is not None for c in ("np-tcp", "np-http", "np-tcp-dead")),
             10, what="exec results")
    assert agent.status("np-tcp") == 0
    assert agent.status("np-http") == 0
    assert agent.status("np-tcp-dead") == 2
    # perfdata became samples: check_tcp and check_http report "time".
    assert agent.find("troika_exec_perfdata", check="np-tcp", label="time") is not None
    assert agent.find("troika_exec_perfdata", check="np-http", label="size") > 0


def test_metrics_pass_promtool(agent, nginx, tmp_path):
    agent.write(f"""
  - name: web-tcp
    plugin: tcp
    interval: 300ms
    timeout: 200ms
    host: "{nginx.host}"
    port: {nginx.port}
  - name: escaping
    plugin: flaky
    interval: 300ms
    timeout: 200ms
    statuses: ["ok", "critical"]
  - name: proc
    plugin: process
    interval: 300ms
    timeout: 200ms
    process_name: nginx
""")
    agent.start()
    wait_for(lambda: agent.runs("escaping", "critical") >= 1 and agent.status("proc") is not None,
             10, what="results")
    text = agent.scrape_text()
    (tmp_path / "metrics.prom").write_text(text)
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    for family in ("troika_check_status", "troika_check_duration_seconds",
                   "troika_check_runs_total", "troika_plugin_loaded", "troika_build_info",
                   "process_cpu_seconds_total", "process_resident_memory_bytes",
                   "process_open_fds"):
        assert f"# TYPE {family} " in text, family
    # The flaky plugin's label holds a quote, a backslash and a newline:
    # escaped on the page, and read back intact by our parser.
    flaky = [dict(ls) for (n, ls), v in parse_metrics(text).items()
             if n == "troika_flaky_value"]
    assert len(flaky) == 1
    assert all(c in flaky[0]["text"] for c in ('"', "\\", "\n")), flaky
    assert agent.status("proc") == 0
    assert agent.find("troika_process_num_procs", check="proc") >= 2  # master + worker


def test_hanging_plugin_is_timed_out_and_others_keep_their_schedule(agent, nginx):
    agent.write(f"""
  - name: hangs
    plugin: hang
    interval: 1s
    timeout: 300ms
  - name: sleeps
    plugin: sleepy
    interval: 1s
    timeout: 300ms
    sleep: 5s
  - name: steady
    plugin: tcp
    interval: 200ms
    timeout: 150ms
    host: "{nginx.host}"
    port: {nginx.port}
""")
    agent.start()
    wait_for(lambda: agent.runs("hangs", "timeout") >= 1 and agent.runs("sleeps", "timeout") >= 1,
             10, what="both hung checks to time out")
    assert agent.status("hangs") == 3
    assert agent.status("sleeps") == 3
    start = agent.runs("steady", "ok")
    t0 = time.monotonic()
    wait_for(lambda: agent.runs("steady", "ok") >= start + 10, 5,
             what="the steady check to keep running")
    elapsed = time.monotonic() - t0
    # 10 runs at 200 ms take 2 s on schedule; allow scheduling noise, not stalls.
    assert elapsed < 3.5, elapsed
    # The hung check is never started twice: its later runs count as overruns.
    wait_for(lambda: (agent.find("troika_check_overruns_total", check="hangs") or 0) >= 1, 5,
             what="an overrun of the hung check")
    assert agent.runs("hangs", "timeout") == 1
    assert "event=check_timeout check=hangs" in agent.log_text()


def _copy_plugin(src_dir, name, dst_dir):
    shutil.copy(os.path.join(src_dir, f"troika-{name}.so"), dst_dir / f"troika-{name}.so")


def test_bad_plugins_are_refused_and_the_rest_runs(agent, nginx, tmp_path):
    good = tmp_path / "plugins"
    good.mkdir(mode=0o755)
    for name in ("tcp",):
        _copy_plugin(PLUGIN_DIR, name, good)
    for name in ("badabi", "tiny", "noentry"):
        _copy_plugin(TEST_PLUGIN_DIR, name, good)
    # A second tcp (same name) is refused as a duplicate.
    shutil.copy(good / "troika-tcp.so", good / "troika-tcp2.so")
    # A group-writable directory: none of its plugins is loaded.
    loose = tmp_path / "loose"
    loose.mkdir()
    _copy_plugin(TEST_PLUGIN_DIR, "flaky", loose)
    os.chmod(loose, 0o775)
    # A group-writable file in a good directory.
    _copy_plugin(TEST_PLUGIN_DIR, "slow", good)
    os.chmod(good / "troika-slow.so", 0o664)

    agent.write(f"""
  - name: web-tcp
    plugin: tcp
    interval: 300ms
    timeout: 200ms
    host: "{nginx.host}"
    port: {nginx.port}
""", plugin_dirs=[str(good), str(loose)])
    agent.start()
    wait_for(lambda: agent.status("web-tcp") == 0, 10, what="the good check")
    log = agent.log_text()
    assert f"refused {good}/troika-badabi.so: ABI major mismatch: plugin has 99, host has 1" in log
    assert f"refused {good}/troika-tiny.so: descriptor too small" in log
    assert f"refused {good}/troika-noentry.so: no entry symbol troika_plugin_entry_v1" in log
    assert f"refused {good}/troika-tcp2.so: plugin name 'tcp' already provided by {good}/troika-tcp.so" in log
    assert f"refused {good}/troika-slow.so: writable by group or others" in log
    assert f"refused {loose}: plugin directory writable by group or others" in log
    m = agent.metrics()
    refused = {dict(ls)["file"] for (n, ls), v in m.items() if n == "troika_plugin_refused"}
    assert refused == {f"{good}/troika-badabi.so", f"{good}/troika-tiny.so",
                       f"{good}/troika-noentry.so", f"{good}/troika-tcp2.so",
                       f"{good}/troika-slow.so", str(loose)}
    loaded = {dict(ls)["plugin"] for (n, ls), v in m.items() if n == "troika_plugin_loaded"}
    assert loaded == {"tcp"}


def test_bad_config_exits_nonzero_naming_file_line_column(agent):
    agent.write("""
  - name: web
    plugin: tcp
    host: "127.0.0.1"
    port: 80
    intervall: 5s
""")
    r = subprocess.run([AGENT, "--config", str(agent.config)], capture_output=True,
                       timeout=20)
    assert r.returncode == 1
    err = r.stderr.decode()
    # "checks:" is on line 11 of the generated file; the typo on line 17.
    lines = agent.config.read_text().splitlines()
    lineno = next(i for i, l in enumerate(lines, 1) if "intervall" in l)
    assert f"{agent.config}:{lineno}:5: unknown key 'intervall'" in err, err
    r = subprocess.run([AGENT, "--config", str(agent.config), "--check-config"],
                       capture_output=True, timeout=20)
    assert r.returncode == 1
    assert f"{agent.config}:{lineno}:5: unknown key 'intervall'" in r.stderr.decode()


def test_sighup_adds_a_check_and_keeps_unchanged_ones(agent, nginx):
    agent.write(f"""
  - name: first
    plugin: tcp
    interval: 200ms
    timeout: 150ms
    host: "{nginx.host}"
    port: {nginx.port}
""")
    agent.start()
    wait_for(lambda: agent.runs("first", "ok") >= 3, 10, what="first check runs")
    agent.add_dropin("second.yaml", f"""
  - name: second
    plugin: http
    interval: 200ms
    timeout: 150ms
    url: "{nginx.url}"
""")
    before = agent.runs("first", "ok")
    agent.signal(signal.SIGHUP)
    wait_for(lambda: agent.status("second") == 0, 10, what="the added check")
    # Unchanged: its counters went on instead of starting again.
    assert agent.runs("first", "ok") >= before
    assert agent.value("troika_config_last_reload_successful") == 1
    assert "event=config_reloaded" in agent.log_text()
    # Added once at start; the reload neither removed nor re-added it.
    assert agent.log_text().count("event=check_added check=first ") == 1
    assert "event=check_removed check=first " not in agent.log_text()

    # A broken reload keeps the running configuration.
    agent.add_dropin("broken.yaml", "  - name: x\n    plugin: tcp\n    port: [1]\n")
    agent.signal(signal.SIGHUP)
    wait_for(lambda: agent.value("troika_config_last_reload_successful") == 0, 10,
             what="the rejected reload")
    assert "broken.yaml:4:11: expected an integer for 'port'" in agent.log_text()
    n = agent.runs("second", "ok")
    wait_for(lambda: agent.runs("second", "ok") > n, 5, what="checks still running")


def test_sigterm_stops_cleanly(agent, nginx):
    agent.write(f"""
  - name: t
    plugin: tcp
    interval: 200ms
    timeout: 100ms
    host: "{nginx.host}"
    port: {nginx.port}
  - name: h
    plugin: http
    interval: 200ms
    timeout: 100ms
    url: "{nginx.url}"
  - name: e
    plugin: exec
    interval: 200ms
    timeout: 100ms
    command: ["/bin/sh", "-c", "echo 'OK | x=1'"]
  - name: p
    plugin: process
    interval: 200ms
    timeout: 100ms
    process_name: nginx
""")
    agent.start()
    wait_for(lambda: all(agent.runs(c, "ok") >= 3 for c in "thep"), 10, what="runs")
    t0 = time.monotonic()
    rc = agent.stop()
    assert rc == 0, agent.log_text()[-3000:]
    assert time.monotonic() - t0 < 5
    assert "event=agent_stopping" in agent.log_text()


@pytest.mark.skipif(SANITIZED, reason="the ASan build checks leaks itself "
                    "(test_sigterm_stops_cleanly fails on any leak there)")
def test_no_leaks_under_valgrind(agent, nginx):
    agent.write(f"""
  - name: t
    plugin: tcp
    interval: 500ms
    timeout: 500ms
    host: "{nginx.host}"
    port: {nginx.port}
  - name: h
    plugin: http
    interval: 500ms
    timeout: 500ms
    url: "{nginx.url}"
  - name: e
    plugin: exec
    interval: 500ms
    timeout: 500ms
    command: ["/bin/sh", "-c", "echo 'OK | x=1'"]
  - name: p
    plugin: process
    interval: 500ms
    timeout: 500ms
    process_name: nginx
  - name: hang
    plugin: hang
    interval: 1s
    timeout: 300ms
""")
    agent.proc = agent.procs.start(
        ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
         "--error-exitcode=99", "--track-fds=no", AGENT, "--config", str(agent.config)],
        agent.log)
    wait_for(agent.healthy, 60, what="the agent under valgrind")
    wait_for(lambda: all(agent.runs(c, "ok") >= 2 for c in "thep"), 60, what="runs")
    wait_for(lambda: agent.runs("hang", "timeout") >= 1, 30, what="a timeout")
    agent.signal(signal.SIGHUP)
    wait_for(lambda: agent.log_text().count("event=config_reloaded") >= 1, 30, what="reload")
    rc = agent.stop(timeout=60)
    log = agent.log_text()
    assert rc == 0, log[-5000:]
    assert "definitely lost: 0 bytes" in log or "All heap blocks were freed" in log, log[-5000:]


def test_actions_through_the_admin_socket(agent):
    agent.write("""
  - name: a
    plugin: actor
    interval: 1s
    timeout: 500ms
    action_timeout: 1s
  - name: plain
    plugin: flaky
    interval: 1s
    timeout: 500ms
""")
    agent.start()
    assert oct(os.stat(agent.admin_socket).st_mode & 0o777) == "0o600"
    rc, reply = agent.action("a", "echo", "one", "two words")
    assert rc == 0, reply
    assert reply["result"] == "ok"
    assert reply["field.arg0"] == "one"
    assert reply["field.arg1"] == "two words"
    rc, reply = agent.action("a", "fail")
    assert (rc, reply["result"], reply["message"]) == (1, "failed", "failed on purpose")
    rc, reply = agent.action("a", "slow", "5000")
    assert (rc, reply["result"], reply["timed_out"]) == (3, "unknown", "true")
    rc, reply = agent.action("a", "slow")
    assert (rc, reply["result"], reply["message"]) == (2, "error", "usage: slow <ms>")
    rc, reply = agent.action("plain", "promote")
    assert (rc, reply["message"]) == (2, "the check's plugin has no such action")
    rc, reply = agent.action("nope", "echo")
    assert (rc, reply["message"]) == (2, "no such check")
    assert "event=action_done check=a plugin=actor msg=\"echo: done" in agent.log_text()

    # Bad input on the socket: garbage, an over-long line, a silent
    # connection; each is answered or closed, and the agent keeps serving.
    import socket as so
    def raw(data, read=True):
        s = so.socket(so.AF_UNIX)
        s.connect(agent.admin_socket)
        s.sendall(data)
        out = s.recv(65536) if read else b""
        s.close()
        return out
    assert raw(b"\x00\xff garbage\n").startswith(b"result: error\nmessage: ")
    assert raw(b"action a %zz\n") == b"result: error\nmessage: malformed request (bad encoding or too many arguments)\n\n"
    assert raw(b"x" * 10000).startswith(b"result: error\nmessage: request too long")
    idle = [so.socket(so.AF_UNIX) for _ in range(20)]
    for s in idle:
        s.connect(agent.admin_socket)
    rc, reply = agent.action("a", "echo")
    assert rc in (0, 2)  # 16 connections at most: this one may be turned away
    for s in idle:
        s.close()
    wait_for(lambda: agent.action("a", "echo")[0] == 0, 5, what="admin socket free again")
    assert agent.healthy()


def test_builtin_service_actions(agent, tmp_path):
    marker = tmp_path / "service.log"
    agent.write(f"""
  - name: svc
    plugin: flaky
    interval: 1s
    timeout: 500ms
    service:
      manager: exec
      start: ["/bin/sh", "-c", "echo start >> {marker}"]
      stop: ["/bin/sh", "-c", "echo stop >> {marker}"]
  - name: broken
    plugin: flaky
    interval: 1s
    timeout: 500ms
    service:
      manager: exec
      start: ["/bin/sh", "-c", "echo 'unit not found' >&2; exit 5"]
  - name: noservice
    plugin: flaky
    interval: 1s
    timeout: 500ms
""")
    agent.start()
    rc, reply = agent.action("svc", "restart")
    assert (rc, reply["result"]) == (0, "ok"), reply
    assert reply["message"].startswith("stop: done in ") and "; start: done in " in reply["message"]
    assert marker.read_text() == "stop\nstart\n"
    rc, reply = agent.action("broken", "start")
    assert (rc, reply["result"], reply["message"]) == (1, "failed", "start: exited 5: unit not found")
    rc, reply = agent.action("broken", "stop")
    assert (rc, reply["result"], reply["message"]) == (
        1, "failed", "no 'stop' command in the check's service (restart needs restart, "
        "or stop and start)")
    rc, reply = agent.action("noservice", "restart")
    assert (rc, reply["message"]) == (2, "no service manager configured for this check (its 'service:' key)")
    log = agent.log_text()
    assert "event=action_started check=svc plugin=flaky msg=\"restart\"" in log
    assert "check=svc: service: stop: done in" in log
