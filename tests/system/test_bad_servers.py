"""Every plugin that talks to a server, against servers that misbehave:
one that accepts and never answers, one that sends garbage, one that sends
the start of a plausible reply and closes, and one that never stops
sending. Each check must end with a failed status (never OK), within its
own timeout (no host-side timeout),
while a steady check on the same agent keeps its 200 ms schedule, and the
agent's memory stays bounded.

The plugins' own unit and system tests cover their protocols in depth;
this test holds them all to the same rule at once."""
import socket
import subprocess
import threading
import time

import pytest

from conftest import NODE1, SANITIZED, wait_for

# A plausible first chunk per protocol, then the connection closes.
PREFIX = {
    "http": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"status\":\"gr",
    "redis": b"+PONG\r\n$4000\r\n# Server\r\nredis_version:7.0.15\r\n",
    "mysql": b"\x4a\x00\x00\x00\x0a5.5.5-10.11.6-MariaDB",
    "amqp": b"\x01\x00\x00\x00\x00\x01\xf0\x00\x0a\x00\x0a\x00\x09",
    "fcgi": b"\x01\x06\x00\x01\x01\x00\x00\x00Status: 200",
}


class BadServer:
    """A listener on NODE1 that misbehaves in one way for every client."""

    def __init__(self, mode, prefix=b""):
        self.mode, self.prefix = mode, prefix
        self.sock = socket.socket()
        self.sock.bind((NODE1, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.mode != "silent":
                # Take the request first, as a server would: the reply then
                # arrives where the client expects it, and a close is a
                # clean end of stream rather than a reset.
                c.settimeout(0.3)
                try:
                    c.recv(65536)
                except OSError:
                    pass
            if self.mode == "silent":
                while not self.stop:
                    if not c.recv(65536):
                        return
            elif self.mode == "garbage":
                c.sendall(b"\xff\x00garbage\r\n\x1b[0m" * 64)
                time.sleep(0.2)
            elif self.mode == "close":
                c.sendall(self.prefix)
                time.sleep(0.05)
            elif self.mode == "huge":
                chunk = self.prefix + b"A" * 65536
                deadline = time.monotonic() + 5
                c.settimeout(0.5)
                while not self.stop and time.monotonic() < deadline:
                    c.sendall(chunk)
                    chunk = b"A" * 65536
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def check(name, plugin, port, proto):
    """A check of plugin against NODE1:port; returns its YAML."""
    head = (f"  - name: {name}\n    plugin: {plugin}\n    interval: 1s\n"
            f"    timeout: 800ms\n")
    url = f"http://{NODE1}:{port}"
    opts = {
        "http": f"    url: \"{url}/\"\n    body_contains: \"ok-marker\"\n",
        "elasticsearch": f"    url: \"{url}\"\n",
        "solr": f"    base_url: \"{url}/solr\"\n    cores: [products]\n",
        "nginx": f"    url: \"{url}/stub_status\"\n",
        "phpfpm": f"    fastcgi: \"{NODE1}:{port}\"\n",
        "redis": f"    host: \"{NODE1}\"\n    port: {port}\n",
        "mysql": f"    host: \"{NODE1}\"\n    port: {port}\n    user: troika\n",
        "rabbitmq": f"    host: \"{NODE1}\"\n    port: {port}\n",
    }[plugin]
    return head + opts


PLUGINS = {  # plugin -> the protocol of its plausible prefix
    "http": "http", "elasticsearch": "http", "solr": "http", "nginx": "http",
    "phpfpm": "fcgi", "redis": "redis", "mysql": "mysql", "rabbitmq": "amqp",
}
MODES = ("silent", "garbage", "close", "huge")


def test_misbehaving_servers_fail_every_check_in_time(agent, nginx):
    servers = {}
    checks = ""
    try:
        for plugin, proto in PLUGINS.items():
            for mode in MODES:
                s = BadServer(mode, PREFIX[proto])
                servers[(plugin, mode)] = s
                checks += check(f"{plugin}-{mode}", plugin, s.port, proto)
        checks += (f"  - name: steady\n    plugin: tcp\n    interval: 200ms\n"
                   f"    timeout: 150ms\n    host: \"{nginx.host}\"\n    port: {nginx.port}\n")
        # exec and process too, so every plugin is in use (loaded) at once.
        checks += ("  - name: exec-ok\n    plugin: exec\n    interval: 1s\n"
                   "    timeout: 800ms\n    command: [\"/bin/sh\", \"-c\", \"echo 'OK | x=1'\"]\n"
                   "  - name: nginx-proc\n    plugin: process\n    interval: 1s\n"
                   "    timeout: 800ms\n    process_name: nginx\n")
        agent.write(checks)
        agent.start()
        names = [f"{p}-{m}" for p in PLUGINS for m in MODES]
        # Three runs of every check: the first connection, and repeats.
        wait_for(lambda: all(sum(agent.runs(n, r) for r in
                                 ("ok", "warning", "critical", "unknown", "timeout")) >= 3
                             for n in names), 30, what="three runs of every check")
        start = agent.runs("steady", "ok")
        t0 = time.monotonic()
        wait_for(lambda: agent.runs("steady", "ok") >= start + 10, 5,
                 what="the steady check to keep its schedule")
        assert time.monotonic() - t0 < 3.5
        m = agent.metrics()
        failures = []
        for n in names:
            status = agent.status(n)
            ok = agent.runs(n, "ok")
            timeouts = agent.runs(n, "timeout")
            if status not in (2, 3) or ok != 0 or timeouts != 0:
                failures.append((n, status, ok, timeouts))
        assert not failures, failures
        rss = agent.find("process_resident_memory_bytes")
        # Bounded reads keep the agent small; under ASan its shadow memory
        # and the quarantine of freed blocks (256 MiB) come on top.
        limit = (400 if SANITIZED else 64) * 1024 * 1024
        assert rss < limit, rss
        # Every plugin loaded at once, each with its failure samples: the
        # page as a whole still passes promtool (no family clashes).
        loaded = {dict(ls)["plugin"] for (n, ls), v in m.items() if n == "troika_plugin_loaded"}
        assert {"tcp", "http", "exec", "process", "redis", "mysql", "rabbitmq",
                "elasticsearch", "solr", "phpfpm", "nginx"} <= loaded, loaded
        r = subprocess.run(["promtool", "check", "metrics"], input=agent.scrape_text().encode(),
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    finally:
        for s in servers.values():
            s.close()
