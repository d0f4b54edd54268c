"""Three emulated nodes on 127.0.1.1-3 for the recovery tests: on each, an
etcd member, a troika-coord (store etcd, quorum 2) and a troika-agent that
reports to all three coordinators, plus a real redis-server the agent
watches and may restart. Everything is started here and stopped by PID
(daemonized redis-servers by their pidfiles), also when a test fails.

Ports: etcd 2379/2380 (fixed, as in test_etcd.py), the rest picked free.
"""
import os
import shutil
import signal
import time
import urllib.request

import grpc

from conftest import (AGENT, BUILD_DIR, SANITIZER_REPORT, check_socket_path, free_port,
                      parse_metrics, short_socket_dir, wait_for)
from redis_server import REDIS_SERVER, command, kill_pidfile, write_conf
from test_etcd import EtcdCluster

COORD = os.path.join(BUILD_DIR, "core", "coord", "troika-coord")
PLUGIN_DIR = os.path.join(BUILD_DIR, "plugins")
IPS = {n: f"127.0.1.{n}" for n in (1, 2, 3)}
REDIS_PORT = 6390
# Held by whoever runs etcd on its fixed ports (test_etcd.py does too).
ETCD_LOCK = "/tmp/troika-etcd-ports.lock"

DEFAULT_POLICY = """\
  policies:
    - match: "redis*"
      fail_after: 3
      certain_after: 2
      down_after: 30s
      ladder: [restart, restart, alert]
      max_attempts: 3
      window: 1h
      backoff: 1s
      cooldown: 1s
      action_timeout: 30s
"""


