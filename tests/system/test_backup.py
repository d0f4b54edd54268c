"""Backups on a node: the redis plugin's `backup` action against a real
Redis, through the agent's admin socket. BGSAVE, then troika-backup
stores the RDB as a set (MANIFEST with SHA-256), runs Debian's
redis-check-rdb on the copy, puts the set in place and prunes. A stored
set is restored into a fresh redis-server and its keys read back."""
import os
import subprocess

from conftest import BUILD_DIR, NODE1, free_port
from redis_server import RedisServer
from test_redis import check, wait_status

BACKUP = os.path.join(BUILD_DIR, "core", "backup", "troika-backup")
CHECK_RDB = "/usr/bin/redis-check-rdb"


def backup_check(name, port, **opts):
    return check(name, NODE1, port=port, interval="5s", timeout="5s",
                 action_timeout="60s", backup_program=BACKUP, **opts)


def sets(d):
    r = subprocess.run([BACKUP, "list", str(d)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def verify(path):
    return subprocess.run([BACKUP, "verify", str(path)], capture_output=True,
                          text=True, timeout=60)


def test_redis_backup_stored_verified_restored_and_pruned(agent, procs, tmp_path):
    port = free_port()
    srv = RedisServer(procs, tmp_path / "redis", NODE1, port).start()
    for i in range(1000):
        srv.cmd("SET", f"key:{i}", f"value {i}")
    out = tmp_path / "backups"
    agent.write(backup_check("cache", port, backup_dir=out, backup_keep=2))
    agent.start()
    wait_status(agent, "cache", 0)

    made = []
    for n in range(3):
        srv.cmd("SET", "round", str(n))
        rc, reply = agent.action("cache", "backup")
        assert rc == 0, reply
        assert reply["result"] == "ok", reply
        name = reply["field.backup_set"]
        assert os.path.dirname(name) == str(out), reply
        assert reply["message"].startswith(f"{NODE1}:{port}: backup done after "), reply
        assert f"; stored {name}: 1 file, " in reply["message"], reply
        assert reply["message"].endswith(f", {1 if n == 2 else 0} older removed"), reply
        made.append(os.path.basename(name))
    # keep 2: the first set is gone, the two newest stay.
    assert sets(out) == made[1:]
    for name in made[1:]:
        r = verify(out / name)
        assert r.returncode == 0 and r.stdout.startswith(f"ok {out / name}: 1 file, "), r
        assert sorted(os.listdir(out / name)) == ["MANIFEST", "dump.rdb"]

    # The newest set restores: a fresh server loads its RDB.
    restore = tmp_path / "restore"
    restore.mkdir()
    os.link(out / made[2] / "dump.rdb", restore / "dump.rdb")
    back = RedisServer(procs, restore, NODE1, free_port()).start()
    assert back.cmd("GET", "round") == "2"
    assert back.cmd("GET", "key:999") == "value 999"
    assert back.cmd("DBSIZE") == 1001
    back.stop()

    # Tampering is found by verify.
    with open(out / made[1] / "dump.rdb", "r+b") as f:
        f.seek(20)
        byte = f.read(1)
        f.seek(20)
        f.write(bytes([byte[0] ^ 0xff]))
    r = verify(out / made[1])
    assert r.returncode == 1 and r.stdout.startswith(f"FAILED {out / made[1]}/dump.rdb: "), r
    srv.stop()


def test_redis_backup_refused_or_failed_keeps_what_was_there(agent, procs, tmp_path):
    port = free_port()
    data = tmp_path / "redis"
    srv = RedisServer(procs, data, NODE1, port,
                      extra="enable-protected-configs yes\n").start()
    srv.cmd("SET", "k", "v")
    out = tmp_path / "backups"
    junk = tmp_path / "junk.rdb"
    junk.write_bytes(b"REDIS0011 this is not an RDB file\n" * 10)
    agent.write(backup_check("none", port)
                + backup_check("good", port, backup_dir=out)
                + backup_check("nocheck", port, backup_dir=out,
                               rdb_check_program="/bin/false")
                + backup_check("corrupt", port, backup_dir=out, rdb_file=junk)
                + backup_check("missing", port, backup_dir=out,
                               rdb_file=tmp_path / "nothing.rdb"))
    agent.start()
    wait_status(agent, "good", 0)

    rc, reply = agent.action("none", "backup")
    assert (rc, reply["result"], reply["message"]) == (
        1, "failed", "backup: no backup_dir configured for this check"), reply
    rc, reply = agent.action("good", "backup")
    assert rc == 0, reply
    first = os.path.basename(reply["field.backup_set"])
    assert sets(out) == [first]

    # The check of the copy fails: no set, the old one stays.
    rc, reply = agent.action("nocheck", "backup")
    assert (rc, reply["result"]) == (1, "failed"), reply
    assert reply["message"].startswith(f"backup of {data}/dump.rdb failed: troika-backup: "
                                       f"/bin/false {out}/."), reply
    assert reply["message"].endswith("/dump.rdb: exit 1"), reply
    # Debian's redis-check-rdb refuses a file that is not an RDB.
    rc, reply = agent.action("corrupt", "backup")
    assert (rc, reply["result"]) == (1, "failed"), reply
    assert reply["message"].startswith(f"backup of {junk} failed: troika-backup: "
                                       f"{CHECK_RDB} {out}/."), reply
    rc, reply = agent.action("missing", "backup")
    assert (rc, reply["message"]) == (1, f"backup of {tmp_path}/nothing.rdb failed: "
                                         f"troika-backup: open {tmp_path}/nothing.rdb: "
                                         "No such file or directory"), reply
    assert sets(out) == [first]
    assert sorted(os.listdir(out)) == [".lock", first]

    # BGSAVE fails (its directory is gone): nothing is stored.
    srv.fail_saves()
    rc, reply = agent.action("good", "backup")
    assert (rc, reply["message"]) == (
        1, "bgsave failed (rdb_last_bgsave_status:err)"), reply
    assert sets(out) == [first]
    srv.stop()
