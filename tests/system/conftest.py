"""Harness for troika's system tests: real binaries, real servers, loopback.

Every process a test starts goes through `Procs.start`, which remembers its
PID and process group; the fixture stops them all (TERM, then KILL) when the
test ends, whether it passed or not. Tests poll with `wait_for` instead of
sleeping.
"""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

BUILD_DIR = os.environ.get("TROIKA_BUILD_DIR", os.path.join(
    os.path.dirname(__file__), "..", "..", "build"))
AGENT = os.path.join(BUILD_DIR, "core", "agent", "troika-agent")
PLUGIN_DIR = os.path.join(BUILD_DIR, "plugins")
TEST_PLUGIN_DIR = os.path.join(BUILD_DIR, "test-plugins")
SANITIZED = os.environ.get("TROIKA_SANITIZE") == "1"
NAGIOS = "/usr/lib/nagios/plugins"

# The emulated nodes' addresses (TESTENV.md); only 127.0.0.0/8 is used.
NODE1 = "127.0.1.1"


def wait_for(cond, timeout=10.0, interval=0.05, what="condition"):
    """Poll cond() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# sockaddr_un.sun_path holds 108 bytes with the terminating NUL.
SUN_PATH_MAX = 107


def check_socket_path(path):
    """Fail clearly on a unix socket path the kernel cannot take; a server
    given one only fails later, in its own log (mariadbd: no socket, so
    the harness waits for a bootstrap that never comes)."""
    n = len(os.fsencode(str(path)))
    if n > SUN_PATH_MAX:
        raise AssertionError(f"unix socket path {path} is {n} bytes; sun_path "
                             f"takes {SUN_PATH_MAX}: use short_socket_dir()")
    return path


def short_socket_dir(tag):
    """A fresh directory under /tmp for unix sockets; the caller removes it.
    Paths below the build tree are long (the checkout's own path, then
    build-asan/pytest-<file>/<test name>/...) and passed sun_path's limit
    in CI."""
    return tempfile.mkdtemp(prefix=f"troika-{tag}-")


# Ports free_port() picks from: clear of the fixed ports the tests and
# benchmarks use (RabbitMQ 25672, Sentinel 26391...) and below the
# kernel's ephemeral range
# (32768-60999 here), where no outgoing connection takes a port between
# the check and the server's own bind (seen: a coordinator's listen port
# taken by a client's connection, "Address already in use").
FREE_PORTS = (28000, 32000)
# Handed out already in this process: two calls in a row (a listen port
# and a metrics port) must not get the same one before either is bound.
_ports_given = set()


def free_port(host=NODE1):
    """A port nothing is bound to on host now, outside the ephemeral range,
    and not given out before by this process."""
    for _ in range(1000):
        port = random.randrange(*FREE_PORTS)
        if port in _ports_given:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise AssertionError(f"no free port in {FREE_PORTS} on {host}")


def _alive(pid):
    """True unless the process is gone or a zombie (PID 1 reaps late here)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, argv, log_path, env=None, **kw):
        log = open(log_path, "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True, **kw)
        log.close()
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        # Children left in the group (exec plugin programs) go too.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return p.returncode

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.stop_all()


@pytest.fixture(scope="session")
def session_procs():
    ps = Procs()
    yield ps
    ps.stop_all()


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen {host}:{port};
        location = / {{ default_type text/plain; return 200 "hello troika\\n"; }}
        location = /missing {{ return 404; }}
        location = /stub_status {{ stub_status; }}
    }}
}}
"""


class Nginx:
    def __init__(self, host, port, proc):
        self.host, self.port, self.proc = host, port, proc

    @property
    def url(self):
        return f"http://{self.host}:{self.port}/"


@pytest.fixture(scope="session")
def nginx(session_procs, tmp_path_factory):
    """A real nginx on 127.0.1.1, started once per session."""
    run = tmp_path_factory.mktemp("nginx")
    port = free_port()
    conf = run / "nginx.conf"
    conf.write_text(NGINX_CONF.format(run=run, host=NODE1, port=port))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    p = session_procs.start([binary, "-e", str(run / "stderr.log"), "-c", str(conf),
                             "-p", str(run)], run / "nginx.out")
    def up():
        try:
            return urllib.request.urlopen(f"http://{NODE1}:{port}/", timeout=1).status == 200
        except OSError:
            return False
    wait_for(up, 10, what="nginx to answer")
    return Nginx(NODE1, port, p)


# ---- the agent ----

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} of an exposition page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"unparsable exposition line: {line!r}"
        labels = {}
        if m.group(3):
            labels = {k: bytes(v, "utf-8").decode("unicode_escape")
                      for k, v in LABEL.findall(m.group(3))}
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


class Agent:
    def __init__(self, procs, workdir, listen):
        self.procs = procs
        self.dir = workdir
        self.listen = listen
        self.sockdir = None  # made on first use, removed by the fixture
        self.proc = None
        self.log = workdir / "agent.log"

    @property
    def config(self):
        return self.dir / "agent.yaml"

    def write(self, checks_yaml="", plugin_dirs=None, extra=""):
        dirs = plugin_dirs or [PLUGIN_DIR, TEST_PLUGIN_DIR]
        (self.dir / "conf.d").mkdir(exist_ok=True)
        text = "node: test-node\nplugin_dirs:\n" + "".join(f"  - {d}\n" for d in dirs)
        text += "include: conf.d\nworkers: 2\n"
        text += f'metrics:\n  listen: "{self.listen}"\nlog:\n  level: debug\n'
        text += extra
        if checks_yaml:
            text += "checks:\n" + checks_yaml
        self.config.write_text(text)

    def add_dropin(self, name, checks_yaml):
        (self.dir / "conf.d" / name).write_text("checks:\n" + checks_yaml)

    @property
    def admin_socket(self):
        # Below the test's directory the path can pass sun_path's limit
        # (a deep checkout, a long test name): a short directory of its own.
        if self.sockdir is None:
            self.sockdir = short_socket_dir("agent")
        return str(check_socket_path(os.path.join(self.sockdir, "admin.sock")))

    def start(self, wait=True, args=(), env=None):
        self.proc = self.procs.start([AGENT, "--config", str(self.config),
                                      "--admin-socket", self.admin_socket, *args],
                                     self.log, env=env)
        if wait:
            wait_for(self.healthy, 10, what="agent /healthz")
        return self.proc

    def healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"agent exited with {self.proc.returncode}:\n{self.log_text()}")
        try:
            return urllib.request.urlopen(f"http://{self.listen}/healthz", timeout=1).status == 200
        except OSError:
            return False

    def scrape_text(self):
        with urllib.request.urlopen(f"http://{self.listen}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return r.read().decode()

    def metrics(self):
        return parse_metrics(self.scrape_text())

    def value(self, name, **labels):
        return self.metrics().get((name, frozenset(labels.items())))

    def status(self, check):
        return self.find("troika_check_status", check=check)

    def find(self, name, **labels):
        """Value of the one sample of name whose labels include labels."""
        for (n, ls), v in self.metrics().items():
            if n == name and set(labels.items()) <= set(ls):
                return v
        return None

    def runs(self, check, result):
        return self.find("troika_check_runs_total", check=check, result=result) or 0

    def action(self, check, action, *args, timeout=120):
        """Run `troika-agent action`; returns (exit status, {key: value})."""
        r = subprocess.run([AGENT, "--admin-socket", self.admin_socket, "action",
                            check, action, *args], capture_output=True, timeout=timeout)
        reply = {}
        for line in r.stdout.decode().splitlines():
            key, _, value = line.partition(": ")
            reply[key] = value
        return r.returncode, reply

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15.0):
        return self.procs.stop(self.proc, timeout=timeout)


SANITIZER_REPORT = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                    "WARNING: ThreadSanitizer")


@pytest.fixture
def agent(procs, tmp_path):
    a = Agent(procs, tmp_path, f"{NODE1}:{free_port()}")
    yield a
    procs.stop_all()
    if a.sockdir is not None:
        shutil.rmtree(a.sockdir, ignore_errors=True)
    # A sanitizer report fails the test even where the agent carried on.
    log = a.log_text()
    for marker in SANITIZER_REPORT:
        assert marker not in log, log[log.index(marker) - 200:][:4000]