class Cluster:
    def __init__(self, procs, run, pb, policy=DEFAULT_POLICY, restart_argv=None,
                 extra_targets=None):
        self.procs = procs
        self.run = run
        self.agent_pb2, self.admin_pb2 = pb
        self.policy = policy
        self.restart_argv = restart_argv
        self.extra_targets = extra_targets or {}
        self.etcd = EtcdCluster(procs, run / "etcd", wrap=self.wrap)
        (run / "etcd").mkdir(exist_ok=True)
        self.coords = {}
        self.agents = {}
        self.grpc_ports = {n: free_port(IPS[n]) for n in (1, 2, 3)}
        self.metric_ports = {n: free_port(IPS[n]) for n in (1, 2, 3)}
        self.agent_ports = {n: free_port(IPS[n]) for n in (1, 2, 3)}
        self.channels = {}
        # The agents' admin sockets: a path below the test's directory
        # can pass sun_path's limit (a long checkout path and test name).
        self.sockdir = short_socket_dir("cluster")

    def wrap(self, n, argv):
        """The command line that starts argv as one of node n's processes
        (etcd, coordinator, agent, the services the harness starts). As it
        is here; test_partition.py puts each node in its own cgroup."""
        return argv

    # ---- redis, one per node, daemonized as a service manager starts it

    def redis_dir(self, n):
        d = self.run / f"redis{n}"
        d.mkdir(exist_ok=True)
        return d

    def redis_conf(self, n):
        return str(self.redis_dir(n) / "redis.conf")

    def redis_pidfile(self, n):
        return str(self.redis_dir(n) / "redis.pid")

    def start_redis(self, n):
        write_conf(self.redis_conf(n), IPS[n], REDIS_PORT, str(self.redis_dir(n)),
                   daemonize=True, logfile=str(self.redis_dir(n) / "redis.log"))
        argv = self.wrap(n, [REDIS_SERVER, self.redis_conf(n)])
        r = os.spawnv(os.P_WAIT, argv[0], argv)
        assert r == 0
        wait_for(lambda: self.redis_ping(n), 10, what=f"redis on node {n}")

    def redis_ping(self, n):
        try:
            return command(IPS[n], REDIS_PORT, "PING", timeout=0.5) == "PONG"
        except (OSError, ConnectionError, Exception):
            return False

    def kill_redis(self, n):
        """kill -9 node n's redis-server; returns the monotonic time."""
        with open(self.redis_pidfile(n)) as f:
            pid = int(f.read().strip())
        t = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not self.redis_ping(n), 5, what="redis gone")
        return t

    # ---- coordinators

    def coord_target(self, n):
        return f"{IPS[n]}:{self.grpc_ports[n]}"

    def coord_conf(self, n):
        eps = [f"{IPS[n]}:2379"] + [f"{IPS[m]}:2379" for m in (1, 2, 3) if m != n]
        return (f"node: {{name: coord-{n}}}\n"
                f'listen: "{self.coord_target(n)}"\n'
                f'metrics: {{listen: "{IPS[n]}:{self.metric_ports[n]}"}}\n'
                f"agents: {{heartbeat: 1s}}\n"
                f"log: {{level: debug}}\n"
                f"store: etcd\n"
                f"etcd:\n  endpoints: [{', '.join(repr(e) for e in eps)}]\n"
                f"  prefix: /troika-test\n  timeout: 1s\n  lease_ttl: 3s\n"
                f"quorum: 2\n"
                f"recovery:\n  max_concurrent: 1\n  max_per_hour: 20\n" + self.policy)

    def start_coord(self, n):
        d = self.run / f"coord{n}"
        d.mkdir(exist_ok=True)
        (d / "coord.yaml").write_text(self.coord_conf(n))
        self.coords[n] = self.procs.start(
            self.wrap(n, [COORD, "--config", str(d / "coord.yaml")]), d / "coord.log")
        wait_for(lambda: self.coord_healthy(n), 10, what=f"coord-{n}")

    def coord_healthy(self, n):
        assert self.coords[n].poll() is None, f"coord-{n} exited:\n{self.coord_log(n)[-3000:]}"
        try:
            with urllib.request.urlopen(
                    f"http://{IPS[n]}:{self.metric_ports[n]}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def coord_log(self, n):
        p = self.run / f"coord{n}" / "coord.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def kill_coord(self, n, sig=signal.SIGKILL):
        p = self.coords.pop(n)
        self.channels.pop(n, None)
        os.killpg(p.pid, sig)
        p.wait(15)

    def channel(self, n):
        if n not in self.channels:
            self.channels[n] = grpc.insecure_channel(self.coord_target(n))
        return self.channels[n]

    def rpc(self, n, method, req, resp, timeout=5):
        call = self.channel(n).unary_unary(
            f"/troika.v1.Admin/{method}", request_serializer=req.SerializeToString,
            response_deserializer=resp.FromString)
        return call(req, timeout=timeout)

    def status(self, n):
        a = self.admin_pb2
        return self.rpc(n, "GetStatus", a.GetStatusRequest(), a.GetStatusResponse)

    def actions(self, n, nodes=()):
        a = self.admin_pb2
        return list(self.rpc(n, "ListActions", a.ListActionsRequest(nodes=nodes),
                             a.ListActionsResponse).actions)

    def coord_metrics(self, n):
        with urllib.request.urlopen(f"http://{IPS[n]}:{self.metric_ports[n]}/metrics",
                                    timeout=5) as r:
            return parse_metrics(r.read().decode())

    def leader(self, among=(1, 2, 3)):
        """(n, token) of the one coordinator that says it leads, or None."""
        leaders = []
        for n in among:
            if n not in self.coords:
                continue
            try:
                s = self.status(n)
            except grpc.RpcError:
                continue
            if s.leader:
                leaders.append((n, s.fencing_token))
        return leaders[0] if len(leaders) == 1 else None

    def events(self, n, after=0):
        """The events coordinator n keeps (WatchEvents, until idle)."""
        a = self.admin_pb2
        call = self.channel(n).unary_stream(
            "/troika.v1.Admin/WatchEvents",
            request_serializer=a.WatchEventsRequest.SerializeToString,
            response_deserializer=a.Event.FromString)
        out = []
        stream = call(a.WatchEventsRequest(after_seq=after or 1), timeout=1.5)
        try:
            for ev in stream:
                out.append(ev)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        return out

    # ---- agents

    def checks_yaml(self, n):
        """The checks of node n's agent; a subclass watches other services."""
        restart = self.restart_argv or [REDIS_SERVER, "{conf}"]
        restart = [a.replace("{conf}", self.redis_conf(n)) for a in restart]
        return (f"  - name: redis\n    plugin: redis\n    interval: 1s\n    timeout: 900ms\n"
                f"    host: {IPS[n]}\n    port: {REDIS_PORT}\n"
                f"    service:\n      manager: exec\n"
                f"      restart: [{', '.join(repr(a) for a in restart)}]\n"
                f"      pidfile: {self.redis_pidfile(n)}\n")

    def start_services(self):
        """The services the agents watch; a subclass starts others."""
        for n in (1, 2, 3):
            self.start_redis(n)

    def stop_services(self):
        for n in (1, 2, 3):
            kill_pidfile(self.redis_pidfile(n))

    def agent_conf(self, n):
        targets = [self.coord_target(m) for m in (1, 2, 3)] + self.extra_targets.get(n, [])
        return (f"node: node-{n}\nplugin_dirs: [{PLUGIN_DIR}]\nworkers: 2\n"
                f'metrics: {{listen: "{IPS[n]}:{self.agent_ports[n]}"}}\n'
                f"log: {{level: debug}}\n"
                f"coordinators:\n  targets: [{', '.join(repr(t) for t in targets)}]\n"
                f"  heartbeat: 1s\n"
                f"checks:\n" + self.checks_yaml(n))

    def start_agent(self, n):
        d = self.run / f"agent{n}"
        d.mkdir(exist_ok=True)
        (d / "agent.yaml").write_text(self.agent_conf(n))
        self.agents[n] = self.procs.start(
            self.wrap(n, [AGENT, "--config", str(d / "agent.yaml"), "--admin-socket",
                          self.admin_socket(n)]), d / "agent.log")

    def admin_socket(self, n):
        return check_socket_path(os.path.join(self.sockdir, f"agent{n}.sock"))

    def agent_log(self, n):
        p = self.run / f"agent{n}" / "agent.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def agent_metrics(self, n):
        with urllib.request.urlopen(f"http://{IPS[n]}:{self.agent_ports[n]}/metrics",
                                    timeout=5) as r:
            return parse_metrics(r.read().decode())

    # ---- the whole

    def start(self):
        for n in (1, 2, 3):
            self.etcd.start(n)
        self.start_services()
        self.etcd.wait_healthy()
        for n in (1, 2, 3):
            self.start_coord(n)
        for n in (1, 2, 3):
            self.start_agent(n)
        wait_for(self.settled, 30, what="three coordinators with quorum, one leader, "
                 "every node connected everywhere")

    def settled(self):
        if self.leader() is None:
            return False
        for n in self.coords:
            s = self.status(n)
            if not s.quorum or len([x for x in s.nodes if x.connected]) != 3:
                return False
            if any(not x.checks or x.checks[0].status != self.agent_pb2.CHECK_STATUS_OK
                   for x in s.nodes):
                return False
        return True

    def stop(self):
        for ch in self.channels.values():
            ch.close()
        errors = []
        for n, p in list(self.agents.items()) + [(n + 10, p) for n, p in self.coords.items()]:
            rc = self.procs.stop(p, timeout=20)
            if rc != 0:
                errors.append(f"process {n} exited {rc}")
        self.procs.stop_all()
        self.stop_services()
        shutil.rmtree(self.sockdir, ignore_errors=True)
        logs = [self.coord_log(n) for n in (1, 2, 3)] + [self.agent_log(n) for n in (1, 2, 3)]
        for log in logs:
            for marker in SANITIZER_REPORT:
                assert marker not in log, log[log.index(marker) - 200:][:4000]
        assert not errors, errors
