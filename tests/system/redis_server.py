"""Real Redis servers on the emulated nodes, and fake ones that misbehave,
for the redis plugin's system test.

Recipe and pitfalls: ../shared/design/TESTENV.md section 3. Each node binds
its own address (127.0.1.N:6379) and also connects from it
(bind-source-addr), announces it to its master (replica-announce-ip), runs
in the foreground without protected mode (a replica connecting from
127.0.1.2 would be DENIED otherwise) and never saves on its own (save "").
Diskless sync without delay makes a replica's full sync take milliseconds,
and a master that pings its replicas every second (instead of every 10 s)
lets a replica's silence from its master be judged in seconds.
Servers are started through the harness's Procs and stopped by PID.
"""
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NODES = ("127.0.1.1", "127.0.1.2", "127.0.1.3")
PORT = 6379


class RedisError(Exception):
    """An error reply."""


def _encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"connection closed ({line!r})")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RedisError(f"not RESP: {line!r}")


def command(host, port, *args, password=None, username=None, timeout=3.0):
    """One command on a fresh connection (after AUTH if a password is
    given); returns the decoded reply, raises RedisError for an error."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        f = s.makefile("rb")
        if password is not None:
            s.sendall(_encode("AUTH", *([username] if username else []), password))
            _read(f)
        s.sendall(_encode(*args))
        return _read(f)


def parse_info(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, _, v = line.partition(":")
            out[k] = v
    return out


def listening(host, port):
    """True if something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


CONF = """bind {ip}
port {port}
daemonize {daemonize}
protected-mode no
dir {dir}
pidfile {dir}/redis.pid
logfile "{logfile}"
save ""
appendonly no
bind-source-addr {ip}
replica-announce-ip {ip}
repl-diskless-sync yes
repl-diskless-sync-delay 0
repl-ping-replica-period 1
maxmemory 64mb
"""


def write_conf(path, ip, port, run_dir, extra="", daemonize=False, logfile=""):
    os.makedirs(run_dir, exist_ok=True)
    with open(path, "w") as f:
        f.write(CONF.format(ip=ip, port=port, dir=run_dir, logfile=logfile,
                            daemonize="yes" if daemonize else "no") + extra)


class RedisServer:
    """redis-server in the foreground on ip:port, data under run_dir."""

    def __init__(self, procs, run_dir, ip, port=PORT, extra="", password=None):
        self.procs = procs
        self.dir = str(run_dir)
        self.ip = ip
        self.port = port
        self.extra = extra
        self.password = password
        self.proc = None
        self.conf = os.path.join(self.dir, "redis.conf")

    def start(self, wait=True):
        if listening(self.ip, self.port):
            raise AssertionError(f"something else listens on {self.ip}:{self.port}")
        write_conf(self.conf, self.ip, self.port, self.dir, self.extra)
        self.proc = self.procs.start([REDIS_SERVER, self.conf],
                                     os.path.join(self.dir, "redis.out"))
        if wait:
            self.wait_up()
        return self

    def wait_up(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server {self.ip}:{self.port} exited "
                                     f"with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.cmd("PING") == "PONG":
                    return
            except (OSError, RedisError, ConnectionError):
                pass
            time.sleep(0.02)
        raise AssertionError(f"redis-server {self.ip}:{self.port} not up:\n{self.log()}")

    def log(self):
        try:
            with open(os.path.join(self.dir, "redis.out"), errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """Signal the server (kill -9 by default) and wait until it is gone."""
        os.killpg(self.proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(10)

    def stop(self):
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None

    def cmd(self, *args, timeout=3.0):
        return command(self.ip, self.port, *args, password=self.password, timeout=timeout)

    def info(self, section=None):
        return parse_info(self.cmd("INFO", *([section] if section else [])))

    def fail_saves(self):
        """Make every BGSAVE fail until restore_saves(): the server's dir
        is a directory that vanished under it. Needs the server started
        with "enable-protected-configs yes"."""
        gone = os.path.join(self.dir, "gone")
        os.mkdir(gone)
        self.cmd("CONFIG", "SET", "dir", gone)
        os.rmdir(gone)

    def restore_saves(self):
        self.cmd("CONFIG", "SET", "dir", self.dir)


class Topology:
    """A master on 127.0.1.1:6379 and replicas on 127.0.1.2 and .3."""

    def __init__(self, procs, run_dir):
        self.nodes = [RedisServer(procs, os.path.join(str(run_dir), f"n{i + 1}"), ip)
                      for i, ip in enumerate(NODES)]

    def start(self):
        for n in self.nodes:
            n.start(wait=False)
        for n in self.nodes:
            n.wait_up()
        self.reset()

    def stop(self):
        for n in self.nodes:
            n.stop()

    def reset(self, timeout=10.0):
        """Node 1 master, 2 and 3 its replicas with the link up; no keys."""
        for n in self.nodes:
            if not n.running:
                n.start()
        master = self.nodes[0]
        master.cmd("REPLICAOF", "NO", "ONE")
        master.cmd("FLUSHALL")
        master.cmd("CONFIG", "SET", "repl-ping-replica-period", "1")
        for n in self.nodes[1:]:
            r = n.info("replication")
            if (r.get("role") != "slave" or r.get("master_host") != master.ip
                    or r.get("master_port") != str(master.port)):
                n.cmd("REPLICAOF", master.ip, master.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            links = [n.info("replication").get("master_link_status") for n in self.nodes[1:]]
            online = master.info("replication")
            states = [v for k, v in online.items() if k.startswith("slave") and k[5:].isdigit()]
            if links == ["up", "up"] and len(states) == 2 and all("state=online" in s for s in states):
                return
            time.sleep(0.05)
        raise AssertionError(f"topology not restored: links {links}, master sees {states}")


class FakeServer:
    """A TCP server on ip:port that plays a misbehaving Redis, one thread
    per connection, until close(). Modes:
      silent   accept, read, never answer
      garbage  answer anything with an HTTP error
      close    answer PING, then close half-way through the INFO reply
      huge     answer PING, then an INFO reply that never ends
    """

    def __init__(self, mode, ip=NODES[0], port=0):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.ip, self.port = self.sock.getsockname()
        self.stopping = False
        self.conns = []
        self.sent = 0
        self.accepted = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            f = c.makefile("rb")
            while not self.stopping:
                line = f.readline()
                if not line:
                    return
                if not line.startswith(b"*"):
                    continue
                args = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:-2].decode())
                if self.mode == "silent":
                    continue
                if self.mode == "garbage":
                    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    continue
                if args[0].upper() == "PING":
                    c.sendall(b"+PONG\r\n")
                elif self.mode == "close":
                    c.sendall(b"$5000\r\n# Server\r\nredis_version:7.0.15\r\n")
                    c.close()
                    return
                elif self.mode == "huge":
                    c.sendall(b"$1000000000\r\n")
                    chunk = b"x" * 65536
                    while not self.stopping:
                        c.sendall(chunk)
                        self.sent += len(chunk)
        except OSError:
            return

    def close(self):
        self.stopping = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def kill_pidfile(path):
    """Kill -9 the process whose PID is in path (a daemonized server)."""
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(200):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except (FileNotFoundError, IndexError):
            return
        time.sleep(0.02)


def redis_cli(*args):
    return subprocess.run([REDIS_CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=10)
