/*
 * Unit tests of core/lib/backup_set.c on a scratch directory: a set's
 * copies and manifest (SHA-256 of known inputs), names within one second,
 * retention after success only, a failed check leaving nothing behind,
 * partial sets of killed stores, verification of tampered sets, the lock,
 * and the manifest line parser.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup_set.h"

/* 2026-11-27T03:15:00Z */
#define NOW ((time_t)1795749300)
/* SHA-256 of "abc" (FIPS 180-2, appendix B.1) */
#define SHA_ABC \
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

struct scratch {
	char root[64];
	char dir[128];  /* root/sets: where the sets go */
	char a[128];    /* root/a.rdb: "abc" */
	char b[128];    /* root/b.txt: 100000 bytes */
};

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int
setup(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));
	char *big;

	assert_non_null(s);
	snprintf(s->root, sizeof(s->root), "/tmp/troika-backup-test.XXXXXX");
	assert_non_null(mkdtemp(s->root));
	snprintf(s->dir, sizeof(s->dir), "%s/sets", s->root);
	snprintf(s->a, sizeof(s->a), "%s/a.rdb", s->root);
	snprintf(s->b, sizeof(s->b), "%s/b.txt", s->root);
	write_file(s->a, "abc", 3);
	big = malloc(100000);
	assert_non_null(big);
	for (int i = 0; i < 100000; i++)
		big[i] = (char)('a' + i % 26);
	write_file(s->b, big, 100000);
	free(big);
	*state = s;
	return 0;
}

static int
teardown(void **state)
{
	struct scratch *s = *state;
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->root);
	assert_int_equal(system(cmd), 0);
	free(s);
	return 0;
}

static char *
read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The sets in dir, oldest first, joined by spaces. */
static void
listed(const char *dir, char *out, size_t len)
{
	char err[256];
	char **names;

	assert_true(backup_list(dir, &names, err, sizeof(err)) >= 0);
	out[0] = '\0';
	for (char **p = names; *p != NULL; p++)
		snprintf(out + strlen(out), len - strlen(out), "%s%s",
		    p == names ? "" : " ", *p);
	backup_names_free(names);
}

static void
store_ok(struct scratch *s, const char *const *files, size_t n, size_t keep,
    time_t now, struct backup_summary *sum)
{
	char err[1024] = "";
	int rc = backup_store(s->dir, files, n, NULL, keep, now, sum, err,
	    sizeof(err));

	if (rc != 0)
		fail_msg("backup_store: %s", err);
}

