"""The rabbitmq plugin against one real RabbitMQ node on 127.0.1.1.

The broker takes 8-19 s to start, so it is started once for this module
(rabbitmq_server.py: own epmd on 14369, own HOME and cookie, management API
on 15672) and stopped by PID at the end; the test that stops it runs last
and starts it again. Queues are made and filled through the management API;
a consumer needs AMQP, so rabbitmq_server.AmqpConsumer holds one.
"""
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import AGENT, NODE1, free_port, parse_metrics, wait_for
from rabbitmq_server import AMQP_PORT, AmqpConsumer, RabbitMQ


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory):
    r = RabbitMQ(tmp_path_factory.mktemp("rabbitmq"), ip=NODE1)
    try:
        r.start()
        yield r
    finally:
        r.close()


def check_yaml(name, rabbit, interval="1s", timeout="1s", port=AMQP_PORT, **opts):
    text = (f"  - name: {name}\n    plugin: rabbitmq\n    interval: {interval}\n"
            f"    timeout: {timeout}\n    host: \"{rabbit.ip}\"\n    port: {port}\n"
            f"    user: {rabbit.user}\n")
    opts.setdefault("password", rabbit.password)
    for key, value in opts.items():
        text += f"    {key}: {value}\n"
    return text


def messages(agent):
    """{check: (status word, message)} from `troika-agent status`."""
    r = subprocess.run([AGENT, "--admin-socket", agent.admin_socket, "status"],
                       capture_output=True, timeout=10)
    out = {}
    for line in r.stdout.decode().splitlines():
        key, _, rest = line.partition(": ")
        if key.startswith("check."):
            _plugin, status, msg = rest.split(" ", 2)
            out[key[len("check."):]] = (status, msg)
    return out


def wait_message(agent, check, status, message, timeout=15):
    """Wait until check reports status with exactly message."""
    wait_for(lambda: messages(agent).get(check) == (status, message), timeout,
             what=f"{check}: {status} {message!r} (have {messages(agent).get(check)!r})")


def rmq(agent, name, metric, **labels):
    return agent.find(metric, check=name, plugin="rabbitmq", **labels)


def test_queue_depth_consumers_and_node_facts(agent, rabbit, tmp_path):
    for q in ("orders", "mails"):
        rabbit.declare_queue(q)
        rabbit.purge(q)
    rabbit.publish("orders", 3)
    consumer = AmqpConsumer(rabbit.ip, AMQP_PORT, rabbit.user, rabbit.password, "mails")
    try:
        agent.write(check_yaml("rmq", rabbit, queues="[orders, mails]", max_messages=5,
                               management_url=f"\"{rabbit.mgmt_url}/\"")
                    + check_yaml("rmq-consumers", rabbit, queues="[mails]", min_consumers=1))
        agent.start()
        wait_message(agent, "rmq", "ok", "RabbitMQ 3.10.8: 2 queues, 3 messages ready, "
                     "1 consumer")
        wait_message(agent, "rmq-consumers", "ok", "RabbitMQ 3.10.8: 1 queue, 0 messages "
                     "ready, 1 consumer")
        assert agent.status("rmq") == 0
        assert rmq(agent, "rmq", "rabbitmq_up") == 1
        assert rmq(agent, "rmq", "rabbitmq_queue_messages_ready", queue="orders") == 3
        assert rmq(agent, "rmq", "rabbitmq_queue_consumers", queue="orders") == 0
        assert rmq(agent, "rmq", "rabbitmq_queue_messages_ready", queue="mails") == 0
        assert rmq(agent, "rmq", "rabbitmq_queue_consumers", queue="mails") == 1
        assert rmq(agent, "rmq", "troika_rabbitmq_queue_exists", queue="orders") == 1
        assert 0 < rmq(agent, "rmq", "troika_rabbitmq_connect_seconds") < 2
        # The management API's facts about this node.
        assert rmq(agent, "rmq", "troika_rabbitmq_management_up") == 1
        assert rmq(agent, "rmq", "troika_rabbitmq_cluster_nodes") == 1
        assert rmq(agent, "rmq", "troika_rabbitmq_cluster_nodes_running") == 1
        assert rmq(agent, "rmq", "rabbitmq_alarms_memory_used_watermark") == 0
        assert rmq(agent, "rmq", "rabbitmq_alarms_free_disk_space_watermark") == 0
        assert rmq(agent, "rmq", "troika_rabbitmq_partitions") == 0
        # A fresh node lists its figures once its first statistics are in.
        wait_for(lambda: rmq(agent, "rmq", "rabbitmq_process_resident_memory_bytes"), 15,
                 what="the node's memory figure")
        assert rmq(agent, "rmq", "rabbitmq_process_resident_memory_bytes") > 50e6
        assert rmq(agent, "rmq", "rabbitmq_resident_memory_limit_bytes") > 50e6
        assert rmq(agent, "rmq", "rabbitmq_process_open_fds") > 0
        assert rmq(agent, "rmq", "rabbitmq_erlang_processes_used") > 100
        # The management API is not asked by the check without management_url.
        assert rmq(agent, "rmq-consumers", "troika_rabbitmq_management_up") is None

        # More messages than max_messages: WARNING.
        rabbit.publish("orders", 3)
        wait_message(agent, "rmq", "warning", 'queue "orders": 6 messages ready, above '
                     "max_messages 5")
        assert agent.status("rmq") == 1
        assert rmq(agent, "rmq", "rabbitmq_queue_messages_ready", queue="orders") == 6

        # The consumer leaves: fewer consumers than min_consumers.
        consumer.close()
        wait_message(agent, "rmq-consumers", "warning", 'queue "mails": 0 consumers, below '
                     "min_consumers 1")
        assert agent.status("rmq-consumers") == 1
        assert rmq(agent, "rmq-consumers", "rabbitmq_queue_consumers", queue="mails") == 0

        # The page with every rabbitmq family passes promtool.
        text = agent.scrape_text()
        (tmp_path / "metrics.prom").write_text(text)
        r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        assert "# TYPE rabbitmq_queue_messages_ready gauge" in text
        assert "# TYPE rabbitmq_alarms_memory_used_watermark gauge" in text
    finally:
        consumer.close()
        rabbit.purge("orders")


