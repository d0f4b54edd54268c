"""The haproxy plugin against a real HAProxy (Debian's /usr/sbin/haproxy,
in the foreground with -db): a frontend on 127.0.1.1, a backend `web` of
three servers node-1..node-3 that are tiny HTTP servers on 127.0.1.1-3
(each counts the requests it serves), health checks every 200 ms, and the
runtime API on a TCP stats socket at level admin. The agent watches the
backend, and the load balancer's actions take node-2 out of rotation and
back, as the coordinator will for a lost node."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import NODE1, free_port, wait_for

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
NODES = ["127.0.1.1", "127.0.1.2", "127.0.1.3"]

pytestmark = pytest.mark.skipif(not os.path.exists(HAPROXY),
                                reason="haproxy is not installed")

# A backend server: answers GET with its name and counts what it served in
# a file the test reads (health checks included, as their own count).
BACKEND_PY = r'''
import http.server, sys
name, host, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
counts = {"req": 0}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/health":
            counts["req"] += 1
            with open(path, "w") as f:
                f.write(str(counts["req"]))
        body = name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((host, port), H).serve_forever()
'''


class Lb:
    """HAProxy and its three backends, all started by the test."""

    def __init__(self, procs, workdir):
        self.procs = procs
        self.dir = workdir
        self.front = free_port()
        self.admin = free_port()
        # One port free on all three addresses.
        while True:
            self.port = free_port()
            try:
                for ip in NODES[1:]:
                    with socket.socket() as s:
                        s.bind((ip, self.port))
                break
            except OSError:
                continue
        self.backends = {}
        self.haproxy = None

    def count(self, i):
        p = self.dir / f"count-{i}"
        return int(p.read_text() or 0) if p.exists() else 0

    def start_backend(self, i):
        script = self.dir / "backend.py"
        script.write_text(BACKEND_PY)
        p = self.procs.start([sys.executable, str(script), f"node-{i}",
                              NODES[i - 1], str(self.port),
                              str(self.dir / f"count-{i}")],
                             self.dir / f"backend-{i}.log")
        self.backends[i] = p
        wait_for(lambda: self._listening(NODES[i - 1], self.port), 10,
                 what=f"backend node-{i}")

    @staticmethod
    def _listening(host, port):
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self):
        for i in (1, 2, 3):
            self.start_backend(i)
        cfg = self.dir / "haproxy.cfg"
        servers = "".join(f"    server node-{i} {NODES[i - 1]}:{self.port} check\n"
                          for i in (1, 2, 3))
        cfg.write_text(f"""global
    stats socket ipv4@{NODE1}:{self.admin} level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind {NODE1}:{self.front}
    default_backend web
backend web
    balance roundrobin
    option httpchk GET /health
    default-server inter 200ms fall 2 rise 1
{servers}""")
        self.haproxy = self.procs.start([HAPROXY, "-db", "-f", str(cfg)],
                                        self.dir / "haproxy.log")
        wait_for(lambda: self._listening(NODE1, self.front), 10,
                 what="haproxy frontend")

    def request(self):
        with urllib.request.urlopen(f"http://{NODE1}:{self.front}/x",
                                    timeout=5) as r:
            return r.read().decode()

    def api(self, cmd):
        with socket.create_connection((NODE1, self.admin), timeout=5) as s:
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def stat_status(self, server):
        for line in self.api("show stat web 4 -1").splitlines():
            cells = line.split(",")
            if len(cells) > 17 and cells[1] == server:
                return cells[17]
        return None


def check_yaml(lb, name="lb", backend="web", **opts):
    text = f"""
  - name: {name}
    plugin: haproxy
    interval: 500ms
    timeout: 500ms
    address: "ipv4@{NODE1}:{lb.admin}"
    backend: {backend}
