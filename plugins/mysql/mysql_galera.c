/*
 * galera_*: grastate.dat, the datadir lock and --wsrep-recover output; see
 * mysql_galera.h.
 *
 * grastate.dat as Galera 4 writes it:
 *   # GALERA saved state
 *   version: 2.1
 *   uuid:    8ee8db6e-e986-11f1-b5aa-dff7f5c883ba
 *   seqno:   -1
 *   safe_to_bootstrap: 0
 * seqno is -1 while the server runs and after a crash; a clean shutdown
 * writes the last committed seqno, and the last node of the cluster to
 * stop cleanly gets safe_to_bootstrap: 1.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mysql_galera.h"

/* A grastate.dat is a few lines; anything bigger is not one. */
#define GRASTATE_MAX 4096
#define RECOVERED_TAG "WSREP: Recovered position: "

static void
galera_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
galera_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
galera_uuid_valid(const char *s)
{
	for (int i = 0; i < GALERA_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

int
galera_uuid_nil(const char *uuid)
{
	for (const char *p = uuid; *p != '\0'; p++)
		if (*p != '0' && *p != '-')
			return 0;
	return 1;
}

/* A whole signed decimal int64 in [p, end); returns 0 or -EINVAL. */
static int
galera_parse_seqno(const char *p, const char *end, int64_t *ret)
{
	int neg = 0;
	int64_t v = 0;

	if (p < end && *p == '-') {
		neg = 1;
		p++;
	}
	if (p == end)
		return -EINVAL;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (*p - '0');
	}
	*ret = neg ? -v : v;
	return 0;
}

/* Read the whole (small) file at path into a new NUL-terminated buffer. */
static int
galera_slurp(const char *path, char **ret, size_t *ret_len, struct stat *st)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -errno;
	if (fstat(fd, st) == -1) {
		r = -errno;
		goto fail;
	}
	if (!S_ISREG(st->st_mode) || st->st_size > GRASTATE_MAX) {
		r = -EINVAL;
		goto fail;
	}
	if ((buf = malloc(GRASTATE_MAX + 1)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	while (len < GRASTATE_MAX) {
		n = read(fd, buf + len, GRASTATE_MAX - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = -errno;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;

fail:
	free(buf);
	close(fd);
	return r;
}

/* Trimmed value of a "key: value" line, or NULL when line is not key's. */
static const char *
galera_line_value(const char *line, const char *eol, const char *key,
    const char **ret_end)
{
	size_t klen = strlen(key);
	const char *v, *e = eol;

	if ((size_t)(eol - line) <= klen || strncmp(line, key, klen) != 0 ||
	    line[klen] != ':')
		return NULL;
	for (v = line + klen + 1; v < e && (*v == ' ' || *v == '\t'); v++)
		;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	*ret_end = e;
	return v;
}

static int
galera_grastate_parse(const char *text, struct galera_state *st, char *err,
    size_t errlen)
{
	int have_uuid = 0, have_seqno = 0;
	const char *line = text;

	memset(st, 0, sizeof(*st));
	st->safe_to_bootstrap = -1;
	while (*line != '\0') {
		const char *eol = strchr(line, '\n');
		const char *v, *e;

		if (eol == NULL)
			eol = line + strlen(line);
		if ((v = galera_line_value(line, eol, "uuid", &e)) != NULL) {
			if (e - v != GALERA_UUID_LEN || !galera_uuid_valid(v)) {
				galera_err(err, errlen, "grastate.dat: bad uuid");
				return -EINVAL;
			}
			memcpy(st->uuid, v, GALERA_UUID_LEN);
			st->uuid[GALERA_UUID_LEN] = '\0';
			have_uuid = 1;
		} else if ((v = galera_line_value(line, eol, "seqno",
		    &e)) != NULL) {
			if (galera_parse_seqno(v, e, &st->seqno) < 0 ||
			    st->seqno < GALERA_SEQNO_UNDEFINED) {
				galera_err(err, errlen, "grastate.dat: bad seqno");
				return -EINVAL;
			}
			have_seqno = 1;
		} else if ((v = galera_line_value(line, eol,
		    "safe_to_bootstrap", &e)) != NULL) {
			if (e - v != 1 || (*v != '0' && *v != '1')) {
				galera_err(err, errlen,
				    "grastate.dat: bad safe_to_bootstrap");
				return -EINVAL;
			}
			st->safe_to_bootstrap = *v - '0';
		}
		line = *eol == '\n' ? eol + 1 : eol;
	}
	if (!have_uuid || !have_seqno) {
		galera_err(err, errlen, "grastate.dat: no %s line",
		    have_uuid ? "seqno" : "uuid");
		return -EINVAL;
	}
	return 0;
}

static int
galera_path(char *buf, size_t len, const char *datadir, const char *file)
{
	int n = snprintf(buf, len, "%s/%s", datadir, file);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int
galera_grastate_read(const char *datadir, struct galera_state *ret,
    char *err, size_t errlen)
{
	char path[4096], *text = NULL;
	struct stat st;
	size_t len;
	int r;

	if ((r = galera_path(path, sizeof(path), datadir, "grastate.dat")) < 0) {
		galera_err(err, errlen, "datadir path too long");
		return r;
	}
	if ((r = galera_slurp(path, &text, &len, &st)) < 0) {
		if (r == -EINVAL)
			galera_err(err, errlen, "%s is not a grastate file "
			    "(not a regular file, or over %d bytes)", path,
			    GRASTATE_MAX);
		else
			galera_err(err, errlen, "cannot read %s: %s", path,
			    strerror(-r));
		return r;
	}
	if (memchr(text, '\0', len) != NULL) {
		galera_err(err, errlen, "grastate.dat: NUL byte");
		free(text);
		return -EINVAL;
	}
	r = galera_grastate_parse(text, ret, err, errlen);
	free(text);
	return r;
}

/* Append the bytes [p, p + n) to the buffer out of capacity cap. */
static int
galera_put(char *out, size_t cap, size_t *len, const char *p, size_t n)
{
	if (*len + n >= cap)
		return -E2BIG;
	memcpy(out + *len, p, n);
	*len += n;
	out[*len] = '\0';
	return 0;
}

/* The file's text with the given values put in. */
static int
galera_grastate_edit(const char *text, const char *uuid,
    const int64_t *seqno, int safe, char *out, size_t cap, size_t *ret_len)
{
	const char *line = text;
	int have_safe = 0;
	size_t len = 0;
	char tmp[128];
	int r = 0;

	out[0] = '\0';
	while (*line != '\0' && r == 0) {
		const char *eol = strchr(line, '\n');
		const char *v, *e;

		if (eol == NULL)
			eol = line + strlen(line);
		if (uuid != NULL &&
		    galera_line_value(line, eol, "uuid", &e) != NULL) {
			snprintf(tmp, sizeof(tmp), "uuid:    %s\n", uuid);
			r = galera_put(out, cap, &len, tmp, strlen(tmp));
		} else if (seqno != NULL &&
		    galera_line_value(line, eol, "seqno", &e) != NULL) {
			snprintf(tmp, sizeof(tmp), "seqno:   %" PRId64 "\n",
			    *seqno);
			r = galera_put(out, cap, &len, tmp, strlen(tmp));
		} else if ((v = galera_line_value(line, eol,
		    "safe_to_bootstrap", &e)) != NULL) {
			have_safe = 1;
			if (safe >= 0) {
				snprintf(tmp, sizeof(tmp),
				    "safe_to_bootstrap: %d\n", safe);
				r = galera_put(out, cap, &len, tmp, strlen(tmp));
			} else {
				r = galera_put(out, cap, &len, line,
				    (size_t)(eol - line));
				if (r == 0)
					r = galera_put(out, cap, &len, "\n", 1);
			}
		} else {
			r = galera_put(out, cap, &len, line,
			    (size_t)(eol - line));
			if (r == 0)
				r = galera_put(out, cap, &len, "\n", 1);
		}
		line = *eol == '\n' ? eol + 1 : eol;
	}
	if (r == 0 && safe >= 0 && !have_safe) {
		snprintf(tmp, sizeof(tmp), "safe_to_bootstrap: %d\n", safe);
		r = galera_put(out, cap, &len, tmp, strlen(tmp));
	}
	*ret_len = len;
	return r;
}

static int
galera_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
galera_grastate_update(const char *datadir, const char *uuid,
    const int64_t *seqno, int safe, char *err, size_t errlen)
{
	char path[4096], tmp[4096 + 32], *text = NULL, *out = NULL;
	struct galera_state check;
	struct stat st;
	size_t len, outlen;
	int fd = -1, dfd, r;

	if (galera_path(path, sizeof(path), datadir, "grastate.dat") < 0 ||
	    galera_path(tmp, sizeof(tmp), datadir,
	    ".grastate.dat.troika-XXXXXX") < 0) {
		galera_err(err, errlen, "datadir path too long");
		return -ENAMETOOLONG;
	}
	if ((r = galera_slurp(path, &text, &len, &st)) < 0) {
		galera_err(err, errlen, "cannot read %s: %s", path,
		    strerror(-r));
		return r;
	}
	/* Only ever rewrite what is a valid state file. */
	if ((r = galera_grastate_parse(text, &check, err, errlen)) < 0)
		goto done;
	if ((out = malloc(2 * GRASTATE_MAX)) == NULL) {
		r = -ENOMEM;
		goto done;
	}
	if ((r = galera_grastate_edit(text, uuid, seqno, safe, out,
	    2 * GRASTATE_MAX, &outlen)) < 0) {
		galera_err(err, errlen, "grastate.dat: too long to edit");
		goto done;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		r = -errno;
		galera_err(err, errlen, "cannot create a file in %s: %s",
		    datadir, strerror(errno));
		goto done;
	}
	/* mariadbd runs as the file's owner and must be able to rewrite it. */
	if (fchown(fd, st.st_uid, st.st_gid) == -1 && errno != EPERM) {
		r = -errno;
		goto write_failed;
	}
	if (fchmod(fd, st.st_mode & 07777) == -1 ||
	    (r = galera_write_all(fd, out, outlen)) < 0 || fsync(fd) == -1) {
		if (r == 0)
			r = -errno;
		goto write_failed;
	}
	if (close(fd) == -1) {
		fd = -1;
		r = -errno;
		goto write_failed;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		r = -errno;
		goto write_failed;
	}
	/* The rename itself must survive a crash too. */
	if ((dfd = open(datadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fsync(dfd);
		close(dfd);
	}
	r = 0;
	goto done;

write_failed:
	galera_err(err, errlen, "cannot write %s: %s", path, strerror(-r));
	if (fd != -1)
		close(fd);
	unlink(tmp);
done:
	free(text);
	free(out);
	return r;
}

int
galera_datadir_locked(const char *datadir, pid_t *ret_pid)
{
	char path[4096];
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = 0,
		.l_len = 0,
	};
	int fd, r;

	*ret_pid = 0;
	if ((r = galera_path(path, sizeof(path), datadir, "ibdata1")) < 0)
		return r;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -errno;
	/*
	 * An open file description lock query: it sees the holder's
	 * classic fcntl lock (InnoDB's) even when the holder is this very
	 * process, which a classic F_GETLK would not.
	 */
	if (fcntl(fd, F_OFD_GETLK, &fl) == -1) {
		r = -errno;
		close(fd);
		return r;
	}
	close(fd);
	if (fl.l_type == F_UNLCK)
		return 0;
	*ret_pid = fl.l_pid > 0 ? fl.l_pid : 0;
	return 1;
}

int
galera_parse_recovered(const char *text, size_t len, struct galera_state *ret)
{
	const char *p = text, *end = text + len, *found = NULL;
	size_t tlen = strlen(RECOVERED_TAG);

	while ((p = memmem(p, (size_t)(end - p), RECOVERED_TAG, tlen)) != NULL) {
		const char *u = p + tlen, *s, *e;
		struct galera_state st = { .safe_to_bootstrap = -1 };

		p = u;
		if (end - u < GALERA_UUID_LEN + 2 || !galera_uuid_valid(u) ||
		    u[GALERA_UUID_LEN] != ':')
			continue;
		s = u + GALERA_UUID_LEN + 1;
		/* The seqno may be followed by ",<gtid>" or the line end. */
		for (e = s; e < end && (*e == '-' || (*e >= '0' && *e <= '9'));
		    e++)
			;
		if (galera_parse_seqno(s, e, &st.seqno) < 0 ||
		    st.seqno < GALERA_SEQNO_UNDEFINED)
			continue;
		memcpy(st.uuid, u, GALERA_UUID_LEN);
		st.uuid[GALERA_UUID_LEN] = '\0';
		*ret = st;
		found = u;
	}
	return found != NULL ? 0 : -ENOENT;
}

void
galera_last_error(const char *text, size_t len, char *out, size_t outlen)
{
	const char *p = text, *end = text + len, *last = NULL;
	static const char tag[] = "[ERROR] ";
	size_t n;

	if (outlen == 0)
		return;
	out[0] = '\0';
	while ((p = memmem(p, (size_t)(end - p), tag, sizeof(tag) - 1)) != NULL) {
		p += sizeof(tag) - 1;
		last = p;
	}
	if (last == NULL)
		return;
	for (n = 0; last + n < end && last[n] != '\n' && last[n] != '\r' &&
	    last[n] != '\0'; n++)
		;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, last, n);
	out[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = '?';
}