static void
test_store_writes_copies_and_manifest(void **state)
{
	struct scratch *s = *state;
	const char *files[] = { s->a, s->b };
	struct backup_summary sum, ver;
	char path[256], err[256], list[256];
	char *text, *copy;
	struct stat st;

	store_ok(s, files, 2, 4, NOW, &sum);
	assert_string_equal(sum.name, "20261127T031500Z");
	assert_int_equal(sum.files, 2);
	assert_int_equal(sum.bytes, 100003);
	assert_string_equal(sum.sha256, SHA_ABC);
	assert_int_equal(sum.pruned, 0);

	snprintf(path, sizeof(path), "%s/20261127T031500Z/MANIFEST", s->dir);
	text = read_text(path);
	assert_true(strncmp(text, "troika-backup 1\n"
	    "created 2026-11-27T03:15:00Z\n"
	    "file " SHA_ABC " 3 a.rdb\n"
	    "file ", strlen("troika-backup 1\ncreated 2026-11-27T03:15:00Z\n"
	    "file " SHA_ABC " 3 a.rdb\nfile ")) == 0);
	assert_non_null(strstr(text, " 100000 b.txt\n"));
	free(text);
	snprintf(path, sizeof(path), "%s/20261127T031500Z/a.rdb", s->dir);
	copy = read_text(path);
	assert_string_equal(copy, "abc");
	free(copy);
	/* Private: a backup holds the data. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(s->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	snprintf(path, sizeof(path), "%s/20261127T031500Z", s->dir);
	assert_int_equal(backup_verify(path, &ver, err, sizeof(err)), 0);
	assert_int_equal(ver.files, 2);
	assert_int_equal(ver.bytes, 100003);
	listed(s->dir, list, sizeof(list));
	assert_string_equal(list, "20261127T031500Z");
}

static void
test_names_in_one_second_and_retention(void **state)
{
	struct scratch *s = *state;
	const char *files[] = { s->a };
	struct backup_summary sum;
	char list[512], path[256];

	/* Not sets, whatever retention does: the operator's own things. */
	assert_int_equal(mkdir(s->dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/notes", s->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/20260101T000000Z.old", s->dir);
	assert_int_equal(mkdir(path, 0700), 0);

	for (int i = 0; i < 11; i++)
		store_ok(s, files, 1, 100, NOW, &sum);
	assert_string_equal(sum.name, "20261127T031500Z.11");
	listed(s->dir, list, sizeof(list));
	/* .10 after .9: by number, not by text. */
	assert_string_equal(list, "20261127T031500Z 20261127T031500Z.2 "
	    "20261127T031500Z.3 20261127T031500Z.4 20261127T031500Z.5 "
	    "20261127T031500Z.6 20261127T031500Z.7 20261127T031500Z.8 "
	    "20261127T031500Z.9 20261127T031500Z.10 20261127T031500Z.11");

	/* An hour later, keep 3: the newest three stay. */
	store_ok(s, files, 1, 3, NOW + 3600, &sum);
	assert_string_equal(sum.name, "20261127T041500Z");
	assert_int_equal(sum.pruned, 9);
	listed(s->dir, list, sizeof(list));
	assert_string_equal(list, "20261127T031500Z.10 20261127T031500Z.11 "
	    "20261127T041500Z");
	snprintf(path, sizeof(path), "%s/notes", s->dir);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/20260101T000000Z.old", s->dir);
	assert_int_equal(access(path, F_OK), 0);

	/* keep 1 keeps the one just made. */
	store_ok(s, files, 1, 1, NOW + 7200, &sum);
	assert_int_equal(sum.pruned, 3);
	listed(s->dir, list, sizeof(list));
	assert_string_equal(list, "20261127T051500Z");
}

static void
test_failed_check_leaves_nothing_and_removes_nothing(void **state)
{
	struct scratch *s = *state;
	const char *files[] = { s->a };
	struct backup_summary sum;
	char err[1024], list[256];
	int entries = 0;
	FILE *p;
	char cmd[256], line[256];

	store_ok(s, files, 1, 1, NOW, &sum);
	assert_int_equal(backup_store(s->dir, files, 1, "/bin/false", 1,
	    NOW + 60, &sum, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/bin/false"));
	assert_non_null(strstr(err, "exit 1"));
	/* The old set stays (retention runs after success only) and no
	 * partial set is left. */
	listed(s->dir, list, sizeof(list));
	assert_string_equal(list, "20261127T031500Z");
	snprintf(cmd, sizeof(cmd), "ls -A '%s'", s->dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p) != NULL) {
		entries++;
		assert_true(strcmp(line, ".lock\n") == 0 ||
		    strcmp(line, "20261127T031500Z\n") == 0);
	}
	pclose(p);
	assert_int_equal(entries, 2);

	/* A check that passes. */
	assert_int_equal(backup_store(s->dir, files, 1, "/bin/true", 1,
	    NOW + 60, &sum, err, sizeof(err)), 0);
	listed(s->dir, list, sizeof(list));
	assert_string_equal(list, "20261127T031600Z");
}

static void
test_partial_of_a_killed_store_is_removed(void **state)
{
	struct scratch *s = *state;
	const char *files[] = { s->a };
	struct backup_summary sum;
	char path[256], list[256];

	assert_int_equal(mkdir(s->dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/.20261127T031500Z.partial", s->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.20261127T031500Z.partial/a.rdb",
	    s->dir);
	write_file(path, "half", 4);
	store_ok(s, files, 1, 4, NOW, &sum);
	/* The name the killed store had is free again. */
	assert_string_equal(sum.name, "20261127T031500Z");
	snprintf(path, sizeof(path), "%s/.20261127T031500Z.partial", s->dir);
	assert_int_equal(access(path, F_OK), -1);
	listed(s->dir, list, sizeof(list));
	assert_string_equal(list, "20261127T031500Z");
}

static void
test_verify_finds_tampering(void **state)
{
	struct scratch *s = *state;
	const char *files[] = { s->a, s->b };
	struct backup_summary sum;
	char set[256], path[320], err[1024];

	store_ok(s, files, 2, 4, NOW, &sum);
	snprintf(set, sizeof(set), "%s/%s", s->dir, sum.name);

	/* One byte changed, same size. */
	snprintf(path, sizeof(path), "%s/a.rdb", set);
	write_file(path, "abd", 3);
	assert_int_equal(backup_verify(set, &sum, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "a.rdb: 3 bytes, sha256 "));
	assert_non_null(strstr(err, "the manifest says 3, " SHA_ABC));
	write_file(path, "abc", 3);
	assert_int_equal(backup_verify(set, &sum, err, sizeof(err)), 0);

	/* A file the manifest does not list. */
	snprintf(path, sizeof(path), "%s/extra", set);
	write_file(path, "x", 1);
	assert_int_equal(backup_verify(set, &sum, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "extra: not in the manifest"));
	assert_int_equal(unlink(path), 0);

	/* A listed file missing. */
	snprintf(path, sizeof(path), "%s/b.txt", set);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(backup_verify(set, &sum, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "b.txt: No such file"));

	/* Not a manifest of ours. */
	snprintf(path, sizeof(path), "%s/MANIFEST", set);
	write_file(path, "something else\n", 15);
	assert_int_equal(backup_verify(set, &sum, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "MANIFEST:1: not \"troika-backup 1\""));

	/* A manifest that lists nothing. */
	write_file(path, "troika-backup 1\ncreated x\n", 26);
	assert_int_equal(backup_verify(set, &sum, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no files listed"));
}

static void
test_refused_arguments(void **state)
{
	struct scratch *s = *state;
	const char *dup[] = { s->a, s->a };
	char hidden_path[160], manifest_path[160];
	const char *hidden[] = { hidden_path };
	const char *manifest[] = { manifest_path };
	const char *missing[] = { "/nonexistent/file" };
	const char *dir[] = { "/etc" };
	const char *files[] = { s->a };
	struct backup_summary sum;
	char err[1024], list[256];

	/* Files that exist: only their names can be what is refused. */
	snprintf(hidden_path, sizeof(hidden_path), "%s/.hidden", s->root);
	snprintf(manifest_path, sizeof(manifest_path), "%s/MANIFEST", s->root);
	write_file(hidden_path, "x", 1);
	write_file(manifest_path, "x", 1);
	assert_int_equal(backup_store(s->dir, dup, 2, NULL, 4, NOW, &sum, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "differ from the other files'"));
	assert_int_equal(backup_store(s->dir, hidden, 1, NULL, 4, NOW, &sum,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "the base name must be one printable"));
	assert_int_equal(backup_store(s->dir, manifest, 1, NULL, 4, NOW, &sum,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "the base name must be one printable"));
	assert_int_equal(backup_store(s->dir, files, 1, NULL, 0, NOW, &sum,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "keep is 1..10000, not 0");
	assert_int_equal(backup_store(s->dir, files, 0, NULL, 4, NOW, &sum,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "between 1 and 64 files, not 0");
	assert_int_equal(backup_store(s->dir, missing, 1, NULL, 4, NOW, &sum,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "open /nonexistent/file: No such file or "
	    "directory");
	assert_int_equal(backup_store(s->dir, dir, 1, NULL, 4, NOW, &sum,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "/etc: not a regular file");
	listed(s->dir, list, sizeof(list));
	assert_string_equal(list, "");
}

static void
test_one_store_at_a_time(void **state)
{
	struct scratch *s = *state;
	const char *files[] = { s->a };
	struct backup_summary sum;
	char path[256], err[1024];
	int fd;

	store_ok(s, files, 1, 4, NOW, &sum);
	snprintf(path, sizeof(path), "%s/.lock", s->dir);
	/* Another open file description holds the lock. */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(backup_store(s->dir, files, 1, NULL, 4, NOW + 1, &sum,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "another store is running there"));
	close(fd);
	store_ok(s, files, 1, 4, NOW + 1, &sum);
}

static void
test_manifest_line(void **state)
{
	char hex[65], name[256];
	uint64_t size;

	(void)state;
	assert_int_equal(backup_manifest_line("file " SHA_ABC " 3 a.rdb", hex,
	    &size, name, sizeof(name)), 0);
	assert_string_equal(hex, SHA_ABC);
	assert_int_equal(size, 3);
	assert_string_equal(name, "a.rdb");
	assert_int_equal(backup_manifest_line("file " SHA_ABC " 0 z", hex,
	    &size, name, sizeof(name)), 0);
	assert_int_equal(size, 0);

	/* Upper-case hex, a short digest, a leading zero, no size, a
	 * name with a space, a hidden name, a path, the manifest itself,
	 * a size past 64 bits, a name too long for the buffer. */
	const char *bad[] = {
		"file BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD 3 a",
		"file ba7816bf 3 a",
		"file " SHA_ABC " 03 a",
		"file " SHA_ABC " a",
		"file " SHA_ABC " 3 a b",
		"file " SHA_ABC " 3 .a",
		"file " SHA_ABC " 3 d/a",
		"file " SHA_ABC " 3 MANIFEST",
		"file " SHA_ABC " 18446744073709551616 a",
		"file " SHA_ABC " 3 ",
		"file  " SHA_ABC " 3 a",
		"files " SHA_ABC " 3 a",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (backup_manifest_line(bad[i], hex, &size, name,
		    sizeof(name)) != -1)
			fail_msg("accepted: %s", bad[i]);
	assert_int_equal(backup_manifest_line("file " SHA_ABC " 3 abcdef", hex,
	    &size, name, 6), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_store_writes_copies_and_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_names_in_one_second_and_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_failed_check_leaves_nothing_and_removes_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_partial_of_a_killed_store_is_removed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_finds_tampering,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_arguments, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_one_store_at_a_time,
		    setup, teardown),
		cmocka_unit_test(test_manifest_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