"""
    for k, v in opts.items():
        text += f"    {k}: {v}\n"
    return text


@pytest.fixture
def lb(procs, tmp_path):
    b = Lb(procs, tmp_path)
    b.start()
    wait_for(lambda: all(b.stat_status(f"node-{i}") == "UP" for i in (1, 2, 3)),
             10, what="all three servers UP in haproxy")
    return b


def wait_status(agent, check, status, timeout=10):
    wait_for(lambda: agent.status(check) == status, timeout,
             what=f"{check} status {status}")


def test_haproxy_backend_loss_and_rotation(agent, lb):
    agent.write(check_yaml(lb))
    agent.start()

    # All UP: OK, with haproxy_exporter's metrics per server.
    wait_status(agent, "lb", 0)
    for i in (1, 2, 3):
        assert agent.find("haproxy_server_up", check="lb", backend="web",
                          server=f"node-{i}") == 1
        assert agent.find("troika_haproxy_server_disabled", check="lb",
                          server=f"node-{i}") == 0
    assert agent.find("haproxy_backend_up", check="lb", backend="web") == 1
    assert agent.find("haproxy_backend_active_servers", check="lb") == 3
    # The page with the plugin's families passes promtool's lint.
    if shutil.which("promtool"):
        text = agent.scrape_text()
        assert "# TYPE haproxy_server_check_failures_total counter" in text
        r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()

    # One backend server killed: WARNING with node-3 DOWN.
    procs = lb.procs
    procs.stop(lb.backends[3], sig=signal.SIGKILL)
    wait_status(agent, "lb", 1)
    assert agent.find("haproxy_server_up", check="lb", server="node-3") == 0
    assert agent.find("haproxy_server_up", check="lb", server="node-1") == 1
    rc, reply = agent.action("lb", "state")
    assert rc == 0, reply
    assert reply["field.node_3"] == "DOWN"
    assert reply["field.node_1"] == "UP"
    assert reply["field.states"] == "node-1=UP node-2=UP node-3=DOWN"
    lb.start_backend(3)
    wait_status(agent, "lb", 0)

    # disable node-2: MAINT, confirmed by the plugin and by HAProxy itself.
    rc, reply = agent.action("lb", "disable", "node-2")
    assert rc == 0, reply
    assert reply["field.server"] == "node-2"
    assert reply["field.state"] == "MAINT"
    assert reply["field.previous"] == "UP"
    assert lb.stat_status("node-2") == "MAINT"
    # A server in MAINT by an operator is no problem: the check stays OK.
    wait_for(lambda: agent.find("troika_haproxy_server_disabled", check="lb",
                                server="node-2") == 1, 5, what="disabled metric")
    assert agent.status("lb") == 0

    # No request through the frontend reaches node-2 any more.
    before = {i: lb.count(i) for i in (1, 2, 3)}
    served = [lb.request() for _ in range(12)]
    assert "node-2" not in served
    assert served.count("node-1") > 0 and served.count("node-3") > 0
    assert lb.count(2) == before[2]
    assert lb.count(1) == before[1] + served.count("node-1")
    assert lb.count(3) == before[3] + served.count("node-3")

    # Again: idempotent, and says so.
    rc, reply = agent.action("lb", "disable", "node-2")
    assert rc == 0, reply
    assert "already" in reply.get("message", ""), reply
    assert reply["field.state"] == "MAINT"

    # drain, then enable: back in rotation, round robin over all three.
    rc, reply = agent.action("lb", "drain", "node-2")
    assert rc == 0, reply
    assert reply["field.state"] == "DRAIN" and reply["field.previous"] == "MAINT"
    assert lb.stat_status("node-2").startswith("DRAIN")
    rc, reply = agent.action("lb", "enable", "node-2")
    assert rc == 0, reply
    assert reply["field.previous"] == "DRAIN"
    assert reply["field.state"] == "UP"
    assert lb.stat_status("node-2").startswith("UP")
    before = lb.count(2)
    served = [lb.request() for _ in range(9)]
    assert served.count("node-2") >= 2, served
    assert lb.count(2) == before + served.count("node-2")

    # A server that is not in the backend is refused, nothing sent to it.
    rc, reply = agent.action("lb", "disable", "node-9")
    assert rc != 0
    assert "no server node-9" in reply.get("message", ""), reply
    assert "node-1, node-2, node-3" in reply.get("message", ""), reply
    rc, reply = agent.action("lb", "disable", "node-1;shutdown")
    assert rc != 0
    assert "not a HAProxy server name" in reply.get("message", ""), reply
    states = [lb.stat_status(f"node-{i}") for i in (1, 2, 3)]
    assert not any(st.startswith(("MAINT", "DRAIN")) for st in states), states

    # HAProxy killed: CRITICAL on certain evidence (connection refused).
    runs_before = agent.runs("lb", "critical")
    procs.stop(lb.haproxy, sig=signal.SIGKILL)
    wait_status(agent, "lb", 2)
    assert agent.runs("lb", "critical") > runs_before
    assert "connection refused" in agent.log_text()
    rc, reply = agent.action("lb", "enable", "node-2")
    assert rc != 0
    assert "connection refused" in reply.get("message", ""), reply


def test_haproxy_watched_servers_and_missing(agent, lb):
    # Watching node-1 and node-2 only: node-3's loss is not this check's;
    # a server the backend lacks is CRITICAL.
    agent.write(check_yaml(lb, "pair", servers="[node-1, node-2]") +
                check_yaml(lb, "typo", servers="[node-1, node-4]") +
                check_yaml(lb, "nobackend", backend="nosuch"))
    agent.start()
    wait_status(agent, "pair", 0)
    wait_status(agent, "typo", 2)
    wait_status(agent, "nobackend", 2)
    assert agent.find("haproxy_server_up", check="pair", server="node-3") is None
    lb.procs.stop(lb.backends[3], sig=signal.SIGKILL)
    wait_for(lambda: lb.stat_status("node-3") == "DOWN", 5, what="node-3 DOWN")
    time.sleep(0.5)
    assert agent.status("pair") == 0
    # All three gone: no server UP, CRITICAL.
    lb.procs.stop(lb.backends[1], sig=signal.SIGKILL)
    lb.procs.stop(lb.backends[2], sig=signal.SIGKILL)
    wait_status(agent, "pair", 2)
    assert agent.find("haproxy_backend_up", check="pair", backend="web") == 0
