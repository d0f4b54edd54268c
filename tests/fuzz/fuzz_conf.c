/*
 * libFuzzer target for the configuration loader. The input is a main
 * config file:
 *  - yaml_tree parses it straight from memory;
 *  - conf_load() validates it in full (it takes a path, so the input is
 *    written to a file in a private directory that also holds a conf.d/
 *    with one drop-in, for inputs that say "include: conf.d"), with fake
 *    plugins declaring every option type, and one with a broken table;
 *  - when it loads, conf_print() output must load again and print the
 *    same: quoting in the printer is where a mismatch would hide.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "conf.h"
#include "yaml_tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct troika_option fuzz_tcp_opts[] = {
	{ "host", TROIKA_OPT_STRING, 1, NULL, 0, -1, "" },
	{ "port", TROIKA_OPT_INT, 1, NULL, 1, 65535, "" },
	{ "send", TROIKA_OPT_STRING, 0, NULL, 0, -1, "" },
	{ "expect", TROIKA_OPT_STRING, 0, NULL, 0, -1, "" },
	{ "read_limit", TROIKA_OPT_SIZE, 0, "4KiB", 1, 16 << 20, "" },
	{ NULL, 0, 0, NULL, 0, 0, NULL },
};

static const struct troika_option fuzz_all_opts[] = {
	{ "s", TROIKA_OPT_STRING, 0, "dflt", 0, -1, "" },
	{ "i", TROIKA_OPT_INT, 0, "7", -5, 100, "" },
	{ "b", TROIKA_OPT_BOOL, 0, "yes", 0, -1, "" },
	{ "d", TROIKA_OPT_DURATION, 0, "1500ms", 100, 60000, "" },
	{ "z", TROIKA_OPT_SIZE, 0, "1KiB", 0, 1 << 20, "" },
	{ "l", TROIKA_OPT_STRING_LIST, 0, NULL, 0, -1, "" },
	{ "m", TROIKA_OPT_STRING_MAP, 0, NULL, 0, -1, "" },
	{ "u", TROIKA_OPT_INT, 0, NULL, 1, 0, "" },
	{ NULL, 0, 0, NULL, 0, 0, NULL },
};

static const struct troika_option fuzz_broken_opts[] = {
	{ "port", TROIKA_OPT_INT, 0, "eighty", 1, 65535, "" },
	{ "timeout", TROIKA_OPT_STRING, 0, NULL, 0, -1, "" },
	{ NULL, 0, 0, NULL, 0, 0, NULL },
};

static char fuzz_dir[64];
static char fuzz_main[128];
static char fuzz_printed[128];

static const struct troika_option *
fuzz_lookup(const char *plugin, void *arg)
{
	(void)arg;
	if (strcmp(plugin, "tcp") == 0)
		return fuzz_tcp_opts;
	if (strcmp(plugin, "all") == 0)
		return fuzz_all_opts;
	if (strcmp(plugin, "broken") == 0)
		return fuzz_broken_opts;
	return NULL;
}

static void
fuzz_cleanup(void)
{
	char path[160];

	unlink(fuzz_main);
	unlink(fuzz_printed);
	snprintf(path, sizeof(path), "%s/conf.d/web.yaml", fuzz_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/conf.d", fuzz_dir);
	rmdir(path);
	rmdir(fuzz_dir);
}

static int
fuzz_write(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = data;

	if (fd < 0)
		return -1;
	while (size > 0) {
		ssize_t n = write(fd, p, size);

		if (n < 0) {
			close(fd);
			return -1;
		}
		p += n;
		size -= (size_t)n;
	}
	return close(fd);
}

/*
 * The private directory lives for one input only: libFuzzer ends with
 * _exit(), so nothing registered with atexit() would remove it.
 */
static int
fuzz_setup(void)
{
	static const char dropin[] =
	    "checks:\n"
	    "  - {name: dropin, plugin: tcp, host: h, port: 80}\n"
	    "  - {name: dropin2, plugin: all, l: [a], m: {k: v}}\n";
	char path[160];

	snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/fuzz_conf.XXXXXX");
	if (mkdtemp(fuzz_dir) == NULL)
		return -1;
	snprintf(fuzz_main, sizeof(fuzz_main), "%s/agent.yaml", fuzz_dir);
	snprintf(fuzz_printed, sizeof(fuzz_printed), "%s/printed.yml",
	    fuzz_dir);
	snprintf(path, sizeof(path), "%s/conf.d", fuzz_dir);
	if (mkdir(path, 0700) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/conf.d/web.yaml", fuzz_dir);
	return fuzz_write(path, dropin, sizeof(dropin) - 1);
}

/* conf_print() output without its "  # file:line" comment lines. */
static char *
fuzz_print(const struct agent_conf *conf)
{
	struct evbuffer *b = evbuffer_new();
	char *s, *in, *out;
	size_t len;

	if (b == NULL)
		abort();
	conf_print(conf, b);
	len = evbuffer_get_length(b);
	if ((s = malloc(len + 1)) == NULL)
		abort();
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	for (in = out = s; *in != '\0';) {
		char *eol = strchr(in, '\n');
		size_t n = eol != NULL ? (size_t)(eol - in) + 1 : strlen(in);

		if (strncmp(in, "  # ", 4) != 0) {
			memmove(out, in, n);
			out += n;
		}
		in += n;
	}
	*out = '\0';
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors errs = { 0 };
	struct yaml_tree_node *root;
	struct yaml_tree_error yerr;
	struct agent_conf *conf, *again;
	char *first, *second;

	if (yaml_tree_parse_buf((const char *)data, size, &root, &yerr) == 0)
		yaml_tree_free(root);

	if (fuzz_setup() < 0 || fuzz_write(fuzz_main, data, size) < 0) {
		perror("fuzz_conf: setup");
		abort();
	}
	conf = conf_load(fuzz_main, fuzz_lookup, NULL, 0, &errs);
	if (conf == NULL) {
		if (errs.n == 0)
			abort(); /* a failure must say why */
		conf_errors_clear(&errs);
		fuzz_cleanup();
		return 0;
	}
	if (errs.n != 0)
		abort();
	first = fuzz_print(conf);

	/* With an include, the drop-ins would be read twice on reload. */
	if (conf->include_dir == NULL) {
		if (fuzz_write(fuzz_printed, first, strlen(first)) < 0)
			abort();
		again = conf_load(fuzz_printed, fuzz_lookup, NULL, 0, &errs);
		if (again == NULL) {
			fprintf(stderr, "printed config does not load:\n%s\n",
			    first);
			for (size_t i = 0; i < errs.n; i++)
				fprintf(stderr, "%s\n", errs.msgs[i]);
			abort();
		}
		second = fuzz_print(again);
		if (strcmp(first, second) != 0) {
			fprintf(stderr, "printed config prints differently:\n"
			    "%s\n---\n%s\n", first, second);
			abort();
		}
		/*
		 * The options of a check with an unknown plugin are in its
		 * canonical text but not printed (conf_check has nowhere to
		 * keep them), so only the others must survive the trip.
		 */
		for (size_t i = 0; i < conf->nchecks; i++)
			if (!conf->checks[i].plugin_missing &&
			    strcmp(conf->checks[i].canonical,
			    again->checks[i].canonical) != 0)
				abort();
		free(second);
		conf_free(again);
	}
	free(first);
	conf_free(conf);
	fuzz_cleanup();
	return 0;
}
