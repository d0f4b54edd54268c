#include "procfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * A stat line is about 300 bytes; comm is at most 64 bytes even for kernel
 * threads. This leaves room without allocating.
 */
#define PROCFS_STAT_MAX 4096
/* argv[0] of interest is a path: PATH_MAX bounds it. */
#define PROCFS_CMDLINE_MAX (PATH_MAX + 1)
/* A pidfile holds one number; anything this long is not a pidfile. */
#define PROCFS_PIDFILE_MAX 64

/*
 * Read a whole (small) file into buf, NUL-terminated; *ret_len excludes the
 * NUL. A file larger than size - 1 is cut. Returns 0 or a negative errno;
 * a process that exited between open and read shows up as ESRCH, which is
 * folded into ENOENT so callers see one "gone" error.
 */
static int
procfs_read_file(const char *path, char *buf, size_t size, size_t *ret_len)
{
	size_t off = 0;
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return errno == ESRCH ? -ENOENT : -errno;
	while (off < size - 1) {
		ssize_t n = read(fd, buf + off, size - 1 - off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			r = errno == ESRCH ? -ENOENT : -errno;
			goto out;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	*ret_len = off;
out:
	close(fd);
	return r;
}

static void
procfs_path(char *buf, size_t len, pid_t pid, const char *file)
{
	if (pid == 0)
		snprintf(buf, len, "/proc/self/%s", file);
	else
		snprintf(buf, len, "/proc/%ld/%s", (long)pid, file);
}

/* Unsigned decimal at *p, after optional spaces; advances *p. */
static int
procfs_parse_u64(const char **p, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;

	while (*s == ' ')
		s++;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*ret = v;
	return 0;
}

/* Skip one space-separated field (it may be negative, e.g. tty_nr). */
static int
procfs_skip_field(const char **p)
{
	const char *s = *p;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return -EINVAL;
	while (*s != ' ' && *s != '\0')
		s++;
	*p = s;
	return 0;
}

struct procfs_stat_fields {
	char state;
	char comm[32];
	uint64_t utime, stime;  /* clock ticks */
	uint64_t starttime;     /* clock ticks after boot */
	uint64_t vsize;         /* bytes */
	uint64_t rss;           /* pages */
};

/*
 * Parse /proc/PID/stat (proc(5)). comm is free text that may itself hold
 * spaces, '(' and ')', so it ends at the LAST ')' of the line; fields are
 * counted from there.
 */
static int
procfs_parse_stat(const char *line, struct procfs_stat_fields *ret)
{
	const char *open, *close, *p;
	size_t n;
	int field, r;

	if ((open = strchr(line, '(')) == NULL ||
	    (close = strrchr(line, ')')) == NULL || close < open)
		return -EINVAL;
	n = (size_t)(close - open - 1);
	if (n >= sizeof(ret->comm))
		n = sizeof(ret->comm) - 1;
	memcpy(ret->comm, open + 1, n);
	ret->comm[n] = '\0';

	p = close + 1;
	if (*p++ != ' ' || *p == '\0' || *p == ' ')
		return -EINVAL;
	ret->state = *p++;
	/* p now points after field 3 (state); proc(5) numbers from 1. */
	for (field = 4; field <= 24; field++) {
		uint64_t *dst = NULL;

		switch (field) {
		case 14: dst = &ret->utime; break;
		case 15: dst = &ret->stime; break;
		case 22: dst = &ret->starttime; break;
		case 23: dst = &ret->vsize; break;
		case 24: dst = &ret->rss; break;
		}
		if (dst != NULL)
			r = procfs_parse_u64(&p, dst);
		else
			r = procfs_skip_field(&p);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
procfs_read_stat(pid_t pid, struct procfs_stat_fields *ret)
{
	char path[64], buf[PROCFS_STAT_MAX];
	size_t len;
	int r;

	procfs_path(path, sizeof(path), pid, "stat");
	if ((r = procfs_read_file(path, buf, sizeof(buf), &len)) < 0)
		return r;
	if (len == 0)
		return -ENOENT; /* exited while we read */
	return procfs_parse_stat(buf, ret);
}

/* Boot time in seconds since the epoch, the "btime" line of /proc/stat. */
static int
procfs_boot_time(uint64_t *ret)
{
	char line[256];
	FILE *f;
	int r = -EINVAL;

	if ((f = fopen("/proc/stat", "re")) == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = line + 5;

		if (strncmp(line, "btime", 5) != 0 || *p != ' ')
			continue;
		r = procfs_parse_u64(&p, ret);
		break;
	}
	fclose(f);
	return r;
}

/*
 * Entries of /proc/PID/fd. For the calling process, the descriptor the
 * directory listing itself uses is not counted. 0 when not readable (another
 * user's process).
 */
static uint64_t
procfs_count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	uint64_t n = 0;
	DIR *d;
	int self_fd = -1;

	procfs_path(path, sizeof(path), pid, "fd");
	if ((d = opendir(path)) == NULL)
		return 0;
	if (pid == 0 || pid == getpid())
		self_fd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (self_fd >= 0 && atoi(de->d_name) == self_fd)
			continue;
		n++;
	}
	closedir(d);
	return n;
}

/*
 * Soft limit of "Max open files" in /proc/PID/limits:
 *   Max open files            1024                 1048576              files
 * "unlimited" reads as UINT64_MAX; 0 when not readable.
 */
static uint64_t
procfs_max_fds(pid_t pid)
{
	static const char key[] = "Max open files";
	char path[64], buf[PROCFS_STAT_MAX];
	const char *p;
	uint64_t v;
	size_t len;

	procfs_path(path, sizeof(path), pid, "limits");
	if (procfs_read_file(path, buf, sizeof(buf), &len) < 0)
		return 0;
	for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, key, sizeof(key) - 1) != 0)
			continue;
		p += sizeof(key) - 1;
		while (*p == ' ')
			p++;
		if (strncmp(p, "unlimited", 9) == 0)
			return UINT64_MAX;
		if (procfs_parse_u64(&p, &v) < 0)
			return 0;
		return v;
	}
	return 0;
}

