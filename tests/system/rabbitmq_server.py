"""One real RabbitMQ node on 127.0.1.1 for the rabbitmq plugin's system test.

Recipe and pitfalls: ../shared/design/TESTENV.md section 4. The scripts in
/usr/lib/rabbitmq/bin run as root with our own HOME and cookie (the
/usr/sbin wrappers would `su rabbitmq` into the system's directories), and
an epmd of our own on a private port keeps Erlang from starting the shared
one on 4369, which would outlive the test. Everything lives under the
directory given; the broker and epmd are stopped by PID.
"""
import base64
import json
import os
import shlex
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
EPMD_PORT = 14369
AMQP_PORT = 5672
MGMT_PORT = 15672
DIST_PORT = 25672


def _group_alive(pgid):
    """True while a live (not zombie) process is in process group pgid."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class RabbitMQ:
    """A single node rabbit1@<ip>, AMQP on ip:5672, management on ip:15672."""

    def __init__(self, run_dir, ip="127.0.1.1", user="troika", password="s3cret"):
        self.dir = str(run_dir)
        self.ip = ip
        self.user = user
        self.password = password
        self.node = f"rabbit1@{ip}"
        self.epmd = None
        self.server = None
        self.adopted = None  # PID (and group) of a broker start.sh started
        self.base = os.path.join(self.dir, "n1")
        self.home = os.path.join(self.dir, "home")

    @property
    def mgmt_url(self):
        return f"http://{self.ip}:{MGMT_PORT}"

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        b = self.base
        env.update({
            "HOME": self.home,
            "ERL_EPMD_PORT": str(EPMD_PORT),
            "ERL_CRASH_DUMP": os.path.join(b, "erl_crash.dump"),
            "RABBITMQ_USE_LONGNAME": "true",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.ip,
            "RABBITMQ_NODE_PORT": str(AMQP_PORT),
            "RABBITMQ_DIST_PORT": str(DIST_PORT),
            "RABBITMQ_MNESIA_BASE": os.path.join(b, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(b, "log"),
            "RABBITMQ_CONFIG_FILE": os.path.join(b, "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(b, "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(b, "enabled_plugins"),
            "RABBITMQ_PID_FILE": os.path.join(b, "rabbit.pid"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(b, "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                "-kernel inet_dist_use_interface {%s}" % self.ip.replace(".", ","),
        })
        return env

    def _write_config(self):
        os.makedirs(self.home, exist_ok=True)
        for d in ("mnesia", "log"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        cookie = os.path.join(self.home, ".erlang.cookie")
        if not os.path.exists(cookie):
            with open(cookie, "w") as f:
                f.write("TROIKARABBITTESTCOOKIE")
            os.chmod(cookie, 0o400)
        with open(os.path.join(self.base, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.1 = {self.ip}:{AMQP_PORT}\n"
                    f"management.tcp.ip = {self.ip}\n"
                    f"management.tcp.port = {MGMT_PORT}\n"
                    f"default_user = {self.user}\n"
                    f"default_pass = {self.password}\n"
                    "log.console = false\n"
                    "log.file.level = info\n")
        with open(os.path.join(self.base, "advanced.config"), "w") as f:
            f.write("[].\n")
        with open(os.path.join(self.base, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_management].\n")
        with open(os.path.join(self.base, "rabbitmq-env.conf"), "w") as f:
            f.write("")

    def start(self, timeout=90):
        """Start epmd (once) and the broker; wait for AMQP and the API."""
        self._write_config()
        log = open(os.path.join(self.dir, "epmd.log"), "ab")
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                ["epmd", "-port", str(EPMD_PORT), "-address", self.ip],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        log.close()
        log = open(os.path.join(self.dir, "rabbit.out"), "ab")
        self.server = subprocess.Popen(
            [os.path.join(RABBIT_BIN, "rabbitmq-server")], env=self.env(),
            cwd=self.base, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

        def up():
            if self.server.poll() is not None:
                raise AssertionError(f"rabbitmq-server exited with "
                                     f"{self.server.returncode}: see {self.dir}")
            try:
                return self.api("GET", "/api/overview").get("node") == self.node
            except (OSError, ValueError):
                return False
        _wait(up, timeout, "the RabbitMQ management API")

    def _stop_group(self, pgid, timeout, popen=None):
        """TERM process group pgid, wait for all of it, then KILL."""
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        # The start script, beam and erl_child_setup share the group; beam
        # may still be shutting down after the script has gone.
        while _group_alive(pgid) and time.monotonic() < deadline:
            if popen is not None:
                popen.poll()
            time.sleep(0.1)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if popen is not None:
            popen.wait(5)

    def stop(self, timeout=30):
        """Stop the broker: SIGTERM to its process group, a clean shutdown."""
        if self.server is not None:
            self._stop_group(self.server.pid, timeout, self.server)
            self.server = None
        if self.adopted is not None:
            self._stop_group(self.adopted, timeout)
            self.adopted = None

    def close(self):
        self.stop()
        if self.epmd is not None:
            self._stop_group(self.epmd.pid, 5, self.epmd)
            self.epmd = None

    def service_scripts(self):
        """start.sh and stop.sh for the agent's exec service manager.

        start.sh starts the broker in a session of its own (so the agent's
        spawn, which owns the script's process group, does not take it
        along) and writes its PID to service.pid; adopt() then takes that
        broker over for clean-up. stop.sh is `rabbitmqctl stop <pidfile>`,
        which returns once the broker's process has exited.
        """
        env = self.env()
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items())
                          if k in ("HOME", "PATH") or k.startswith(("ERL_", "RABBITMQ_")))
        start = os.path.join(self.dir, "start.sh")
        stop = os.path.join(self.dir, "stop.sh")
        with open(start, "w") as f:
            f.write("#!/bin/sh\nset -e\n" + exports + f"cd {shlex.quote(self.base)}\n"
                    f"setsid {RABBIT_BIN}/rabbitmq-server >> {shlex.quote(self.dir)}/rabbit.out"
                    f" 2>&1 < /dev/null &\necho $! > {shlex.quote(self.dir)}/service.pid\n")
        with open(stop, "w") as f:
            f.write("#!/bin/sh\n" + exports + f"cd {shlex.quote(self.base)}\n"
                    f"exec {RABBIT_BIN}/rabbitmqctl stop "
                    f"{shlex.quote(env['RABBITMQ_PID_FILE'])}\n")
        return start, stop

    def adopt(self):
        """Take over the broker start.sh started (its PID is its group's)."""
        with open(os.path.join(self.dir, "service.pid")) as f:
            self.adopted = int(f.read().strip())

    def forget_stopped(self):
        """The broker we started was stopped by someone else: reap it."""
        if self.server is not None:
            self._stop_group(self.server.pid, 30, self.server)
            self.server = None
        if self.adopted is not None and not _group_alive(self.adopted):
            self.adopted = None

    def ctl(self, *args, timeout=60):
        """rabbitmqctl against this node (about 1 s a call)."""
        r = subprocess.run([os.path.join(RABBIT_BIN, "rabbitmqctl"), *args],
                           env=self.env(), cwd=self.base, capture_output=True,
                           timeout=timeout)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        return r.stdout.decode()

    # ---- the management HTTP API ----

    def api(self, method, path, body=None, timeout=5):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.mgmt_url + path, data=data, method=method)
        cred = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", "Basic " + cred)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
        return json.loads(text) if text else {}

    def declare_queue(self, name, vhost="/"):
        self.api("PUT", f"/api/queues/{urllib.parse.quote(vhost, safe='')}/"
                 f"{urllib.parse.quote(name, safe='')}", {"durable": True,
                                                          "auto_delete": False})

    def delete_queue(self, name, vhost="/"):
        self.api("DELETE", f"/api/queues/{urllib.parse.quote(vhost, safe='')}/"
                 f"{urllib.parse.quote(name, safe='')}")

    def publish(self, queue, n, vhost="/"):
        path = f"/api/exchanges/{urllib.parse.quote(vhost, safe='')}/amq.default/publish"
        for i in range(n):
            r = self.api("POST", path, {"properties": {}, "routing_key": queue,
                                         "payload": f"message {i}",
                                         "payload_encoding": "string"})
            assert r.get("routed") is True, r

    def purge(self, queue, vhost="/"):
        self.api("DELETE", f"/api/queues/{urllib.parse.quote(vhost, safe='')}/"
                 f"{urllib.parse.quote(queue, safe='')}/contents")

    def queue(self, name, vhost="/"):
        return self.api("GET", f"/api/queues/{urllib.parse.quote(vhost, safe='')}/"
                        f"{urllib.parse.quote(name, safe='')}")


