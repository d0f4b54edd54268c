/*
 * `troika-agent action CHECK ACTION [ARG...]` and `troika-agent status`:
 * a short-lived client of the running agent's admin socket. It prints the
 * reply ("key: value" lines) and exits 0 if the action was done, 1 if it
 * failed, 3 if its outcome is unknown, 2 for usage or connection errors.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "admin_proto.h"
#include "agent.h"

/* Long enough for a restart or a Galera bootstrap; the agent enforces the
 * action's own deadline, this only guards against a hung agent. */
#define CLIENT_TIMEOUT_MS (15 * 60 * 1000)
#define CLIENT_MAX_REPLY (1024 * 1024)

static int
client_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "troika-agent: admin socket path too long\n");
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "troika-agent: cannot reach the agent at %s: %s\n",
		    path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int
client_send(int fd, struct evbuffer *req)
{
	while (evbuffer_get_length(req) > 0) {
		if (evbuffer_write(req, fd) < 0 && errno != EINTR) {
			fprintf(stderr, "troika-agent: sending: %s\n", strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Read until the blank line that ends a reply. */
static int
client_receive(int fd, struct evbuffer *reply)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	for (;;) {
		struct evbuffer_ptr end = evbuffer_search(reply, "\n\n", 2, NULL);
		if (end.pos >= 0 || (evbuffer_get_length(reply) == 1 &&
		    evbuffer_pullup(reply, 1)[0] == '\n'))
			return 0;
		if (evbuffer_get_length(reply) > CLIENT_MAX_REPLY) {
			fprintf(stderr, "troika-agent: reply too long\n");
			return -1;
		}
		int r = poll(&pfd, 1, CLIENT_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			fprintf(stderr, "troika-agent: no reply from the agent\n");
			return -1;
		}
		int n = evbuffer_read(reply, fd, 65536);
		if (n == 0) {
			fprintf(stderr, "troika-agent: the agent closed the connection\n");
			return -1;
		}
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "troika-agent: reading: %s\n", strerror(errno));
			return -1;
		}
	}
}

int
agent_client(const char *path, int argc, char **argv)
{
	struct evbuffer *req = evbuffer_new(), *reply = evbuffer_new();
	int fd = -1, rc = 2;
	char *line;

	/* An agent that turns us away closes at once: see its reply, not SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (req == NULL || reply == NULL)
		goto out;
	for (int i = 0; i < argc; i++) {
		if (argv[i][0] == '\0') {
			fprintf(stderr, "troika-agent: empty argument\n");
			goto out;
		}
		if (i > 0)
			evbuffer_add(req, " ", 1);
		admin_put_token(req, argv[i]);
	}
	evbuffer_add(req, "\n", 1);
	if ((fd = client_connect(path)) < 0 || client_send(fd, req) < 0 ||
	    client_receive(fd, reply) < 0)
		goto out;

	rc = 3;
	while ((line = evbuffer_readln(reply, NULL, EVBUFFER_EOL_LF)) != NULL) {
		if (line[0] == '\0') {
			free(line);
			break;
		}
		if (strcmp(line, "result: ok") == 0)
			rc = 0;
		else if (strcmp(line, "result: failed") == 0)
			rc = 1;
		else if (strcmp(line, "result: error") == 0)
			rc = 2;
		admin_unescape_value(line);
		printf("%s\n", line);
		free(line);
	}
out:
	if (fd >= 0)
		close(fd);
	evbuffer_free(req);
	evbuffer_free(reply);
	return rc;
}
