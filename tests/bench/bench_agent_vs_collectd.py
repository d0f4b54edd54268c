#!/usr/bin/python3
"""Benchmark: troika-agent beside collectd, against the same real servers.

    tests/bench/bench_agent_vs_collectd.py [--build build] [--seconds 60]
        [--warmup 5] [--collectd-write none|csv] [--lean] [--split] [--smaps]
        [--perf] [--keep]

Not a test: it asserts nothing and builds nothing (run `cmake --preset
default && cmake --build --preset default` first). It starts, on 127.0.2.1
(127.0.1.x belongs to the system tests), everything it measures against:

  redis-server :6379       mariadbd :3306 (standalone, wsrep_on=OFF)
  php-fpm :9000            nginx :8080 (/, /hello.php, /stub_status)
  RabbitMQ :5672, management :15672 (own epmd :14370, dist :25680)
  tests/system/replay_server.py (Elasticsearch and Solr replies), free port

and then, all at the same time, these monitors at a 1 s interval:

  troika-full   one check of every plugin: tcp, http, exec, process, redis,
                mysql, rabbitmq, elasticsearch, solr, phpfpm, nginx (11)
  troika-pair   only what collectd also does: mysql, redis, http (3)
  troika-lean   (--lean) the same 3 checks, with only their 3 plugins in
                the plugin directory instead of all of them
  collectd      its mysql, redis and curl plugins (3 reads per interval)
                and logfile at level notice; no write plugin, or csv files
                (--collectd-write csv)
  (--split)     troika-mysql, troika-redis, troika-http, collectd-mysql,
                collectd-redis, collectd-curl: each of those checks alone

After a warm-up it reads each monitor's CPU over --seconds: utime+stime
from /proc/PID/stat (10 ms ticks), perf stat's task-clock (the same time,
finer) and, separately, the CPU of its reaped children (the exec check's
programs); wake-ups (voluntary context switches of all threads); and at
the end the peak RSS (VmHWM), the RSS split into anonymous and
file-backed (smaps_rollup) and the thread count. Runs: troika's own
troika_check_runs_total (every result). collectd has no such counter, so
its reads are counted as plugins x seconds / interval, and cross-checked
against what the servers saw: nginx logs each request with its User-Agent
(every monitor sends its own), and MariaDB's user statistics count each
monitor's connections, rows, bytes and server CPU (every monitor logs in
as its own user); with --collectd-write csv, also from collectd's files.

--smaps prints each monitor's RSS by mapped object, and what troika maps
that collectd does not. --perf runs `perf record -g` on the monitors
during the measurement and prints where their time went (perf costs CPU
of its own: take the table of a run without it).

Every process is started in its own process group and stopped by PID at
the end, also on failure, Ctrl-C or SIGTERM; the temporary directory goes
too (--keep leaves it, for a look at the logs).
"""
import argparse
import base64
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HOST = "127.0.2.1"
REDIS_PORT = 6379
MYSQL_PORT = 3306
NGINX_PORT = 8080
FPM_PORT = 9000
AMQP_PORT = 5672
MGMT_PORT = 15672
DIST_PORT = 25680
EPMD_PORT = 14370     # the rabbitmq system test uses 14369
RABBIT_BIN = "/usr/lib/rabbitmq/bin"
RABBIT_USER, RABBIT_PASSWORD = "bench", "bench-secret"
MYSQL_PASSWORD = "bench-secret"
COLLECTD = "/usr/sbin/collectd"
COLLECTD_PLUGINS = "/usr/lib/collectd"
CHECK_DUMMY = "/usr/lib/nagios/plugins/check_dummy"
HERE = os.path.dirname(os.path.abspath(__file__))
REPLAY = os.path.join(HERE, "..", "system", "replay_server.py")

PAIR_PLUGINS = ("mysql", "redis", "http")          # troika's side of the pair
COLLECTD_READS = ("mysql", "redis", "curl")        # collectd's side
SPLIT = tuple(f"troika-{p}" for p in PAIR_PLUGINS) + tuple(
    f"collectd-{p}" for p in COLLECTD_READS)       # --split: one check each


# Who is who in nginx's access log and in MariaDB's user statistics: every
# monitor sends its own User-Agent and logs in as its own user.
def user_agent(monitor):
    return f"bench-{monitor}"


def mysql_user(monitor):
    return monitor.replace("-", "_")


# ---- processes ----

def group_alive(pgid):
    """True while a process that is not a zombie is in group pgid (PID 1
    reaps late on this machine)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


class Procs:
    """Processes started here, each in its own process group."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, log, **kw):
        with open(log, "ab") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        p.bench_name = name
        self.procs.append(p)
        return p

    def adopt(self, name, p):
        """Stop p with the rest (perf, which the caller stops itself when
        all goes well)."""
        p.bench_name = name
        self.procs.append(p)
        return p

    def stop(self, p, timeout=30):
        """TERM the group, wait for all of it (RabbitMQ's beam outlives its
        start script), then KILL whatever is left."""
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (p.poll() is None or group_alive(p.pid)):
            time.sleep(0.05)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            print(f"warning: {p.bench_name} (pid {p.pid}) did not exit", file=sys.stderr)

    def stop_all(self):
        while self.procs:
            self.stop(self.procs.pop())


