/*
 * Backup sets: copy, hash, verify, rename into place, retention. See
 * backup_set.h for the layout and the guarantees.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "backup_set.h"

#define BACKUP_MANIFEST_MAX (64 * 1024)
#define BACKUP_MANIFEST_HEADER "troika-backup 1"
#define BACKUP_IO_CHUNK (128 * 1024)
#define BACKUP_PARTIAL_SUFFIX ".partial"
/* A set's name: 20261127T031500Z, then .2 .. .999 within one second. */
#define BACKUP_STAMP_LEN 16
#define BACKUP_SUFFIX_MAX 999

static void backup_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
backup_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* What follows the last '/' of path (all of it when there is none). */
static const char *
backup_base(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

/* A file's name inside a set: one printable word, not hidden. */
static int
backup_file_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 255 || name[0] == '.' ||
	    strcmp(name, BACKUP_MANIFEST) == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= 0x20 ||
		    (unsigned char)name[i] >= 0x7f || name[i] == '/')
			return 0;
	return 1;
}

/* 20261127T031500Z or 20261127T031500Z.N (N 2..999); the suffix is
 * returned in *suffix (1 when there is none). */
static int
backup_set_name_ok(const char *name, unsigned *suffix)
{
	const char *p = name + BACKUP_STAMP_LEN;

	if (strlen(name) < BACKUP_STAMP_LEN)
		return 0;
	for (int i = 0; i < BACKUP_STAMP_LEN; i++) {
		int want_digit = i != 8 && i != 15;

		if (want_digit ? !isdigit((unsigned char)name[i]) :
		    name[i] != (i == 8 ? 'T' : 'Z'))
			return 0;
	}
	*suffix = 1;
	if (*p == '\0')
		return 1;
	if (*p != '.' || p[1] == '0' || p[1] == '\0' || strlen(p + 1) > 3)
		return 0;
	*suffix = 0;
	for (p++; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return 0;
		*suffix = *suffix * 10 + (unsigned)(*p - '0');
	}
	return *suffix >= 2;
}

static int
backup_name_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	unsigned sx, sy;
	int c = strncmp(x, y, BACKUP_STAMP_LEN);

	if (c != 0)
		return c;
	(void)backup_set_name_ok(x, &sx);
	(void)backup_set_name_ok(y, &sy);
	return sx < sy ? -1 : sx > sy;
}

/*
 * A directory stream over dir_fd, from its start, that leaves dir_fd open:
 * closedir() closes only its own duplicate. NULL with errno set.
 */
static DIR *
backup_dir_stream(int dir_fd)
{
	int fd = dup(dir_fd);
	DIR *d;

	if (fd < 0)
		return NULL;
	if ((d = fdopendir(fd)) == NULL) {
		int saved = errno;

		close(fd);
		errno = saved;
		return NULL;
	}
	/* The duplicate shares the offset an earlier stream moved. */
	rewinddir(d);
	return d;
}

static void
backup_hex(const unsigned char *md, char *hex)
{
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static int
backup_write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t put = write(fd, s, n);

		if (put < 0 && errno == EINTR)
			continue;
		if (put < 0)
			return -1;
		s += put;
		n -= (size_t)put;
	}
	return 0;
}

/*
 * Read fd to its end, hashing it; if out_fd >= 0, write everything read to
 * it too. Returns 0 with the size and hex digest, or -errno (*where says
 * which side failed: "read" or "write").
 */
static int
backup_pump(int in_fd, int out_fd, uint64_t *size, char *hex,
    const char **where)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *buf;
	EVP_MD_CTX *ctx;
	int rc = 0;

	*size = 0;
	if ((buf = malloc(BACKUP_IO_CHUNK)) == NULL)
		return -ENOMEM;
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t got = read(in_fd, buf, BACKUP_IO_CHUNK);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			*where = "read";
			goto out;
		}
		if (got == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)got) != 1) {
			rc = -EIO;
			goto out;
		}
		*size += (uint64_t)got;
		if (out_fd >= 0 && backup_write_all(out_fd, buf,
		    (size_t)got) < 0) {
			rc = -errno;
			*where = "write";
			goto out;
		}
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		rc = -EIO;
		goto out;
	}
	backup_hex(md, hex);
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