int
procfs_stats(pid_t pid, struct procfs_stats *ret)
{
	struct procfs_stat_fields f;
	uint64_t btime;
	long ticks, page;
	int r;

	if (pid < 0 || ret == NULL)
		return -EINVAL;
	memset(&f, 0, sizeof(f));
	if ((r = procfs_read_stat(pid, &f)) < 0)
		return r;
	if ((r = procfs_boot_time(&btime)) < 0)
		return r;
	if ((ticks = sysconf(_SC_CLK_TCK)) <= 0 ||
	    (page = sysconf(_SC_PAGESIZE)) <= 0)
		return -EINVAL;

	memset(ret, 0, sizeof(*ret));
	ret->cpu_seconds = (double)(f.utime + f.stime) / (double)ticks;
	ret->rss_bytes = f.rss * (uint64_t)page;
	ret->vsize_bytes = f.vsize;
	ret->open_fds = procfs_count_fds(pid);
	ret->max_fds = procfs_max_fds(pid);
	ret->start_time_seconds = (double)btime +
	    (double)f.starttime / (double)ticks;
	ret->state = f.state;
	memcpy(ret->comm, f.comm, sizeof(ret->comm));
	return 0;
}

/* 1 when the process's argv[0], without its directory, equals name. */
static int
procfs_argv0_matches(pid_t pid, const char *name, int *ret_match)
{
	char path[64], buf[PROCFS_CMDLINE_MAX];
	const char *base;
	size_t len;
	int r;

	*ret_match = 0;
	procfs_path(path, sizeof(path), pid, "cmdline");
	if ((r = procfs_read_file(path, buf, sizeof(buf), &len)) < 0)
		return r;
	/* Kernel threads have an empty cmdline; a cut argv[0] is unknown. */
	if (len == 0 ||
	    (memchr(buf, '\0', len) == NULL && len == sizeof(buf) - 1))
		return 0;
	base = strrchr(buf, '/');
	base = base != NULL ? base + 1 : buf;
	*ret_match = strcmp(base, name) == 0;
	return 0;
}

/* Parse a /proc directory name; 0 when it is not a PID. */
static pid_t
procfs_dirname_pid(const char *s)
{
	long v = 0;

	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (*s - '0');
		if (v > INT_MAX)
			return 0;
	}
	return (pid_t)v;
}

int
procfs_find_by_name(const char *name, int match_cmdline, pid_t *pids,
    size_t max)
{
	/* comm holds at most TASK_COMM_LEN - 1 = 15 bytes. */
	int use_cmdline = match_cmdline || (name != NULL && strlen(name) > 15);
	struct dirent *de;
	size_t found = 0;
	DIR *d;
	int r = 0;

	if (name == NULL || *name == '\0' || (pids == NULL && max > 0))
		return -EINVAL;
	if ((d = opendir("/proc")) == NULL)
		return -errno;
	for (;;) {
		struct procfs_stat_fields f;
		int match = 0;
		pid_t pid;

		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0)
				r = -errno;
			break;
		}
		if ((pid = procfs_dirname_pid(de->d_name)) <= 0)
			continue;
		memset(&f, 0, sizeof(f));
		if ((r = procfs_read_stat(pid, &f)) == 0) {
			if (f.state == 'Z' || f.state == 'X')
				continue;
			if (use_cmdline)
				r = procfs_argv0_matches(pid, name, &match);
			else
				match = strcmp(f.comm, name) == 0;
		}
		if (r < 0) {
			/*
			 * The process exited during the scan, or belongs to
			 * someone we may not look at: not ours to report.
			 */
			if (r == -ENOENT || r == -ESRCH || r == -EACCES ||
			    r == -EINVAL) {
				r = 0;
				continue;
			}
			break;
		}
		if (!match)
			continue;
		if (found < max)
			pids[found] = pid;
		found++;
	}
	closedir(d);
	if (r < 0)
		return r;
	return found > INT_MAX ? INT_MAX : (int)found;
}

int
procfs_read_pidfile(const char *path, pid_t *ret)
{
	char buf[PROCFS_PIDFILE_MAX + 1];
	const char *p;
	size_t len;
	long v = 0;
	int r;

	if (path == NULL || ret == NULL)
		return -EINVAL;
	if ((r = procfs_read_file(path, buf, sizeof(buf), &len)) < 0)
		return r;
	if (len == PROCFS_PIDFILE_MAX || memchr(buf, '\0', len) != NULL)
		return -EINVAL; /* too long to be a PID, or binary */
	p = buf;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p < '0' || *p > '9')
		return -EINVAL; /* empty, signed or garbage */
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (*p - '0');
		if (v > INT_MAX)
			return -EINVAL;
		p++;
	}
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p != '\0' || v == 0)
		return -EINVAL;
	*ret = (pid_t)v;
	return 0;
}
