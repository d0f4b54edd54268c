"""A real PHP-FPM pool and an nginx in front of it, for test_web.py.

Both run in the foreground under the test harness (Procs: own process
group, stopped by PID), on 127.0.1.1 with free ports, everything under a
pytest temporary folder:

- php-fpm (Debian's php-fpmX.Y, `-F -R -y conf -p prefix`): pool `www` on
  127.0.1.1:<port>, pm dynamic with at most 2 children (so a few slow
  requests fill it), pm.status_path /status, request_slowlog_timeout 1s;
- nginx: `/` static text, `/stub_status`, `/fpm-status` passed to the
  pool's status path, `*.php` passed to the pool (hello.php, slow.php?ms=N).
"""
import glob
import os
import shutil
import socket
import urllib.request

from conftest import NODE1, free_port, wait_for

FPM_CONF = """[global]
pid = {run}/php-fpm.pid
error_log = {run}/php-fpm.log
daemonize = no
log_level = notice

[www]
listen = {host}:{port}
listen.backlog = 64
pm = dynamic
pm.max_children = 2
pm.start_servers = 1
pm.min_spare_servers = 1
pm.max_spare_servers = 1
pm.status_path = /status
request_slowlog_timeout = 1s
slowlog = {run}/slow.log
catch_workers_output = yes
"""

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen {host}:{port};
        root {docroot};
        location = / {{ default_type text/plain; return 200 "hello troika\\n"; }}
        location = /stub_status {{ stub_status; }}
        location = /fpm-status {{
            fastcgi_pass {fpm_host}:{fpm_port};
            fastcgi_param SCRIPT_NAME /status;
            fastcgi_param SCRIPT_FILENAME /status;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
        }}
        location ~ \\.php$ {{
            fastcgi_pass {fpm_host}:{fpm_port};
            fastcgi_read_timeout 30s;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param SCRIPT_NAME $fastcgi_script_name;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
        }}
    }}
}}
"""

HELLO_PHP = '<?php echo "hello from php\\n";\n'
SLOW_PHP = ('<?php usleep((int)($_GET["ms"] ?? 1000) * 1000);\n'
            'echo "slept\\n";\n')


def php_fpm_binary():
    found = sorted(glob.glob("/usr/sbin/php-fpm*"))
    assert found, "no /usr/sbin/php-fpm* (Debian package php-fpm)"
    return found[-1]


def _listening(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class PhpFpm:
    """One pool; start() and stop() may be called again."""

    def __init__(self, procs, run):
        self.procs, self.run = procs, run
        self.host, self.port = NODE1, free_port()
        self.conf = run / "php-fpm.conf"
        self.conf.write_text(FPM_CONF.format(run=run, host=self.host, port=self.port))
        self.proc = None

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    @property
    def pid(self):
        return self.proc.pid  # -F: the master stays in the foreground

    def start(self):
        self.proc = self.procs.start([php_fpm_binary(), "-F", "-R", "-y", str(self.conf),
                                      "-p", str(self.run)], self.run / "php-fpm.out")
        wait_for(lambda: _listening(self.host, self.port), 10, what="php-fpm to listen")
        return self

    def stop(self):
        self.procs.stop(self.proc)
        wait_for(lambda: not _listening(self.host, self.port), 10, what="php-fpm to stop")

    def log(self):
        p = self.run / "php-fpm.log"
        return p.read_text(errors="replace") if p.exists() else ""


class Nginx:
    def __init__(self, procs, run, fpm):
        self.procs, self.run = procs, run
        self.host, self.port = NODE1, free_port()
        docroot = run / "www"
        docroot.mkdir(exist_ok=True)
        (docroot / "hello.php").write_text(HELLO_PHP)
        (docroot / "slow.php").write_text(SLOW_PHP)
        self.conf = run / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(run=run, host=self.host, port=self.port,
                                               docroot=docroot, fpm_host=fpm.host,
                                               fpm_port=fpm.port))
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = None

    def url(self, path="/"):
        return f"http://{self.host}:{self.port}{path}"

    @property
    def reload_argv(self):
        return [self.binary, "-e", str(self.run / "nginx-stderr.log"), "-c", str(self.conf),
                "-p", str(self.run), "-s", "reload"]

    def start(self):
        self.proc = self.procs.start([self.binary, "-e", str(self.run / "nginx-stderr.log"),
                                      "-c", str(self.conf), "-p", str(self.run)],
                                     self.run / "nginx.out")
        wait_for(lambda: self.get("/") == (200, b"hello troika\n"), 10,
                 what="nginx to answer")
        return self

    def stop(self):
        self.procs.stop(self.proc)
        wait_for(lambda: not _listening(self.host, self.port), 10, what="nginx to stop")

    def get(self, path, timeout=5):
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return None

    def workers(self):
        """PIDs of the master's worker processes."""
        out = set()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                out.add(int(d))
        return out


def start_stack(procs, run):
    """php-fpm and nginx in front of it, both running."""
    fpm = PhpFpm(procs, run).start()
    nginx = Nginx(procs, run, fpm).start()
    assert nginx.get("/hello.php") == (200, b"hello from php\n")
    return fpm, nginx
