"""A real three-node MariaDB Galera cluster on 127.0.1.1-3 for system tests.

Recipe and pitfalls: TESTENV.md section 2. In short:
- each node is `mariadbd --defaults-file=<its my.cnf>` (first option, so
  nothing from /etc/mysql is read), bound to its own loopback address;
- mariadbd runs as user mysql (`user=mysql`), as rsync SST needs it; so the
  node directories belong to mysql, and the directories above them must let
  mysql through (search permission for others, nothing more);
- tuned EVS timeouts, so a killed node is evicted in ~3 s instead of ~6 s;
- n1 is installed and bootstrapped, n2 and n3 join with empty datadirs.

Processes started here go through conftest.Procs (own process group, TERM
then KILL at the end). A server that something else started (the agent's
bootstrap command, which daemonizes) is adopted from its pid file and
killed by PID at the end; PID 1 reaps late here, so "alive" means "not a
zombie".
"""
import os
import pathlib
import pwd
import shutil
import signal
import stat
import subprocess
import time

from conftest import _alive, check_socket_path, short_socket_dir, wait_for

MARIADBD = "/usr/sbin/mariadbd"
CLIENT = "/usr/bin/mariadb"
INSTALL_DB = "/usr/bin/mariadb-install-db"
GALERA = "/usr/lib/galera/libgalera_smm.so"
PORT = 3306
USER, PASSWORD = "troika", "troika-secret"

# Evict a dead member in ~3 s (TESTENV.md: 6 s with the defaults);
# keepalive_period must stay below install_timeout / 6.
EVS = ("evs.keepalive_period=PT0.5S;evs.suspect_timeout=PT2S;"
       "evs.inactive_timeout=PT4S;evs.install_timeout=PT4S")

CNF = """[mariadbd]
user=mysql
datadir={dir}/data
socket={sock}
pid-file={dir}/mysqld.pid
log-error={dir}/error.log
bind-address={ip}
port={port}
innodb_buffer_pool_size=64M
innodb_log_file_size=32M
innodb_flush_log_at_trx_commit=2
performance_schema=OFF
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
wsrep_on=ON
wsrep_provider={galera}
wsrep_cluster_name=troika-test
wsrep_cluster_address=gcomm://127.0.1.1:4567,127.0.1.2:4567,127.0.1.3:4567
wsrep_node_name=n{n}
wsrep_node_address={ip}:4567
wsrep_node_incoming_address={ip}:{port}
wsrep_sst_receive_address={ip}:4444
wsrep_sst_method=rsync
wsrep_provider_options="gmcast.listen_addr=tcp://{ip}:4567;ist.recv_addr={ip}:4568;gcache.size=64M;{evs}"
[sst]
sst-log-archive-dir={dir}/sst_log_archive
"""


def check_reachable_root(path):
    """pytest resets its shared root, /tmp/pytest-of-<user>, to 0700 at the
    start of every session, anyone's: a mariadbd running as mysql below it
    loses its datadir half-way (seen: SST failing with EACCES). Refuse that
    root up front; ctest passes --basetemp inside the build tree."""
    for parent in os.path.abspath(path).split(os.sep):
        if parent.startswith("pytest-of-"):
            raise AssertionError(
                f"{path} is below pytest's shared {parent} directory, which "
                "every pytest session resets to mode 0700, cutting off mariadbd "
                "(user mysql). Run with --basetemp=<a directory outside it>, "
                "e.g. --basetemp=$TROIKA_BUILD_DIR/pytest-test_mysql (as ctest does).")


def let_mysql_through(path, top):
    """Give others search (x) permission on path and its ancestors up to
    top (pytest's basetemp, made 0700), so mariadbd, running as mysql,
    reaches its node directory. Nothing becomes readable; nothing above
    top is changed, only checked."""
    path, top = os.path.abspath(path), os.path.abspath(top)
    while True:
        st = os.stat(path)
        if not st.st_mode & stat.S_IXOTH:
            if not (path + os.sep).startswith(top + os.sep):
                raise AssertionError(f"{path} is closed to others; mariadbd "
                                     "(user mysql) cannot reach its datadir below it")
            os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