def wait_for(cond, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def listening(port, host=HOST):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_free(port, host=HOST):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port(host=HOST):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


def exited(p, log):
    if p.poll() is not None:
        raise SystemExit(f"{p.bench_name} exited with {p.returncode}:\n{tail(log)}")


# ---- the servers ----

def start_redis(procs, run):
    d = os.path.join(run, "redis")
    os.makedirs(d)
    conf = os.path.join(d, "redis.conf")
    with open(conf, "w") as f:
        f.write(f"bind {HOST}\nport {REDIS_PORT}\ndaemonize no\nprotected-mode no\n"
                f"dir {d}\npidfile {d}/redis.pid\nlogfile \"\"\nsave \"\"\n"
                "appendonly no\nmaxmemory 64mb\n")
    return procs.start("redis-server", ["/usr/bin/redis-server", conf],
                       os.path.join(d, "redis.out"))


def redis_ping():
    try:
        with socket.create_connection((HOST, REDIS_PORT), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


MY_CNF = """[mariadbd]
user=mysql
datadir={d}/data
socket={d}/mysqld.sock
pid-file={d}/mysqld.pid
log-error={d}/error.log
bind-address={host}
port={port}
innodb_buffer_pool_size=64M
innodb_log_file_size=32M
innodb_flush_log_at_trx_commit=2
performance_schema=OFF
skip-name-resolve
wsrep_on=OFF
userstat=ON
"""


class MariaDB:
    """A standalone mariadbd running as mysql (TESTENV.md section 2 without
    Galera). The run directory gets search permission for others, so that
    mysql reaches its directory below it; nothing becomes readable."""

    def __init__(self, procs, run):
        self.procs = procs
        self.dir = os.path.join(run, "mysql")
        self.cnf = os.path.join(self.dir, "my.cnf")
        self.sock = os.path.join(self.dir, "mysqld.sock")
        self.proc = None

    def start(self):
        os.makedirs(os.path.join(self.dir, "data"))
        with open(self.cnf, "w") as f:
            f.write(MY_CNF.format(d=self.dir, host=HOST, port=MYSQL_PORT))
        mysql = pwd.getpwnam("mysql")
        for root, _, files in os.walk(self.dir):
            os.chown(root, mysql.pw_uid, mysql.pw_gid)
            for name in files:
                os.chown(os.path.join(root, name), mysql.pw_uid, mysql.pw_gid)
        # In the process list, so that an interrupt stops its group too.
        log = os.path.join(self.dir, "install-db.out")
        p = self.procs.start("mariadb-install-db", [
            "/usr/bin/mariadb-install-db", f"--defaults-file={self.cnf}",
            "--auth-root-authentication-method=socket", "--skip-test-db"], log)
        if p.wait(120) != 0:
            raise SystemExit(f"mariadb-install-db failed:\n{tail(log)}")
        self.proc = self.procs.start("mariadbd", ["/usr/sbin/mariadbd",
                                                  f"--defaults-file={self.cnf}"],
                                     os.path.join(self.dir, "mariadbd.out"))

    def sql(self, query, check=True):
        r = subprocess.run(["/usr/bin/mariadb", "--no-defaults", "-S", self.sock, "-uroot",
                            "-N", "-B", "-e", query], capture_output=True, timeout=30)
        if r.returncode != 0:
            if check:
                raise SystemExit(f"mariadb: {query!r}: {r.stderr.decode()}")
            return None
        return [line.split("\t") for line in r.stdout.decode().splitlines()]

    def ready(self):
        exited(self.proc, os.path.join(self.dir, "error.log"))
        return os.path.exists(self.sock) and self.sql("SELECT 1", check=False) == [["1"]]

    def setup(self):
        for user in map(mysql_user, ("troika-full", "troika-pair", "troika-lean",
                                     "collectd") + SPLIT):
            self.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{MYSQL_PASSWORD}';"
                     f"GRANT PROCESS, SLAVE MONITOR ON *.* TO '{user}'@'%'")

    def user_stats(self):
        """{user: (connections, rows sent, bytes sent, server CPU s)}."""
        rows = self.sql("SELECT USER, TOTAL_CONNECTIONS, ROWS_SENT, BYTES_SENT, CPU_TIME "
                        "FROM information_schema.USER_STATISTICS", check=False) or []
        return {r[0]: (int(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in rows}


FPM_CONF = """[global]
pid = {d}/php-fpm.pid
error_log = {d}/php-fpm.log
daemonize = no

[www]
listen = {host}:{port}
pm = static
pm.max_children = 2
pm.status_path = /status
"""

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format bench '$http_user_agent $connection $connection_requests $request_uri $status';
    access_log {d}/access.log bench;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {host}:{port};
        root {d}/www;
        location = / {{ default_type text/plain; return 200 "hello troika\\n"; }}
        location = /stub_status {{ stub_status; }}
        location ~ \\.php$ {{
            fastcgi_pass {host}:{fpm_port};
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param SCRIPT_NAME $fastcgi_script_name;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
        }}
    }}
}}
"""


def start_web(procs, run):
    d = os.path.join(run, "web")
    os.makedirs(os.path.join(d, "www"))
    with open(os.path.join(d, "www", "hello.php"), "w") as f:
        f.write('<?php echo "hello from php\\n";\n')
    with open(os.path.join(d, "php-fpm.conf"), "w") as f:
        f.write(FPM_CONF.format(d=d, host=HOST, port=FPM_PORT))
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(d=d, host=HOST, port=NGINX_PORT, fpm_port=FPM_PORT))
    fpm = sorted(glob.glob("/usr/sbin/php-fpm*"))
    if not fpm:
        raise SystemExit("no /usr/sbin/php-fpm* (Debian package php-fpm)")
    procs.start("php-fpm", [fpm[-1], "-F", "-R", "-y", os.path.join(d, "php-fpm.conf"),
                            "-p", d], os.path.join(d, "php-fpm.out"))
    procs.start("nginx", ["/usr/sbin/nginx", "-e", os.path.join(d, "stderr.log"),
                          "-c", os.path.join(d, "nginx.conf"), "-p", d],
                os.path.join(d, "nginx.out"))
    return d


def http_get(url, timeout=2, auth=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


class RabbitMQ:
    """One node, rabbit-bench@127.0.2.1 (TESTENV.md section 4), with its own
    epmd on EPMD_PORT, run from /usr/lib/rabbitmq/bin as root with its own
    HOME and cookie."""

    def __init__(self, procs, run):
        self.procs = procs
        self.dir = os.path.join(run, "rabbit")
        self.node = f"rabbit-bench@{HOST}"
        self.server = None

    def env(self):
        d = self.dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update({
            "HOME": os.path.join(d, "home"),
            "ERL_EPMD_PORT": str(EPMD_PORT),
            "ERL_CRASH_DUMP": os.path.join(d, "erl_crash.dump"),
            "RABBITMQ_USE_LONGNAME": "true",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(AMQP_PORT),
            "RABBITMQ_DIST_PORT": str(DIST_PORT),
            "RABBITMQ_MNESIA_BASE": os.path.join(d, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(d, "log"),
            "RABBITMQ_CONFIG_FILE": os.path.join(d, "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(d, "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(d, "enabled_plugins"),
            "RABBITMQ_PID_FILE": os.path.join(d, "rabbit.pid"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(d, "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                "-kernel inet_dist_use_interface {%s}" % HOST.replace(".", ","),
        })
        return env

    def start(self):
        d = self.dir
        for sub in ("home", "mnesia", "log"):
            os.makedirs(os.path.join(d, sub))
        cookie = os.path.join(d, "home", ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write("TROIKABENCHCOOKIE")
        os.chmod(cookie, 0o400)
        files = {
            "rabbitmq.conf": f"listeners.tcp.1 = {HOST}:{AMQP_PORT}\n"
                             f"management.tcp.ip = {HOST}\n"
                             f"management.tcp.port = {MGMT_PORT}\n"
                             f"default_user = {RABBIT_USER}\n"
                             f"default_pass = {RABBIT_PASSWORD}\n"
                             "log.console = false\n",
            "advanced.config": "[].\n",
            "enabled_plugins": "[rabbitmq_management].\n",
            "rabbitmq-env.conf": "",
        }
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        self.procs.start("epmd", ["epmd", "-port", str(EPMD_PORT), "-address", HOST],
                         os.path.join(d, "epmd.log"))
        self.server = self.procs.start("rabbitmq-server",
                                       [os.path.join(RABBIT_BIN, "rabbitmq-server")],
                                       os.path.join(d, "rabbit.out"), env=self.env(), cwd=d)

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{HOST}:{MGMT_PORT}{path}", data=data,
                                     method=method)
        cred = base64.b64encode(f"{RABBIT_USER}:{RABBIT_PASSWORD}".encode()).decode()
        req.add_header("Authorization", "Basic " + cred)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read().decode()
        return json.loads(text) if text else {}

    def ready(self):
        exited(self.server, os.path.join(self.dir, "rabbit.out"))
        try:
            return self.api("GET", "/api/overview").get("node") == self.node
        except (OSError, ValueError):
            return False


def start_replay(procs, run, port):
    d = os.path.join(run, "replay")
    os.makedirs(d)
    return procs.start("replay_server", ["/usr/bin/python3", REPLAY, HOST, str(port)],
                       os.path.join(d, "replay.out"))


# ---- the monitors ----

def check(name, plugin, **opts):
    text = f"  - name: {name}\n    plugin: {plugin}\n    interval: 1s\n    timeout: 900ms\n"
    for key, value in opts.items():
        text += f"    {key}: {json.dumps(value)}\n"
    return text


def mysql_check(monitor):
    # galera: false, as the server is standalone (wsrep_on=OFF); with the
    # default (galera: true) the plugin says CRITICAL "wsrep_on is OFF".
    return check("mysql", "mysql", host=HOST, port=MYSQL_PORT, user=mysql_user(monitor),
                 password=MYSQL_PASSWORD, galera=False)


def http_check(monitor):
    return check("http", "http", url=f"http://{HOST}:{NGINX_PORT}/hello.php",
                 body_contains="hello from php", headers={"User-Agent": user_agent(monitor)})


def full_checks(run, replay_port):
    m = "troika-full"
    return (check("tcp", "tcp", host=HOST, port=REDIS_PORT, send="PING\\r\\n",
                  expect="+PONG")
            + http_check(m)
            + check("exec", "exec", command=[CHECK_DUMMY, "0", "bench"])
            + check("process", "process", pidfile=os.path.join(run, "redis", "redis.pid"))
            + check("redis", "redis", host=HOST, port=REDIS_PORT)
            + mysql_check(m)
            + check("rabbitmq", "rabbitmq", host=HOST, port=AMQP_PORT, user=RABBIT_USER,
                    password=RABBIT_PASSWORD, queues=["bench"],
                    management_url=f"http://{HOST}:{MGMT_PORT}")
            + check("elasticsearch", "elasticsearch",
                    url=f"http://{HOST}:{replay_port}/es-green")
            + check("solr", "solr", base_url=f"http://{HOST}:{replay_port}/solr-ok/solr",
                    cores=["products"])
            + check("phpfpm", "phpfpm", fastcgi=f"{HOST}:{FPM_PORT}")
            + check("nginx", "nginx", url=f"http://{HOST}:{NGINX_PORT}/stub_status"))


def redis_check(monitor):
    return check("redis", "redis", host=HOST, port=REDIS_PORT)


PAIR_CHECKS = {"mysql": mysql_check, "redis": redis_check, "http": http_check}


def pair_checks(m, plugins=PAIR_PLUGINS):
    return "".join(PAIR_CHECKS[p](m) for p in plugins)


class Agent:
    def __init__(self, procs, run, name, checks, args, plugins=None):
        self.name = name
        self.dir = os.path.join(run, name)
        os.makedirs(self.dir)
        plugins = plugins or args.plugins
        self.listen = f"{HOST}:{free_port()}"
        self.admin = os.path.join(self.dir, "admin.sock")
        self.conf = os.path.join(self.dir, "agent.yaml")
        self.log = os.path.join(self.dir, "agent.log")
        self.binary = args.agent
        with open(self.conf, "w") as f:
            f.write(f"node: {name}\nplugin_dirs:\n  - {plugins}\n"
                    f'metrics:\n  listen: "{self.listen}"\nlog:\n  level: info\n'
                    "checks:\n" + checks)
        self.nchecks = checks.count("  - name: ")
        self.proc = procs.start(name, [args.agent, "--config", self.conf,
                                       "--admin-socket", self.admin], self.log)

    def metrics(self):
        with urllib.request.urlopen(f"http://{self.listen}/metrics", timeout=5) as r:
            return r.read().decode()

    def runs(self):
        """{check: {result: count}} from troika_check_runs_total."""
        out = {}
        for m in re.finditer(r'^troika_check_runs_total\{([^}]*)\} (\S+)$', self.metrics(),
                             re.M):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            out.setdefault(labels["check"], {})[labels["result"]] = int(float(m.group(2)))
        return out

    def status(self):
        """{check: (plugin, status, message)} through `troika-agent status`."""
        r = subprocess.run([self.binary, "--admin-socket", self.admin, "status"],
                           capture_output=True, timeout=30)
        out = {}
        for line in r.stdout.decode(errors="replace").splitlines():
            if line.startswith("check."):
                key, _, value = line.partition(": ")
                plugin, status, message = (value.split(" ", 2) + ["", ""])[:3]
                out[key[len("check."):]] = (plugin, status, message)
        return out

    def ready(self):
        exited(self.proc, self.log)
        try:
            st = self.status()
        except (OSError, subprocess.SubprocessError):
            return False
        return len(st) == self.nchecks and all(s[1] != "pending" for s in st.values())


COLLECTD_CONF = {"main": """Hostname "bench"
FQDNLookup false
BaseDir "{d}"
PIDFile "{d}/collectd.pid"
PluginDir "{plugins}"
TypesDB "/usr/share/collectd/types.db"
Interval 1
AutoLoadPlugin false

