/*
 * galera_*: the facts about a Galera node that live on disk, for when its
 * server is not running: the saved state (datadir/grastate.dat), whether a
 * mariadbd holds the datadir, and the position InnoDB recovered
 * (`mariadbd --wsrep-recover`). All of it is small local file work.
 */
#ifndef MYSQL_GALERA_H
#define MYSQL_GALERA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GALERA_UUID_LEN 36
/* What Galera writes for "no position". */
#define GALERA_SEQNO_UNDEFINED (-1)

struct galera_state {
	char uuid[GALERA_UUID_LEN + 1];
	int64_t seqno;
	int safe_to_bootstrap; /* 0, 1, or -1 when the file has no such line */
};

/* 1 if s is a 36-character UUID in Galera's textual form. */
int galera_uuid_valid(const char *s);
/* 1 if uuid is all zeros (Galera's "no history"). */
int galera_uuid_nil(const char *uuid);

/*
 * Read datadir/grastate.dat. Returns 0, -ENOENT when there is none, or
 * another negative errno; -EINVAL when it is malformed (no uuid or seqno
 * line, bad values). err gets a one-line reason on failure.
 */
int galera_grastate_read(const char *datadir, struct galera_state *ret,
    char *err, size_t errlen);

/*
 * Rewrite datadir/grastate.dat with new values, atomically (a temporary
 * file in the datadir with the same owner and mode, synced, renamed over
 * the old one, directory synced). uuid NULL, seqno NULL or safe < 0 keep
 * what the file says; every other line is kept as it is. Returns 0 or a
 * negative errno with err set.
 */
int galera_grastate_update(const char *datadir, const char *uuid,
    const int64_t *seqno, int safe, char *err, size_t errlen);

/*
 * Whether a process holds InnoDB's lock on datadir/ibdata1, which every
 * running mariadbd (and --wsrep-recover) takes. Returns 1 (the holder's
 * PID in *ret_pid when known, else 0), 0 when free, -ENOENT when there is
 * no ibdata1, or another negative errno.
 */
int galera_datadir_locked(const char *datadir, pid_t *ret_pid);

/*
 * Find the last "WSREP: Recovered position: <uuid>:<seqno>" in the text
 * of a --wsrep-recover run. Returns 0, or -ENOENT when there is none.
 */
int galera_parse_recovered(const char *text, size_t len,
    struct galera_state *ret);

/*
 * The last "[ERROR]" line of a mariadbd log text, without the time stamp
 * prefix, into out (cut to outlen); "" when there is none.
 */
void galera_last_error(const char *text, size_t len, char *out,
    size_t outlen);

#endif
