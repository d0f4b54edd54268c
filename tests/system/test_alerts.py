"""Alert hooks of a real troika-coord: a webhook (a python http.server
here), a real Alertmanager (Debian's prometheus-alertmanager, API v2, with
its own webhook receiver to see its notifications), an exec hook (a shell
script writing its stdin and TROIKA_* environment to files), a webhook
whose endpoint refuses connections and one whose endpoint accepts and
never answers. An agent (python3-grpcio on Agent/Connect) reports a check
OK, then CRITICAL, then OK again; each sink must get the right payload,
Alertmanager must show the alert firing and then resolved, the dead
endpoint must be retried, dropped and counted, and the hung one must not
stall the coordinator (GetStatus answers at once) or the other hooks."""
import fcntl
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from cluster import DEFAULT_POLICY, ETCD_LOCK, Cluster
from conftest import NODE1, SANITIZED, free_port, wait_for
from test_coord import Coord, Stream, hello, pb, result  # noqa: F401 (pb: fixture)

ALERTMANAGER = shutil.which("prometheus-alertmanager")
SLOW = 3 if SANITIZED else 1

pytestmark = pytest.mark.skipif(ALERTMANAGER is None,
                                reason="prometheus-alertmanager is not installed")


class Receiver:
    """An HTTP server that records every POST (path, headers, JSON body)."""

    def __init__(self):
        self.port = free_port()
        self.posts = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.posts.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((NODE1, self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, path):
        with self.lock:
            return [b for p, _, b in self.posts if p == path]

    def headers(self, path):
        with self.lock:
            return [h for p, h, _ in self.posts if p == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Alertmanager:
    def __init__(self, procs, workdir, receiver):
        self.port = free_port()
        self.url = f"http://{NODE1}:{self.port}"
        conf = workdir / "alertmanager.yml"
        # group_wait 0s: a notification as soon as an alert arrives;
        # group_interval 1s: a resolved one within a second.
        conf.write_text(f"""
route:
  receiver: hook
  group_by: [alertname, node, check]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: "http://{NODE1}:{receiver.port}/am"
        send_resolved: true
""")
        (workdir / "am-data").mkdir()
        self.log = workdir / "alertmanager.log"
        # The empty cluster.listen-address turns gossip off (it would
        # bind 0.0.0.0:9094, TESTENV.md section 7).
        self.proc = procs.start([ALERTMANAGER, f"--config.file={conf}",
                                 f"--storage.path={workdir / 'am-data'}",
                                 f"--web.listen-address={NODE1}:{self.port}",
                                 "--cluster.listen-address="], self.log)
        wait_for(self.ready, 15, what="alertmanager /-/ready")

    def ready(self):
        assert self.proc.poll() is None, self.log.read_text()
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def alerts(self, alertname):
        q = urllib.parse.quote(f'alertname="{alertname}"')
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?filter={q}", timeout=5) as r:
            return json.loads(r.read())


def hooks_config(receiver, am, dead_port, hung_port, outdir):
    script = ('cat > "$0/ev-$TROIKA_EVENT_SEQ.json"; '
              'env | grep "^TROIKA_" | sort > "$0/env-$TROIKA_EVENT_SEQ"')
    return f"""
alerts:
  hooks:
    - name: web
      kind: webhook
      url: "http://{NODE1}:{receiver.port}/troika"
      headers: {{X-Token: "s3cret"}}
    - name: am
      kind: alertmanager
      url: "{am.url}"
      resend: 2s
    - name: script
      kind: exec
      argv: ["/bin/sh", "-c", {json.dumps(script)}, "{outdir}"]
      kinds: [check_status]
    - name: dead
      kind: webhook
      url: "http://{NODE1}:{dead_port}/"
      retries: 2
      backoff: 100ms
    - name: hung
      kind: webhook
      url: "http://{NODE1}:{hung_port}/"
      timeout: 2s
      retries: 1
      backoff: 100ms
"""


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_alerts_to_every_sink(procs, tmp_path, pb, receiver):  # noqa: F811
    agent_pb2, _ = pb
    am = Alertmanager(procs, tmp_path, receiver)
    outdir = tmp_path / "exec"
    outdir.mkdir()
    dead_port = free_port()  # nothing listens there: connection refused
    # Accepts connections (the kernel's backlog) and never answers.
    hung = socket.socket()
    hung_port = free_port()
    hung.bind((NODE1, hung_port))
    hung.listen(16)
    coord = Coord(procs, tmp_path, pb,
                  extra=hooks_config(receiver, am, dead_port, hung_port, outdir))
    try:
        s = Stream(coord.connect)
        s.send(hello(agent_pb2, "node-1", checks=("web",)))
        s.recv()
        s.send(result(agent_pb2, "web", agent_pb2.CHECK_STATUS_OK, 1, "fine"))
        s.send(result(agent_pb2, "web", agent_pb2.CHECK_STATUS_CRITICAL, 2,
                      'connect: refused "x"\n'))
        t0 = time.monotonic()

        # The webhook: the event as JSON, with the configured header; the
        # INFO events before it (node_connected, none -> OK) are below
        # min_severity.
        got = wait_for(lambda: receiver.bodies("/troika"), 10, what="the webhook's POST")
        took = time.monotonic() - t0
        ev = got[0]
        assert len(got) == 1
        assert ev["kind"] == "check_status" and ev["severity"] == "critical"
        assert (ev["node"], ev["check"], ev["coordinator"]) == ("node-1", "web", "coord-1")
        assert ev["message"] == 'web on node-1: ok -> critical: connect: refused "x"\n'
        assert ev["fields"] == {"from": "ok", "to": "critical", "plugin": "tcp",
                                "evidence": "certain"}
        assert ev["time"].endswith("Z") and int(ev["time_unix_nano"]) > 0
        assert receiver.headers("/troika")[0]["X-Token"] == "s3cret"
        assert receiver.headers("/troika")[0]["Content-Type"] == "application/json"
        # Not held up by the hung hook (2 s timeout) nor the dead one.
        assert took < 1.5, took

        # The loop is free while the hung hook waits for its answer.
        t = time.monotonic()
        st = coord.status()
        assert time.monotonic() - t < 0.5
        assert st.coordinator == "coord-1"

        # The exec hook: the same JSON on stdin, the fields in TROIKA_*.
        seq = ev["seq"]
        path = outdir / f"env-{seq}"
        wait_for(lambda: path.exists() and path.read_text().endswith("\n"), 10,
                 what="the exec hook's output")
        assert json.loads((outdir / f"ev-{seq}.json").read_text()) == ev
        env = dict(line.split("=", 1) for line in path.read_text().splitlines()
                   if "=" in line)
        assert env["TROIKA_EVENT_KIND"] == "check_status"
        assert env["TROIKA_EVENT_SEVERITY"] == "critical"
        assert env["TROIKA_EVENT_NODE"] == "node-1"
        assert env["TROIKA_EVENT_CHECK"] == "web"
        assert env["TROIKA_EVENT_SEQ"] == str(seq)
        assert env["TROIKA_EVENT_FIELD_TO"] == "critical"
        assert env["TROIKA_HOOK"] == "script"
        # kinds: [check_status] and min_severity warning: only this one.
        assert sorted(p.name for p in outdir.iterdir()) == [f"env-{seq}", f"ev-{seq}.json"]

        # Alertmanager: the alert fires with our labels...
        alerts = wait_for(lambda: am.alerts("troika_check_status"), 10,
                          what="the alert in Alertmanager")
        assert len(alerts) == 1
        a = alerts[0]
        assert a["labels"] == {"alertname": "troika_check_status", "severity": "critical",
                               "node": "node-1", "check": "web"}
        assert a["status"]["state"] == "active"
        assert a["annotations"]["summary"] == ev["message"]
        assert a["annotations"]["coordinator"] == "coord-1"
        assert a["annotations"]["to"] == "critical"
        # ... Alertmanager notified its own receiver...
        notes = wait_for(lambda: [n for n in receiver.bodies("/am")
                                  if n["status"] == "firing"], 10,
                         what="Alertmanager's firing notification")
        assert notes[0]["alerts"][0]["labels"]["alertname"] == "troika_check_status"
        # ... and re-sent every 2 s, endsAt stays about 8 s ahead.
        ends = a["endsAt"]
        wait_for(lambda: am.alerts("troika_check_status")[0]["endsAt"] != ends, 10,
                 what="a resend moving endsAt")

        # Back to OK: resolved (endsAt now), gone from the active alerts,
        # and Alertmanager says so to its receiver.
        s.send(result(agent_pb2, "web", agent_pb2.CHECK_STATUS_OK, 3, "fine again"))
        wait_for(lambda: not [x for x in am.alerts("troika_check_status")
                              if x["status"]["state"] == "active"], 10,
                 what="the alert resolved")
        wait_for(lambda: [n for n in receiver.bodies("/am") if n["status"] == "resolved"],
                 10, what="Alertmanager's resolved notification")
        # The OK itself is INFO: not sent to the webhook.
        assert [b["kind"] for b in receiver.bodies("/troika")] == ["check_status"]

        # The dead endpoint: three attempts (1 + 2 retries), then the
        # payload is dropped and counted; the hung one: two attempts of
        # 2 s each. Every other hook delivered meanwhile.
        def counters():
            m = coord.metrics()
            return {k: m.get((n, frozenset(labels.items())))
                    for k, n, labels in [
                        ("dead_failed", "troika_alert_deliveries_total",
                         {"hook": "dead", "kind": "webhook", "result": "failed"}),
                        ("dead_dropped", "troika_alert_dropped_total",
                         {"hook": "dead", "reason": "retries"}),
                        ("hung_failed", "troika_alert_deliveries_total",
                         {"hook": "hung", "kind": "webhook", "result": "failed"}),
                        ("hung_dropped", "troika_alert_dropped_total",
                         {"hook": "hung", "reason": "retries"}),
                        ("web_ok", "troika_alert_deliveries_total",
                         {"hook": "web", "kind": "webhook", "result": "ok"}),
                        ("script_ok", "troika_alert_deliveries_total",
                         {"hook": "script", "kind": "exec", "result": "ok"}),
                        ("hung_queue", "troika_alert_queue_length", {"hook": "hung"}),
                        ("active", "troika_alert_active", {"hook": "am"}),
                        ("sending", "troika_alert_sending", {}),
                    ]}
        want = {"dead_failed": 3, "dead_dropped": 1, "hung_failed": 2, "hung_dropped": 1,
                "web_ok": 1, "script_ok": 1, "hung_queue": 0, "active": 0, "sending": 1}
        wait_for(lambda: counters() == want, 15, what=f"the counters {want}")
        assert "alert hook dead: delivery failed" in coord.log_text()
        assert "alert hook hung: dropped a payload after 2 attempts" in coord.log_text()

        # promtool accepts the page with the alert families on it.
        r = subprocess.run(["promtool", "check", "metrics"], input=coord.metrics_text().encode(),
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        s.close()
    finally:
        coord.stop()
        hung.close()


def test_the_leader_sends_and_a_minority_too(procs, tmp_path, pb, receiver):  # noqa: F811
    """Three coordinators on etcd see the same events: only the leader
    sends them (one POST per event, not three). Then etcd loses its
    quorum: no coordinator can tell who leads, and every one sends its
    quorum_lost."""
    hooks = (f"alerts:\n  hooks:\n    - name: web\n      kind: webhook\n"
             f'      url: "http://{NODE1}:{receiver.port}/troika"\n')
    # etcd's fixed ports: one cluster on this machine at a time.
    with open(ETCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        c = Cluster(procs, tmp_path, pb, policy=DEFAULT_POLICY + hooks)
        stopped = []
        try:
            c.start()
            leader, _ = c.leader()
            n0 = len(receiver.bodies("/troika"))
            c.kill_redis(2)

            def restarted():
                posts = receiver.bodies("/troika")[n0:]
                return posts if any(p["kind"] == "action_started" for p in posts) else None
            wait_for(restarted, 20 * SLOW, what="the leader's action_started")
            wait_for(lambda: c.redis_ping(2), 10 * SLOW, what="redis on node 2 again")
            time.sleep(2)
            posts = receiver.bodies("/troika")[n0:]
            # Every one from the leader, each event once.
            assert {p["coordinator"] for p in posts} == {f"coord-{leader}"}, posts
            assert len({p["seq"] for p in posts}) == len(posts)
            crit = [p for p in posts if p["kind"] == "check_status" and
                    (p["node"], p["check"], p["severity"]) == ("node-2", "redis", "critical")]
            assert len(crit) == 1, posts
            kinds = [p["kind"] for p in posts]
            assert kinds.count("verdict") == 1 and kinds.count("action_started") == 1
            # The coordinators that did not send counted nothing either.
            for n in (1, 2, 3):
                m = c.coord_metrics(n)
                sent = m.get(("troika_alert_deliveries_total", frozenset(
                    {"hook": "web", "kind": "webhook", "result": "ok"}.items())))
                sending = m.get(("troika_alert_sending", frozenset()))
                if n == leader:
                    assert sent >= len(posts) and sending == 1
                else:
                    assert sending == 0 and sent <= n0, (n, sent)

            # etcd minority: nobody knows the leader, everybody alerts.
            n1 = len(receiver.bodies("/troika"))
            stopped = [n for n in (1, 2, 3) if n != 3]
            for n in stopped:
                c.etcd.kill(n)

            def everyone():
                who = {p["coordinator"] for p in receiver.bodies("/troika")[n1:]
                       if p["kind"] == "quorum_lost"}
                return who == {"coord-1", "coord-2", "coord-3"}
            wait_for(everyone, 30 * SLOW, what="quorum_lost from every coordinator")
            for n in (1, 2, 3):
                assert c.coord_metrics(n)[("troika_alert_sending", frozenset())] == 1
        finally:
            for n in stopped:
                c.etcd.start(n)
            c.stop()