LoadPlugin logfile
<Plugin logfile>
  LogLevel notice
  File "{d}/collectd.log"
  Timestamp true
  PrintSeverity true
</Plugin>
""", "mysql": """
LoadPlugin mysql
<Plugin mysql>
  <Database "bench">
    Host "{host}"
    Port "{mysql_port}"
    User "{mysql_user}"
    Password "{mysql_password}"
    ConnectTimeout 1
  </Database>
</Plugin>
""", "redis": """
LoadPlugin redis
<Plugin redis>
  <Node "bench">
    Host "{host}"
    Port "{redis_port}"
    Timeout 900
  </Node>
</Plugin>
""", "curl": """
LoadPlugin curl
<Plugin curl>
  <Page "hello">
    URL "{url}"
    Header "User-Agent: {agent}"
    MeasureResponseTime true
    MeasureResponseCode true
    Timeout 900
  </Page>
</Plugin>
"""}

# --collectd-write csv: what collectd does when it stores what it reads.
COLLECTD_CSV = """
LoadPlugin csv
<Plugin csv>
  DataDir "{d}/csv"
  StoreRates false
</Plugin>
"""
INTERVAL = 1.0       # seconds, for every monitor


class Collectd:
    """collectd in the foreground; its reads (plugins) are mysql, redis,
    curl or a subset, one read each per interval."""

    def __init__(self, procs, run, name, write, web, db, reads=COLLECTD_READS):
        self.name = name
        self.reads = reads
        self.nchecks = len(reads)
        self.web, self.db = web, db
        self.dir = os.path.join(run, name)
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "collectd.conf")
        self.log = os.path.join(self.dir, "collectd.log")
        with open(self.conf, "w") as f:
            for part in ("main",) + reads:
                f.write(COLLECTD_CONF[part].format(
                    d=self.dir, plugins=COLLECTD_PLUGINS, host=HOST, mysql_port=MYSQL_PORT,
                    mysql_user=mysql_user(name), mysql_password=MYSQL_PASSWORD,
                    redis_port=REDIS_PORT, url=f"http://{HOST}:{NGINX_PORT}/hello.php",
                    agent=user_agent(name)))
            if write == "csv":
                f.write(COLLECTD_CSV.format(d=self.dir))
        r = subprocess.run([COLLECTD, "-t", "-C", self.conf], capture_output=True)
        if r.returncode != 0:
            raise SystemExit("collectd -t refused the configuration:\n"
                             + r.stdout.decode() + r.stderr.decode())
        self.proc = procs.start(name, [COLLECTD, "-f", "-C", self.conf],
                                os.path.join(self.dir, "collectd.out"))
        self.started = time.monotonic()

    def csv_reads(self):
        """{plugin: reads} from the csv files: each read adds one line to
        every file of its plugin instance (the most lines any file has,
        without its header)."""
        out = {}
        for plugin in ("mysql-bench", "redis-bench", "curl-hello"):
            most = 0
            # mysql's host part is the server's address, the others' "bench"
            for path in glob.glob(os.path.join(self.dir, "csv", "*", plugin, "*")):
                with open(path, "rb") as f:
                    most = max(most, sum(1 for _ in f) - 1)
            out[plugin.split("-")[0]] = most
        return out

    def ready(self):
        """Its log says nothing at level notice when all goes well, so ask
        the servers: nginx has seen its curl read and MariaDB its login.
        Redis cannot tell one client from another: a redis-only collectd
        gets two intervals."""
        exited(self.proc, os.path.join(self.dir, "collectd.out"))
        if "curl" in self.reads and user_agent(self.name) not in tail(
                os.path.join(self.web, "access.log"), 1 << 16):
            return False
        if "mysql" in self.reads and self.db.user_stats().get(
                mysql_user(self.name), (0,))[0] == 0:
            return False
        return time.monotonic() - self.started > 2 * INTERVAL

    def problems(self, since=0):
        """Log lines at warning level or worse after offset since."""
        try:
            with open(self.log, errors="replace") as f:
                f.seek(since)
                return [l.rstrip() for l in f if "[warning]" in l or "[error]" in l]
        except OSError:
            return []


# ---- measuring ----

def proc_cpu(pid):
    """(utime, stime, cutime, cstime) in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return tuple(int(fields[i]) / tck for i in (11, 12, 13, 14))