/* Remove a set's directory (flat: files only) by name in dir_fd. */
static int
backup_remove_set(int dir_fd, const char *name, char *err, size_t errlen)
{
	int fd;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if ((fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    O_NOFOLLOW)) < 0) {
		backup_err(err, errlen, "open %s: %s", name, strerror(errno));
		return -1;
	}
	if ((d = fdopendir(fd)) == NULL) {
		backup_err(err, errlen, "open %s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) < 0) {
			backup_err(err, errlen, "remove %s/%s: %s", name,
			    de->d_name, strerror(errno));
			rc = -1;
			break;
		}
	}
	closedir(d);
	if (rc == 0 && unlinkat(dir_fd, name, AT_REMOVEDIR) < 0) {
		backup_err(err, errlen, "remove %s: %s", name,
		    strerror(errno));
		rc = -1;
	}
	return rc;
}

/* Copy path into set_fd as name; its SHA-256 (hex) and size out. */
static int
backup_copy_in(int set_fd, const char *path, const char *name, char *hex,
    uint64_t *size, char *err, size_t errlen)
{
	const char *where = "read";
	struct stat st;
	int in_fd, out_fd, rc;

	if ((in_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		backup_err(err, errlen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(in_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		backup_err(err, errlen, "%s: not a regular file", path);
		close(in_fd);
		return -1;
	}
	if ((out_fd = openat(set_fd, name, O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600)) < 0) {
		backup_err(err, errlen, "create the copy of %s: %s", path,
		    strerror(errno));
		close(in_fd);
		return -1;
	}
	rc = backup_pump(in_fd, out_fd, size, hex, &where);
	if (rc == 0 && fsync(out_fd) < 0) {
		rc = -errno;
		where = "write";
	}
	if (close(out_fd) < 0 && rc == 0) {
		rc = -errno;
		where = "write";
	}
	close(in_fd);
	if (rc < 0) {
		backup_err(err, errlen, "copy %s: %s: %s", path, where,
		    strerror(-rc));
		return -1;
	}
	return 0;
}

/* Run check_program path; 0 when it exits 0. */
static int
backup_run_check(const char *check_program, const char *path, char *err,
    size_t errlen)
{
	pid_t pid;
	int status;

	fflush(NULL);
	if ((pid = fork()) < 0) {
		backup_err(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* execv() takes char *const[] for historical reasons; it
		 * does not write to the strings. */
		char *const argv[] = { (char *)(uintptr_t)check_program,
			(char *)(uintptr_t)path, NULL };

		/* Its report goes where ours goes; it has no input. */
		int nul = open("/dev/null", O_RDONLY);

		if (nul >= 0)
			dup2(nul, STDIN_FILENO);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execv(check_program, argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			backup_err(err, errlen, "wait for %s: %s",
			    check_program, strerror(errno));
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		backup_err(err, errlen, "%s %s: exit %d%s", check_program,
		    path, WEXITSTATUS(status), WEXITSTATUS(status) == 127 ?
		    " (could not run it?)" : "");
	else
		backup_err(err, errlen, "%s %s: killed by signal %d",
		    check_program, path, WTERMSIG(status));
	return -1;
}

int
backup_manifest_line(const char *line, char *sha256_hex, uint64_t *size,
    char *name, size_t namelen)
{
	const char *p;
	char *end;
	size_t n;

	if (strncmp(line, "file ", 5) != 0)
		return -1;
	p = line + 5;
	for (int i = 0; i < 64; i++)
		if (!isxdigit((unsigned char)p[i]) ||
		    isupper((unsigned char)p[i]))
			return -1;
	if (p[64] != ' ' || !isdigit((unsigned char)p[65]))
		return -1;
	memcpy(sha256_hex, p, 64);
	sha256_hex[64] = '\0';
	p += 65;
	errno = 0;
	*size = strtoull(p, &end, 10);
	if (errno != 0 || *end != ' ' || (p[0] == '0' && end != p + 1))
		return -1;
	p = end + 1;
	n = strlen(p);
	if (n >= namelen)
		return -1;
	memcpy(name, p, n + 1);
	return backup_file_name_ok(name) ? 0 : -1;
}

/* Read dir_fd/MANIFEST whole (at most BACKUP_MANIFEST_MAX). */
static char *
backup_read_manifest(int set_fd, char *err, size_t errlen)
{
	char *buf;
	size_t len = 0;
	int fd;

	if ((fd = openat(set_fd, BACKUP_MANIFEST, O_RDONLY | O_CLOEXEC)) < 0) {
		backup_err(err, errlen, "open %s: %s", BACKUP_MANIFEST,
		    strerror(errno));
		return NULL;
	}
	if ((buf = malloc(BACKUP_MANIFEST_MAX + 1)) == NULL) {
		backup_err(err, errlen, "out of memory");
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t got = read(fd, buf + len, BACKUP_MANIFEST_MAX + 1 - len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			backup_err(err, errlen, "read %s: %s", BACKUP_MANIFEST,
			    strerror(errno));
			goto fail;
		}
		if (got == 0)
			break;
		len += (size_t)got;
		if (len > BACKUP_MANIFEST_MAX) {
			backup_err(err, errlen, "%s: larger than %d bytes",
			    BACKUP_MANIFEST, BACKUP_MANIFEST_MAX);
			goto fail;
		}
	}
	close(fd);
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		backup_err(err, errlen, "%s: a NUL byte", BACKUP_MANIFEST);
		free(buf);
		return NULL;
	}
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

/* Is name one of the manifest's files? (names: n entries, 256 bytes each) */
static int
backup_listed(const char (*names)[256], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

/* Verify the set open at set_fd; label names it in messages. */
static int
backup_verify_fd(int set_fd, const char *label, struct backup_summary *out,
    char *err, size_t errlen)
{
	char (*names)[256] = NULL;
	char *text, *line, *save = NULL;
	size_t n = 0, lineno = 0;
	DIR *d = NULL;
	struct dirent *de;
	int rc = -1;

	out->files = 0;
	out->bytes = 0;
	out->pruned = 0;
	out->sha256[0] = '\0';
	if ((text = backup_read_manifest(set_fd, err, errlen)) == NULL)
		return -1;
	if ((names = calloc(BACKUP_FILES_MAX, sizeof(*names))) == NULL) {
		backup_err(err, errlen, "out of memory");
		goto out;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char want[65], got[65];
		const char *where = "read";
		uint64_t size, got_size;
		int fd, pump;

		lineno++;
		if (lineno == 1) {
			if (strcmp(line, BACKUP_MANIFEST_HEADER) != 0) {
				backup_err(err, errlen, "%s/%s:1: not \"%s\"",
				    label, BACKUP_MANIFEST,
				    BACKUP_MANIFEST_HEADER);
				goto out;
			}
			continue;
		}
		if (strncmp(line, "created ", 8) == 0 && lineno == 2)
			continue;
		if (n == BACKUP_FILES_MAX || backup_manifest_line(line, want,
		    &size, names[n], sizeof(names[n])) < 0 ||
		    backup_listed((const char (*)[256])names, n, names[n])) {
			backup_err(err, errlen, "%s/%s:%zu: not a file line, "
			    "or one too many", label, BACKUP_MANIFEST, lineno);
			goto out;
		}
		if ((fd = openat(set_fd, names[n], O_RDONLY | O_CLOEXEC |
		    O_NOFOLLOW)) < 0) {
			backup_err(err, errlen, "%s/%s: %s", label, names[n],
			    strerror(errno));
			goto out;
		}
		pump = backup_pump(fd, -1, &got_size, got, &where);
		close(fd);
		if (pump < 0) {
			backup_err(err, errlen, "%s/%s: %s", label, names[n],
			    strerror(-pump));
			goto out;
		}
		if (got_size != size || strcmp(got, want) != 0) {
			backup_err(err, errlen, "%s/%s: %" PRIu64 " bytes, "
			    "sha256 %s; the manifest says %" PRIu64 ", %s",
			    label, names[n], got_size, got, size, want);
			goto out;
		}
		if (n == 0)
			memcpy(out->sha256, got, sizeof(out->sha256));
		out->bytes += size;
		n++;
	}
	if (n == 0) {
		backup_err(err, errlen, "%s/%s: no files listed", label,
		    BACKUP_MANIFEST);
		goto out;
	}
	/* Nothing beside the listed files and the manifest. */
	if ((d = backup_dir_stream(set_fd)) == NULL) {
		backup_err(err, errlen, "%s: %s", label, strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, BACKUP_MANIFEST) == 0 ||
		    backup_listed((const char (*)[256])names, n, de->d_name))
			continue;
		backup_err(err, errlen, "%s/%s: not in the manifest", label,
		    de->d_name);
		goto out;
	}
	out->files = n;
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	free(names);
	free(text);
	return rc;
}

int
backup_verify(const char *setdir, struct backup_summary *out, char *err,
    size_t errlen)
{
	int fd, rc;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", backup_base(setdir));
	if ((fd = open(setdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		backup_err(err, errlen, "open %s: %s", setdir,
		    strerror(errno));
		return -1;
	}
	rc = backup_verify_fd(fd, setdir, out, err, errlen);
	close(fd);
	return rc;
}

/* Set names in dir_fd (oldest first), or NULL with err set. */
static char **
backup_list_fd(int dir_fd, ssize_t *ret_n, char *err, size_t errlen)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;
	struct dirent *de;

	if ((d = backup_dir_stream(dir_fd)) == NULL) {
		backup_err(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		unsigned suffix;
		struct stat st;

		if (!backup_set_name_ok(de->d_name, &suffix) ||
		    fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (n + 2 > cap) {
			size_t ncap = cap == 0 ? 16 : cap * 2;
			char **grown = realloc(names, ncap * sizeof(*names));

			if (grown == NULL)
				goto oom;
			names = grown;
			cap = ncap;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto oom;
		n++;
	}
	closedir(d);
	if (names == NULL && (names = calloc(1, sizeof(*names))) == NULL) {
		backup_err(err, errlen, "out of memory");
		return NULL;
	}
	names[n] = NULL;
	qsort(names, n, sizeof(*names), backup_name_cmp);
	*ret_n = (ssize_t)n;
	return names;
oom:
	closedir(d);
	if (names != NULL) {
		names[n] = NULL;
		backup_names_free(names);
	}
	backup_err(err, errlen, "out of memory");
	return NULL;
}

void
backup_names_free(char **names)
{
	if (names == NULL)
		return;
	for (char **p = names; *p != NULL; p++)
		free(*p);
	free(names);
}

ssize_t
backup_list(const char *dir, char ***ret_names, char *err, size_t errlen)
{
	char msg[256];
	ssize_t n = 0;
	int fd;

	*ret_names = NULL;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT) {
			*ret_names = calloc(1, sizeof(**ret_names));
			if (*ret_names != NULL)
				return 0;
		}
		backup_err(err, errlen, "open %s: %s", dir, strerror(errno));
		return -1;
	}
	*ret_names = backup_list_fd(fd, &n, msg, sizeof(msg));
	close(fd);
	if (*ret_names == NULL) {
		backup_err(err, errlen, "list %s: %s", dir, msg);
		return -1;
	}
	return n;
}

/* Remove .NAME.partial entries: what stores killed midway left. */
static int
backup_remove_partials(int dir_fd, char *err, size_t errlen)
{
	int rc = 0;
	DIR *d;
	struct dirent *de;
	size_t sl = strlen(BACKUP_PARTIAL_SUFFIX);

	if ((d = backup_dir_stream(dir_fd)) == NULL) {
		backup_err(err, errlen, "%s", strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (de->d_name[0] != '.' || n <= sl + 1 ||
		    strcmp(de->d_name + n - sl, BACKUP_PARTIAL_SUFFIX) != 0)
			continue;
		rc = backup_remove_set(dir_fd, de->d_name, err, errlen);
	}
	closedir(d);
	return rc;
}

/* The first free set name for now in dir_fd (its partials are gone:
 * backup_remove_partials() ran under the lock). */
static int
backup_new_name(int dir_fd, time_t now, char *name, size_t len)
{
	struct tm tm;
	char stamp[BACKUP_STAMP_LEN + 1];
	struct stat st;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) !=
	    BACKUP_STAMP_LEN)
		return -1;
	for (unsigned i = 1; i <= BACKUP_SUFFIX_MAX; i++) {
		if (i == 1)
			snprintf(name, len, "%s", stamp);
		else
			snprintf(name, len, "%s.%u", stamp, i);
		if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno == ENOENT)
			return 0;
	}
	return -1;
}

/* Write the manifest of the files in set_fd. */
static int
backup_write_manifest(int set_fd, time_t now, const char (*names)[256],
    const char (*hex)[65], const uint64_t *sizes, size_t n, char *err,
    size_t errlen)
{
	char line[512];
	struct tm tm;
	char when[32] = "?";
	int fd, len, rc = 0;

	if (gmtime_r(&now, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if ((fd = openat(set_fd, BACKUP_MANIFEST, O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600)) < 0) {
		backup_err(err, errlen, "create %s: %s", BACKUP_MANIFEST,
		    strerror(errno));
		return -1;
	}
	len = snprintf(line, sizeof(line), "%s\ncreated %s\n",
	    BACKUP_MANIFEST_HEADER, when);
	if (backup_write_all(fd, line, (size_t)len) < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		len = snprintf(line, sizeof(line), "file %s %" PRIu64 " %s\n",
		    hex[i], sizes[i], names[i]);
		if (backup_write_all(fd, line, (size_t)len) < 0)
			rc = -1;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -1;
	if (rc < 0)
		backup_err(err, errlen, "write %s: %s", BACKUP_MANIFEST,
		    strerror(errno));
	close(fd);
	return rc;
}

/* Keep the newest keep sets of dir_fd; counts what went in *pruned. */
static int
backup_prune(int dir_fd, size_t keep, size_t *pruned, char *err,
    size_t errlen)
{
	ssize_t n = 0;
	char **names = backup_list_fd(dir_fd, &n, err, errlen);
	int rc = 0;

	*pruned = 0;
	if (names == NULL)
		return -1;
	for (ssize_t i = 0; rc == 0 && i + (ssize_t)keep < n; i++) {
		rc = backup_remove_set(dir_fd, names[i], err, errlen);
		if (rc == 0)
			(*pruned)++;
	}
	backup_names_free(names);
	return rc;
}

int
backup_store(const char *dir, const char *const *files, size_t nfiles,
    const char *check_program, size_t keep, time_t now,
    struct backup_summary *out, char *err, size_t errlen)
{
	char (*names)[256] = NULL;
	char (*hex)[65] = NULL;
	uint64_t *sizes = NULL;
	char partial[BACKUP_NAME_MAX + 16], msg[768];
	int dir_fd = -1, lock_fd = -1, set_fd = -1, made = 0, rc = -1;

	memset(out, 0, sizeof(*out));
	if (nfiles == 0 || nfiles > BACKUP_FILES_MAX) {
		backup_err(err, errlen, "between 1 and %d files, not %zu",
		    BACKUP_FILES_MAX, nfiles);
		return -1;
	}
	if (keep < 1 || keep > BACKUP_KEEP_MAX) {
		backup_err(err, errlen, "keep is 1..%d, not %zu",
		    BACKUP_KEEP_MAX, keep);
		return -1;
	}
	names = calloc(nfiles, sizeof(*names));
	hex = calloc(nfiles, sizeof(*hex));
	sizes = calloc(nfiles, sizeof(*sizes));
	if (names == NULL || hex == NULL || sizes == NULL) {
		backup_err(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nfiles; i++) {
		const char *base = backup_base(files[i]);

		if (!backup_file_name_ok(base) ||
		    backup_listed((const char (*)[256])names, i, base)) {
			backup_err(err, errlen, "%s: the base name must be one "
			    "printable word, not hidden, not %s, and differ "
			    "from the other files'", files[i], BACKUP_MANIFEST);
			goto out;
		}
		snprintf(names[i], sizeof(names[i]), "%s", base);
	}

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		backup_err(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		goto out;
	}
	if ((dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		backup_err(err, errlen, "open %s: %s", dir, strerror(errno));
		goto out;
	}
	if ((lock_fd = openat(dir_fd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC,
	    0600)) < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		backup_err(err, errlen, "%s: %s", dir, errno == EWOULDBLOCK ?
		    "another store is running there" : strerror(errno));
		goto out;
	}
	if (backup_remove_partials(dir_fd, msg, sizeof(msg)) < 0) {
		backup_err(err, errlen, "%s: a partial set: %s", dir, msg);
		goto out;
	}
	if (backup_new_name(dir_fd, now, out->name, sizeof(out->name)) < 0) {
		backup_err(err, errlen, "%s: no free set name for this second",
		    dir);
		goto out;
	}
	snprintf(partial, sizeof(partial), ".%s%s", out->name,
	    BACKUP_PARTIAL_SUFFIX);
	if (mkdirat(dir_fd, partial, 0700) < 0) {
		backup_err(err, errlen, "mkdir %s/%s: %s", dir, partial,
		    strerror(errno));
		goto out;
	}
	made = 1;
	if ((set_fd = openat(dir_fd, partial, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) < 0) {
		backup_err(err, errlen, "open %s/%s: %s", dir, partial,
		    strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < nfiles; i++)
		if (backup_copy_in(set_fd, files[i], names[i], hex[i],
		    &sizes[i], err, errlen) < 0)
			goto out;
	if (backup_write_manifest(set_fd, now, (const char (*)[256])names,
	    (const char (*)[65])hex, sizes, nfiles, err, errlen) < 0)
		goto out;
	if (backup_verify_fd(set_fd, partial, out, msg, sizeof(msg)) < 0) {
		backup_err(err, errlen, "read back: %s", msg);
		goto out;
	}
	for (size_t i = 0; check_program != NULL && i < nfiles; i++) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s/%s", dir, partial,
		    names[i]);
		if (backup_run_check(check_program, path, err, errlen) < 0)
			goto out;
	}
	if (fsync(set_fd) < 0 || renameat(dir_fd, partial, dir_fd,
	    out->name) < 0 || fsync(dir_fd) < 0) {
		backup_err(err, errlen, "%s: put %s in place: %s", dir,
		    out->name, strerror(errno));
		goto out;
	}
	made = 0;
	if (backup_prune(dir_fd, keep, &out->pruned, msg, sizeof(msg)) < 0) {
		/* The new set stands; say why an old one does too. */
		backup_err(err, errlen, "%s stored, but retention failed: %s",
		    out->name, msg);
		goto out;
	}
	rc = 0;
out:
	if (set_fd >= 0)
		close(set_fd);
	if (made)
		(void)backup_remove_set(dir_fd, partial, msg, sizeof(msg));
	if (lock_fd >= 0)
		close(lock_fd);
	if (dir_fd >= 0)
		close(dir_fd);
	free(names);
	free(hex);
	free(sizes);
	return rc;
}