def test_missing_queue_and_refused_credentials(agent, rabbit):
    rabbit.declare_queue("orders")
    agent.write(check_yaml("missing", rabbit, queues="[orders, nope]")
                + check_yaml("badpw", rabbit, password="wrong")
                + check_yaml("badvhost", rabbit, vhost="nope")
                + check_yaml("badmgmt", rabbit, management_url=f"\"{rabbit.mgmt_url}\"",
                             management_password="wrong"))
    agent.start()
    wait_message(agent, "missing", "critical", 'queue "nope" not found in vhost "/"')
    assert agent.status("missing") == 2
    assert rmq(agent, "missing", "troika_rabbitmq_queue_exists", queue="nope") == 0
    assert rmq(agent, "missing", "troika_rabbitmq_queue_exists", queue="orders") == 1
    assert rmq(agent, "missing", "rabbitmq_up") == 1   # the broker answered
    wait_message(agent, "badpw", "critical", 'login refused for user "troika": '
                 "ACCESS_REFUSED - Login was refused using authentication mechanism "
                 "PLAIN. For details see the broker logfile.")
    assert agent.status("badpw") == 2
    assert rmq(agent, "badpw", "rabbitmq_up") == 0
    wait_message(agent, "badvhost", "critical", 'vhost "nope" refused for user "troika": '
                 "NOT_ALLOWED - vhost nope not found")
    assert rmq(agent, "badvhost", "rabbitmq_up") == 0
    # The management API refusing us is a WARNING: AMQP works.
    wait_message(agent, "badmgmt", "warning", "management API: /api/overview?columns=node,"
                 'cluster_name,rabbitmq_version: credentials of user "troika" refused '
                 "(HTTP 401)")
    assert rmq(agent, "badmgmt", "troika_rabbitmq_management_up") == 0
    assert rmq(agent, "badmgmt", "rabbitmq_up") == 1
    assert rmq(agent, "badmgmt", "rabbitmq_alarms_memory_used_watermark") is None


def test_memory_alarm_is_critical(agent, rabbit):
    agent.write(check_yaml("rmq", rabbit, management_url=f"\"{rabbit.mgmt_url}\""))
    agent.start()
    wait_for(lambda: agent.status("rmq") == 0, 15, what="rmq ok")
    try:
        rabbit.ctl("set_vm_memory_high_watermark", "absolute", "10MB")
        wait_message(agent, "rmq", "critical", f"memory alarm on rabbit1@{rabbit.ip}", 30)
        assert agent.status("rmq") == 2
        assert rmq(agent, "rmq", "rabbitmq_alarms_memory_used_watermark") == 1
        assert rmq(agent, "rmq", "rabbitmq_resident_memory_limit_bytes") == 10 * 1000 * 1000
        # An alarm blocks publishers, not logins: AMQP still works.
        assert rmq(agent, "rmq", "rabbitmq_up") == 1
    finally:
        rabbit.ctl("set_vm_memory_high_watermark", "0.4")
    wait_for(lambda: agent.status("rmq") == 0, 30, what="rmq ok after the alarm")
    assert rmq(agent, "rmq", "rabbitmq_alarms_memory_used_watermark") == 0