def switches(pid):
    """Voluntary context switches of all threads: how often they slept."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            n += int(proc_status(f"{pid}/task/{tid}")["voluntary_ctxt_switches"])
        except (OSError, KeyError):
            pass
    return n


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()[0] if v.split() else ""
    return out


def smaps_rollup(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return {l.split(":")[0]: int(l.split()[1]) for l in f if l.rstrip().endswith("kB")}


def access_log_size(web_dir):
    return os.path.getsize(os.path.join(web_dir, "access.log"))


def nginx_requests(web_dir, start, end):
    """{user agent: (requests, connections)} from the access log, between
    the byte offsets start and end."""
    reqs, conns = {}, {}
    try:
        with open(os.path.join(web_dir, "access.log"), "rb") as f:
            f.seek(start)
            for line in f.read(end - start).decode(errors="replace").splitlines():
                parts = line.split()
                if len(parts) < 5:
                    continue
                reqs[parts[0]] = reqs.get(parts[0], 0) + 1
                conns.setdefault(parts[0], set()).add(parts[1])
    except OSError:
        pass
    return {ua: (n, len(conns[ua])) for ua, n in reqs.items()}


def smaps_by_object(pid):
    """{mapped object: (Rss, Anonymous) kB} from /proc/PID/smaps."""
    out, name = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = os.path.basename(head[5]) if len(head) > 5 else "[anonymous]"
                out.setdefault(name, [0, 0])
            elif head[0] == "Rss:":
                out[name][0] += int(head[1])
            elif head[0] == "Anonymous:":
                out[name][1] += int(head[1])
    return out


def smaps_report(smaps):
    """Where each monitor's RSS is, by mapped object; and what troika maps
    that collectd does not, and the other way round."""
    cd = smaps["collectd"]
    for n, objs in smaps.items():
        top = sorted(objs.items(), key=lambda kv: -kv[1][0])
        print(f"\nsmaps {n}: RSS by object, kB (anonymous part in brackets), "
              f"{len(objs)} objects")
        print("  " + ", ".join(f"{k} {v[0]} ({v[1]})" for k, v in top if v[0] >= 40))
        if n.startswith("collectd"):
            continue
        only = sorted(((v[0], k) for k, v in objs.items() if k not in cd), reverse=True)
        other = sorted(((v[0], k) for k, v in cd.items() if k not in objs), reverse=True)
        print(f"  only in {n}: {sum(v for v, _ in only)} kB: "
              + ", ".join(f"{k} {v}" for v, k in only))
        print(f"  only in collectd: {sum(v for v, _ in other)} kB: "
              + ", ".join(f"{k} {v}" for v, k in other))


def mib(kib):
    return kib / 1024


def task_clock_start(procs, pids, run):
    """perf stat's task-clock (ns) for each process over the measurement:
    the same CPU time as utime+stime, without their 10 ms ticks."""
    if not shutil.which("perf"):
        return {}
    out = {}
    for name, pid in pids.items():
        path = os.path.join(run, f"task-clock-{name}.csv")
        out[name] = (path, procs.adopt("perf stat", subprocess.Popen(
            ["perf", "stat", "-x,", "-e", "task-clock", "-p", str(pid), "-o", path],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)))
    return out


def task_clock_stop(recs):
    """{name: CPU seconds} of the perf stat runs started above."""
    out = {}
    for name, (path, p) in recs.items():
        p.send_signal(signal.SIGINT)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
        for line in tail(path).splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2].startswith("task-clock"):
                try:
                    out[name] = float(fields[0]) / 1000    # msec
                except ValueError:
                    pass
    return out


def perf_start(procs, pids, run):
    out = {}
    for name, pid in pids.items():
        data = os.path.join(run, f"perf-{name}.data")
        out[name] = (data, procs.adopt("perf record", subprocess.Popen(
            ["perf", "record", "-q", "-g", "-F", "10000", "-p", str(pid), "-o", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)))
    return out


def perf_report(recs):
    for name, (data, p) in recs.items():
        p.send_signal(signal.SIGINT)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
    for name, (data, p) in recs.items():
        for sort in ("dso", "dso,sym"):
            r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                "--sort", sort, "--percent-limit", "2"],
                               capture_output=True, timeout=120)
            lines = [l for l in r.stdout.decode(errors="replace").splitlines()
                     if l.strip() and not l.startswith("#") and "%" in l
                     and not l.lstrip().startswith(("|", "-", "---"))]
            print(f"\nperf {name}, by {sort} (self, >= 2%):")
            for l in lines[:25]:
                print("  " + l.strip())


def measure(args, run):
    procs = args.procs
    for port in (REDIS_PORT, MYSQL_PORT, NGINX_PORT, FPM_PORT, AMQP_PORT, MGMT_PORT,
                 DIST_PORT):
        if not port_free(port):
            raise SystemExit(f"{HOST}:{port} is taken: is another benchmark running?")
    if not port_free(EPMD_PORT, "127.0.0.1"):
        raise SystemExit(f"epmd port {EPMD_PORT} is taken")

    # mariadbd runs as mysql and must reach its directory below run.
    os.chmod(run, 0o711)
    t_start = time.monotonic()
    rabbit = RabbitMQ(procs, run)
    rabbit.start()            # the slow one (13-19 s): first
    redis = start_redis(procs, run)
    db = MariaDB(procs, run)
    db.start()
    web = start_web(procs, run)
    replay_port = free_port()
    replay = start_replay(procs, run, replay_port)

    wait_for(lambda: exited(redis, os.path.join(run, "redis", "redis.out")) or redis_ping(),
             20, "redis")
    wait_for(db.ready, 60, "mariadbd")
    db.setup()
    wait_for(lambda: http_get(f"http://{HOST}:{NGINX_PORT}/hello.php")[0] == 200, 20,
             "nginx and php-fpm")
    wait_for(lambda: exited(replay, os.path.join(run, "replay", "replay.out"))
             or listening(replay_port), 20, "the replay server")
    wait_for(rabbit.ready, 120, "RabbitMQ's management API")
    rabbit.api("PUT", "/api/queues/%2F/bench", {"durable": True, "auto_delete": False})
    print(f"servers up after {time.monotonic() - t_start:.1f} s", flush=True)

    monitors = {
        "troika-full": Agent(procs, run, "troika-full", full_checks(run, replay_port), args),
        "troika-pair": Agent(procs, run, "troika-pair", pair_checks("troika-pair"), args),
    }
    if args.lean:
        # The pair's checks with a plugin directory that holds only their
        # three plugins (copies: the agent refuses a directory that is not
        # root's or is writable by others, which /tmp is).
        lean = os.path.join(run, "lean-plugins")
        os.makedirs(lean, mode=0o755)
        for name in PAIR_PLUGINS:
            shutil.copy(os.path.join(args.plugins, f"troika-{name}.so"), lean)
        monitors["troika-lean"] = Agent(procs, run, "troika-lean",
                                        pair_checks("troika-lean"), args, lean)
    monitors["collectd"] = Collectd(procs, run, "collectd", args.collectd_write, web, db)
    if args.split:
        # Each of the pair's checks alone, on both sides: where the CPU goes.
        for p in PAIR_PLUGINS:
            monitors[f"troika-{p}"] = Agent(procs, run, f"troika-{p}",
                                            pair_checks(f"troika-{p}", (p,)), args)
        for p in COLLECTD_READS:
            monitors[f"collectd-{p}"] = Collectd(procs, run, f"collectd-{p}",
                                                 args.collectd_write, web, db, (p,))
    for m in monitors.values():
        wait_for(m.ready, 30, f"{m.name} to run every check once")
    time.sleep(args.warmup)

    cd = monitors["collectd"]
    agents = {n: m for n, m in monitors.items() if isinstance(m, Agent)}
    pids = {n: m.proc.pid for n, m in monitors.items()}
    log_offset = os.path.getsize(cd.log) if os.path.exists(cd.log) else 0
    recs = perf_start(procs, pids, run) if args.perf else None
    clocks = task_clock_start(procs, pids, run)
    # CPU first, all monitors together; then the slower reads.
    t0 = time.monotonic()
    cpu0 = {n: proc_cpu(pid) for n, pid in pids.items()}
    sw0 = {n: switches(pid) for n, pid in pids.items()}
    runs0 = {n: a.runs() for n, a in agents.items()}
    csv0 = cd.csv_reads()
    web0 = access_log_size(web)
    db0 = db.user_stats()

    time.sleep(args.seconds)

    t1 = time.monotonic()
    cpu1 = {n: proc_cpu(pid) for n, pid in pids.items()}
    sw1 = {n: switches(pid) for n, pid in pids.items()}
    runs1 = {n: a.runs() for n, a in agents.items()}
    csv1 = cd.csv_reads()
    web1 = access_log_size(web)
    db1 = db.user_stats()
    task_clock = task_clock_stop(clocks)
    mem = {n: (proc_status(pid), smaps_rollup(pid)) for n, pid in pids.items()}
    smaps = {n: smaps_by_object(pid) for n, pid in pids.items()} if args.smaps else None
    statuses = {n: a.status() for n, a in agents.items()}
    problems = cd.problems(log_offset)
    if recs:
        perf_report(recs)
    elapsed = t1 - t0

    # ---- report ----
    runs = {}
    for n in agents:
        per = {}
        for chk, results in runs1[n].items():
            before = runs0[n].get(chk, {})
            per[chk] = {r: v - before.get(r, 0) for r, v in results.items()}
        runs[n] = per
    counted = {n: sum(sum(r.values()) for r in runs[n].values()) for n in agents}
    for n, m in monitors.items():
        if n not in agents:
            counted[n] = m.nchecks * elapsed / INTERVAL

    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"\nmeasured {elapsed:.1f} s after a warm-up of {args.warmup:.0f} s; interval "
          f"{INTERVAL:.0f} s; collectd write plugin: {args.collectd_write}; "
          f"load average {load}")
    print("\nmonitor        checks  runs  CPU s (user+sys)  task-clock  per run  "
          "children  wake-ups/s  peak RSS  RSS = anon + file  PSS  threads")
    for n, m in monitors.items():
        u = cpu1[n][0] - cpu0[n][0]
        s = cpu1[n][1] - cpu0[n][1]
        ch = (cpu1[n][2] - cpu0[n][2]) + (cpu1[n][3] - cpu0[n][3])
        st, roll = mem[n]
        anon, rss = roll.get("Anonymous", 0), roll.get("Rss", 0)
        # Per run from the finer clock when there is one.
        cpu = task_clock.get(n, u + s)
        tc = f"{task_clock[n]:7.3f} s" if n in task_clock else "      -  "
        print(f"{n:14} {m.nchecks:4} {counted[n]:5.0f}  {u + s:5.2f} ({u:4.2f}+{s:4.2f})"
              f"  {tc}  {cpu / counted[n] * 1000:5.2f} ms  {ch:5.2f} s"
              f"  {(sw1[n] - sw0[n]) / elapsed:9.1f}  {mib(int(st['VmHWM'])):5.1f} MiB"
              f"  {mib(rss):4.1f} = {mib(anon):4.1f} + {mib(rss - anon):4.1f}"
              f"  {mib(roll.get('Pss', 0)):4.1f}  {int(st['Threads']):5}")
    print("\nruns: troika_check_runs_total (all results) for troika; for collectd "
          "its reads (plugins) x seconds / interval.\n"
          "per run: task-clock (perf stat; utime+stime where perf is missing) / runs.\n"
          "children: CPU of reaped child processes (the exec check's program), not "
          "included above.\nwake-ups: voluntary context switches of all threads. "
          "RSS, PSS in MiB at the end; peak RSS is VmHWM.")

    print("\nwhat the servers saw during the measurement:")
    web_req = nginx_requests(web, web0, web1)
    for n in monitors:
        req, conns = web_req.get(user_agent(n), (0, 0))
        u = mysql_user(n)
        d = [b - a for a, b in zip(db0.get(u, (0, 0, 0, 0)), db1.get(u, (0, 0, 0, 0)))]
        seen = []
        if req:
            seen.append(f"nginx: {req} requests on {conns} connections")
        if u in db1:
            seen.append(f"mariadb ({u}): {d[0]} connections, {d[1]} rows and {d[2]} "
                        f"bytes sent, {d[3]:.3f} s server CPU")
        print(f"  {n:14} " + ("; ".join(seen) or "(neither nginx nor mariadb)"))
    if args.collectd_write == "csv":
        reads = {k: csv1[k] - csv0.get(k, 0) for k in csv1}
        print("  collectd's csv files: " + ", ".join(f"{k} {v} reads" for k, v in
                                                    reads.items()))

    for n in agents:
        print(f"\n{n}: status at the end [runs during the measurement by result]")
        for chk, (plugin, status, message) in statuses[n].items():
            r = runs[n].get(chk, {})
            res = ", ".join(f"{k} {v}" for k, v in sorted(r.items()) if v)
            print(f"  {chk:14} {status:8} [{res}] {message[:80]}")
    print(f"\ncollectd warnings and errors in its log during the measurement: "
          f"{len(problems)}")
    for line in problems[:10]:
        print("  " + line)
    if smaps:
        smaps_report(smaps)
    print("\nEach monitor's figures are its own process's; the servers' CPU is not "
          "counted. PSS shares pages with the\nother monitors running at the same time "
          "(the troika agents map the same files): compare RSS.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=5,
                    help="seconds after every check ran once, before measuring")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--collectd-write", choices=("none", "csv"), default="none",
                    help="collectd's write plugin: none, or csv files in the run directory")
    ap.add_argument("--lean", action="store_true",
                    help="a fourth monitor: the pair's checks with only their 3 plugins "
                         "in its plugin directory")
    ap.add_argument("--split", action="store_true",
                    help="more monitors: each of the pair's checks alone, in troika and "
                         "in collectd")
    ap.add_argument("--smaps", action="store_true",
                    help="print each monitor's RSS by mapped object")
    ap.add_argument("--perf", action="store_true",
                    help="perf record the monitors during the measurement")
    args = ap.parse_args()
    args.agent = os.path.abspath(os.path.join(args.build, "core", "agent", "troika-agent"))
    args.plugins = os.path.abspath(os.path.join(args.build, "plugins"))
    for path in (args.agent, COLLECTD, CHECK_DUMMY, REPLAY):
        if not os.path.exists(path):
            raise SystemExit(f"missing {path}")
    if args.perf and not shutil.which("perf"):
        raise SystemExit("--perf needs perf (Debian package linux-perf)")

    # SIGTERM ends the run like Ctrl-C does: through the finally below. A
    # shell starting the script in the background ignores SIGINT for it;
    # take it back, so `kill -INT` cleans up too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args.procs = Procs()
    run = tempfile.mkdtemp(prefix="troika-bench-collectd-")
    try:
        measure(args, run)
    finally:
        args.procs.stop_all()
        if args.keep:
            print(f"kept {run}")
        else:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