class Node:
    def __init__(self, cluster, n):
        self.cluster = cluster
        self.n = n
        self.ip = f"127.0.1.{n}"
        self.port = PORT
        self.dir = cluster.dir / f"n{n}"
        self.datadir = self.dir / "data"
        self.cnf = self.dir / "my.cnf"
        self.sock = check_socket_path(cluster.sockdir / f"n{n}.sock")
        self.pidfile = self.dir / "mysqld.pid"
        self.errlog = self.dir / "error.log"
        self.proc = None      # started by the harness
        self.adopted = None   # PID of a server someone else started

    def write_config(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.datadir.mkdir(exist_ok=True)
        self.cnf.write_text(CNF.format(dir=self.dir, sock=self.sock, ip=self.ip,
                                       port=self.port, n=self.n, galera=GALERA, evs=EVS))
        mysql = pwd.getpwnam("mysql")
        for root, dirs, files in os.walk(self.dir):
            os.chown(root, mysql.pw_uid, mysql.pw_gid)
            for f in files:
                os.chown(os.path.join(root, f), mysql.pw_uid, mysql.pw_gid)

    def argv(self, *extra):
        return [MARIADBD, f"--defaults-file={self.cnf}", *extra]

    def start(self, *extra):
        """Start mariadbd in the foreground of its own process group."""
        assert not self.running(), f"n{self.n} is already running"
        self.proc = self.cluster.procs.start(self.argv(*extra), self.dir / "mariadbd.out")
        return self.proc

    def pid(self):
        if self.proc is not None and self.proc.poll() is None and _alive(self.proc.pid):
            return self.proc.pid
        if self.adopted is not None and _alive(self.adopted):
            return self.adopted
        return None

    def running(self):
        return self.pid() is not None

    def adopt(self, timeout=20):
        """Track a server that something else started, by its pid file."""
        def pid():
            try:
                p = int(self.pidfile.read_text().strip())
            except (OSError, ValueError):
                return None
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                return None
            return p if str(self.cnf).encode() in cmd and _alive(p) else None
        self.adopted = wait_for(pid, timeout, what=f"n{self.n}'s pid file")
        return self.adopted

    def find(self):
        """PIDs of live mariadbd processes started with this node's my.cnf,
        found by command line: one that is still joining a cluster has
        not written its pid file yet, and would outlive the test."""
        want = f"--defaults-file={self.cnf}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if want in argv and argv[0].endswith(b"mariadbd") and _alive(int(entry)):
                found.append(int(entry))
        return found

    def kill(self, sig=signal.SIGKILL, timeout=30):
        """Signal the server and wait until it is gone (not a zombie)."""
        p = self.pid()
        if p is None:
            return
        if self.proc is not None and p == self.proc.pid:
            os.killpg(p, sig)
        else:
            os.kill(p, sig)
        wait_for(lambda: not _alive(p), timeout, what=f"n{self.n} (pid {p}) to exit")
        if self.proc is not None and self.proc.pid == p:
            self.proc.wait(5)
        # A socket file left by a killed server is harmless; mariadbd
        # removes it at the next start.

    def stop(self):
        """A clean shutdown (SIGTERM), as a service manager does it."""
        self.kill(signal.SIGTERM, 60)

    def sql(self, query, check=True, timeout=30):
        """Run a query as root over the unix socket; rows as lists of str."""
        r = subprocess.run([CLIENT, "--no-defaults", "-S", str(self.sock), "-uroot",
                            "-N", "-B", "-e", query],
                           capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"n{self.n}: {query!r}: {r.stderr.decode()}")
        if r.returncode != 0:
            return None
        return [line.split("\t") for line in r.stdout.decode().splitlines()]

    def status(self, name):
        rows = self.sql(f"SHOW GLOBAL STATUS LIKE '{name}'", check=False, timeout=5)
        return rows[0][1] if rows else None

    def synced(self, size=None):
        if not self.running():
            return False
        ok = self.status("wsrep_local_state_comment") == "Synced"
        if ok and size is not None:
            ok = self.status("wsrep_cluster_size") == str(size)
        return ok

    def grastate(self):
        out = {}
        for line in (self.datadir / "grastate.dat").read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith("#"):
                out[key.strip()] = value.strip()
        return out

    def log_since(self, offset):
        with open(self.errlog, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_size(self):
        try:
            return self.errlog.stat().st_size
        except FileNotFoundError:
            return 0


class Cluster:
    def __init__(self, procs, workdir):
        self.procs = procs
        self.dir = workdir
        # The sockets live apart from the node directories: those can be
        # too long for sun_path. mariadbd (user mysql) creates them.
        self.sockdir = pathlib.Path(short_socket_dir("galera"))
        mysql = pwd.getpwnam("mysql")
        os.chown(self.sockdir, mysql.pw_uid, mysql.pw_gid)
        os.chmod(self.sockdir, 0o755)
        self.nodes = [Node(self, n) for n in (1, 2, 3)]

    def start(self):
        """Install n1, bootstrap it, join n2 then n3 (serial joins are as
        fast as parallel ones here, and more predictable)."""
        check_reachable_root(self.dir)
        let_mysql_through(self.dir, self.dir.parent)
        for node in self.nodes:
            node.write_config()
        n1 = self.nodes[0]
        r = subprocess.run([INSTALL_DB, f"--defaults-file={n1.cnf}",
                            "--auth-root-authentication-method=socket", "--skip-test-db"],
                           capture_output=True, timeout=120)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        n1.start("--wsrep-new-cluster")
        wait_for(lambda: n1.synced(), 60, interval=0.1, what="n1 bootstrapped")
        n1.sql(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';"
               f"GRANT PROCESS, SUPER, SLAVE MONITOR ON *.* TO '{USER}'@'%';"
               "CREATE DATABASE shop;"
               "CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(32))")
        for node in self.nodes[1:]:
            node.start()
            wait_for(lambda: node.synced(), 90, interval=0.2, what=f"n{node.n} joined")
        wait_for(lambda: all(n.synced(3) for n in self.nodes), 30, interval=0.2,
                 what="three Synced nodes")

    def stop(self):
        for node in self.nodes:
            pids = set(node.find())
            if node.adopted is not None and _alive(node.adopted):
                pids.add(node.adopted)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.procs.stop_all()
        for node in self.nodes:
            wait_for(lambda: not node.find(), 30, what=f"n{node.n}'s mariadbd gone")
        shutil.rmtree(self.sockdir, ignore_errors=True)