# ---- a consumer: the management API cannot make one ----

def _shortstr(b):
    return bytes([len(b)]) + b


def _longstr(b):
    return struct.pack(">I", len(b)) + b


class AmqpConsumer:
    """The least AMQP 0-9-1 client that holds a consumer on one queue.

    It logs in (heartbeats off, so an idle test connection is never
    dropped), opens channel 1 and sends basic.consume; the consumer lasts
    until close(). Deliveries are left unread (and unacknowledged).
    """

    def __init__(self, host, port, user, password, queue, vhost="/"):
        self.sock = socket.create_connection((host, port), timeout=5)
        try:
            self.sock.sendall(b"AMQP\x00\x00\x09\x01")
            self._expect(10, 10)                           # connection.start
            resp = b"\0" + user.encode() + b"\0" + password.encode()
            self._send(0, 10, 11, struct.pack(">I", 0) + _shortstr(b"PLAIN")
                       + _longstr(resp) + _shortstr(b"en_US"))
            tune = self._expect(10, 30)                    # connection.tune
            channel_max, frame_max = struct.unpack(">HI", tune[:6])
            self._send(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0))
            self._send(0, 10, 40, _shortstr(vhost.encode()) + _shortstr(b"") + b"\0")
            self._expect(10, 41)                           # connection.open-ok
            self._send(1, 20, 10, _shortstr(b""))
            self._expect(20, 11)                           # channel.open-ok
            self._send(1, 60, 20, struct.pack(">H", 0) + _shortstr(queue.encode())
                       + _shortstr(b"troika-test") + b"\0" + struct.pack(">I", 0))
            self._expect(60, 21)                           # basic.consume-ok
        except BaseException:
            self.sock.close()
            raise

    def _send(self, channel, class_id, method_id, args):
        payload = struct.pack(">HH", class_id, method_id) + args
        self.sock.sendall(struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce")

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data

    def _expect(self, class_id, method_id):
        """Arguments of the next method frame, which must be class.method."""
        while True:
            kind, _, size = struct.unpack(">BHI", self._read(7))
            payload = self._read(size)
            self._read(1)
            if kind == 8:   # heartbeat
                continue
            got = struct.unpack(">HH", payload[:4])
            if got in ((10, 50), (20, 40)):
                code = struct.unpack(">H", payload[4:6])[0]
                text = payload[7:7 + payload[6]].decode(errors="replace")
                raise ConnectionError(f"closed by the broker: {code} {text}")
            assert got == (class_id, method_id), (got, class_id, method_id)
            return payload[4:]

    def close(self):
        self.sock.close()