class Listener:
    """On NODE1: accept and hold every connection, optionally after a reply."""

    def __init__(self, reply=b""):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind((NODE1, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.reply:
                try:
                    c.recv(8)
                    c.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)


def test_silent_and_garbage_servers_do_not_stall_other_checks(agent, rabbit):
    rabbit.declare_queue("orders")
    silent = Listener()
    garbage = Listener(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + b"x" * 4096)
    try:
        agent.write(check_yaml("silent", rabbit, interval="1s", timeout="1s", port=silent.port)
                    + check_yaml("garbage", rabbit, interval="1s", timeout="1s",
                                 port=garbage.port)
                    + check_yaml("steady", rabbit, interval="300ms", timeout="300ms",
                                 queues="[orders]"))
        agent.start()
        wait_message(agent, "silent", "critical", "login timed out")
        wait_for(lambda: messages(agent).get("garbage", ("", ""))[1].startswith(
            "login: not an AMQP 0-9-1 reply"), 10, what="garbage critical")
        assert agent.status("garbage") == 2
        wait_for(lambda: agent.runs("steady", "ok") >= 1, 10, what="steady ok")
        # While the silent check holds a worker for most of every second,
        # the steady one keeps its 300 ms schedule on the other.
        start = agent.runs("steady", "ok")
        silent_before = agent.runs("silent", "critical")
        t0 = time.monotonic()
        wait_for(lambda: agent.runs("steady", "ok") >= start + 10, 6,
                 what="the steady check to keep running")
        # 10 runs take 3 s on schedule; allow noise, not stalls.
        assert time.monotonic() - t0 < 4.5
        wait_for(lambda: agent.runs("silent", "critical") >= silent_before + 2, 5,
                 what="more silent runs")
        # The plugin's own timeout comes first: CRITICAL, never the agent's UNKNOWN.
        assert agent.runs("silent", "timeout") == 0
        assert agent.runs("silent", "unknown") == 0
        assert agent.status("silent") == 2
        assert rmq(agent, "silent", "rabbitmq_up") == 0
        m = agent.metrics()
        key = frozenset({"check": "silent", "plugin": "rabbitmq"}.items())
        runs = m[("troika_check_duration_seconds_count", key)]
        assert m[("troika_check_duration_seconds_sum", key)] / runs < 1.0
        assert len(silent.conns) >= 2   # it did connect, and was kept waiting
    finally:
        silent.close()
        garbage.close()


def test_actions_without_a_service_manager(agent, rabbit):
    agent.write(check_yaml("rmq", rabbit))
    agent.start()
    wait_for(lambda: agent.status("rmq") == 0, 15, what="rmq ok")
    for action in ("restart", "stop", "start"):
        rc, reply = agent.action("rmq", action)
        assert (rc, reply["result"], reply["message"]) == (
            1, "failed", "no service manager configured for this check"), reply
    rc, reply = agent.action("rmq", "promote")
    assert (rc, reply["message"]) == (2, "the check's plugin has no such action")
    rc, reply = agent.action("rmq", "restart", "now")
    assert rc == 2
    # The broker was not touched.
    assert rabbit.server.poll() is None
    assert agent.status("rmq") == 0


def test_service_stop_and_start_through_the_agent(agent, rabbit):
    """Last: the agent's exec service manager stops the broker and starts
    it again; the actions wait until the port refuses, or a login works,
    and a second check sees the broker go CRITICAL and come back."""
    rabbit.declare_queue("orders")
    start, stop = rabbit.service_scripts()
    agent.write(check_yaml("rmq", rabbit, interval="300ms", timeout="300ms", queues="[orders]",
                           management_url=f"\"{rabbit.mgmt_url}\"")
                # Actions get the check's timeout: a broker's start needs time.
                + check_yaml("svc", rabbit, interval="1m", timeout="45s")
                + f"    service:\n      manager: exec\n      start: [/bin/sh, {start}]\n"
                f"      stop: [/bin/sh, {stop}]\n")
    agent.start()
    wait_for(lambda: agent.status("rmq") == 0, 15, what="rmq ok")

    rc, reply = agent.action("svc", "stop")
    rabbit.forget_stopped()
    assert (rc, reply["result"]) == (0, "ok"), reply
    assert reply["message"].startswith("stop: done in "), reply
    assert "; the broker refuses connections after " in reply["message"], reply
    wait_message(agent, "rmq", "critical", f"connect to {rabbit.ip} port {AMQP_PORT}: "
                 "Connection refused", 20)
    assert agent.status("rmq") == 2
    assert rmq(agent, "rmq", "rabbitmq_up") == 0
    # Nothing else is reported from a broker that is not there.
    assert rmq(agent, "rmq", "rabbitmq_queue_messages_ready", queue="orders") is None
    assert rmq(agent, "rmq", "troika_rabbitmq_management_up") is None

    try:
        rc, reply = agent.action("svc", "start")
    finally:
        if os.path.exists(os.path.join(rabbit.dir, "service.pid")):
            rabbit.adopt()
    assert (rc, reply["result"]) == (0, "ok"), reply
    assert reply["message"].startswith("start: done in "), reply
    assert "; the broker accepts logins after " in reply["message"], reply
    # The action's OK means clients get in: the next run of the other check is OK.
    wait_for(lambda: agent.status("rmq") == 0, 5, what="rmq ok after the start")
    assert rmq(agent, "rmq", "rabbitmq_up") == 1
    assert rmq(agent, "rmq", "troika_rabbitmq_queue_exists", queue="orders") == 1
