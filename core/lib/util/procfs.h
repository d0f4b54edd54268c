/*
 * Readers for /proc: CPU, memory and descriptors of a process, and lookup
 * of processes by name. No allocation beyond what is returned; safe to use
 * from plugins (linked statically, no host symbols).
 */
#ifndef TROIKA_PROCFS_H
#define TROIKA_PROCFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct procfs_stats {
	double cpu_seconds;     /* utime + stime */
	uint64_t rss_bytes;
	uint64_t vsize_bytes;
	uint64_t open_fds;      /* entries of /proc/PID/fd; 0 if not readable */
	uint64_t max_fds;       /* soft RLIMIT_NOFILE from /proc/PID/limits */
	double start_time_seconds; /* since the epoch */
	char state;             /* 'R', 'S', 'Z', ... */
	char comm[32];
};

/* pid 0 means the calling process. Returns 0, -ENOENT (no such process)
 * or another negative errno. */
int procfs_stats(pid_t pid, struct procfs_stats *ret);

/*
 * PIDs whose comm equals name, or, when name is longer than comm allows
 * (15 bytes) or match_cmdline is set, whose argv[0] basename equals name.
 * Zombies are skipped. Fills up to max pids; returns the number found (may
 * exceed max) or a negative errno.
 */
int procfs_find_by_name(const char *name, int match_cmdline, pid_t *pids,
    size_t max);

/* Read a pidfile: one decimal PID, optional whitespace, no trailing newline
 * needed. Returns 0, -ENOENT, or -EINVAL for bad content. */
int procfs_read_pidfile(const char *path, pid_t *ret);

#endif
