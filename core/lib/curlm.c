#include "curlm.h"

#include <sys/queue.h>

#include <errno.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "log.h"

/* Our bookkeeping of one transfer, found by its easy handle. */
struct curlm_xfer {
	LIST_ENTRY(curlm_xfer) entry;
	CURL *easy;
	curlm_done_fn done;
	void *arg;
};

/* One socket libcurl asked us to watch; attached with curl_multi_assign. */
struct curlm_sock {
	LIST_ENTRY(curlm_sock) entry;
	struct curlm *cm;
	struct event *ev;
};

struct curlm {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	LIST_HEAD(, curlm_xfer) xfers;
	LIST_HEAD(, curlm_sock) socks;
	int nxfers;
};

/*
 * curl_global_init() is not reentrant and must run before any other curl
 * call; curlm_new() runs on the loop thread at start-up, so a plain flag
 * is enough. There is no matching curl_global_cleanup(): other modules
 * (alert webhooks) may use curl after the last multi handle is gone, and
 * process exit releases it.
 */
static int curlm_global_done;

static struct curlm_xfer *
curlm_find(const struct curlm *cm, const void *easy)
{
	struct curlm_xfer *x;

	LIST_FOREACH(x, &cm->xfers, entry)
		if (x->easy == easy)
			return x;
	return NULL;
}

/* Deliver every finished transfer; done may add or remove others. */
static void
curlm_check_done(struct curlm *cm)
{
	struct curlm_xfer *x;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(cm->multi, &left)) != NULL) {
		CURL *easy;
		curlm_done_fn done;
		void *arg;
		CURLcode code;

		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg is invalid once the handle is removed: copy first. */
		easy = msg->easy_handle;
		code = msg->data.result;
		if ((x = curlm_find(cm, easy)) == NULL)
			continue; /* removed meanwhile */
		curl_multi_remove_handle(cm->multi, easy);
		LIST_REMOVE(x, entry);
		cm->nxfers--;
		done = x->done;
		arg = x->arg;
		free(x);
		done(easy, (int)code, arg);
	}
}

static void
curlm_socket_action(struct curlm *cm, curl_socket_t fd, int action)
{
	CURLMcode rc;
	int running;

	rc = curl_multi_socket_action(cm->multi, fd, action, &running);
	if (rc != CURLM_OK)
		log_warnx("curlm: socket_action: %s", curl_multi_strerror(rc));
	curlm_check_done(cm);
}

static void
curlm_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct curlm_sock *s = arg;
	int action = 0;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	/* s may be freed by libcurl's socket callback from here on. */
	curlm_socket_action(s->cm, fd, action);
}

static void
curlm_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	curlm_socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void
curlm_sock_free(struct curlm_sock *s)
{
	LIST_REMOVE(s, entry);
	event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: what libcurl wants watched on socket fd. */
static int
curlm_socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *socketp)
{
	struct curlm *cm = userp;
	struct curlm_sock *s = socketp;
	short kind = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			curlm_sock_free(s);
		return 0;
	}

	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->cm = cm;
		if ((s->ev = event_new(cm->base, fd, kind, curlm_sock_cb,
		    s)) == NULL) {
			free(s);
			return -1;
		}
		LIST_INSERT_HEAD(&cm->socks, s, entry);
		curl_multi_assign(cm->multi, fd, s);
	} else {
		event_del(s->ev);
	}

	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (!(kind & (EV_READ | EV_WRITE)))
		return 0; /* CURL_POLL_NONE: keep it, watch nothing */
	/* Allowed on an event from event_new() while it is not pending. */
	event_assign(s->ev, cm->base, fd, kind, curlm_sock_cb, s);
	if (event_add(s->ev, NULL) == -1)
		return -1;
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: when to call socket_action with no socket. */
static int
curlm_timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	struct curlm *cm = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(cm->timer);
		return 0;
	}
	/*
	 * 0 means "now", but libcurl calls this from inside its own
	 * functions: act from the loop, through a 0 timer, never recursively.
	 */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(cm->timer, &tv) == -1 ? -1 : 0;
}

struct curlm *
curlm_new(struct event_base *base)
{
	struct curlm *cm;
	CURLcode rc;

	if (base == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (!curlm_global_done) {
		if ((rc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
			log_warnx("curlm: curl_global_init: %s",
			    curl_easy_strerror(rc));
			errno = ENOMEM;
			return NULL;
		}
		curlm_global_done = 1;
	}

	if ((cm = calloc(1, sizeof(*cm))) == NULL)
		return NULL;
	cm->base = base;
	LIST_INIT(&cm->xfers);
	LIST_INIT(&cm->socks);
	if ((cm->timer = evtimer_new(base, curlm_timer_cb, cm)) == NULL ||
	    (cm->multi = curl_multi_init()) == NULL)
		goto fail;
	if (curl_multi_setopt(cm->multi, CURLMOPT_SOCKETFUNCTION,
	    curlm_socket_fn) != CURLM_OK ||
	    curl_multi_setopt(cm->multi, CURLMOPT_SOCKETDATA, cm) != CURLM_OK ||
	    curl_multi_setopt(cm->multi, CURLMOPT_TIMERFUNCTION,
	    curlm_timer_fn) != CURLM_OK ||
	    curl_multi_setopt(cm->multi, CURLMOPT_TIMERDATA, cm) != CURLM_OK)
		goto fail;
	return cm;

fail:
	curlm_free(cm);
	errno = ENOMEM;
	return NULL;
}

int
curlm_add(struct curlm *cm, void *easy, curlm_done_fn done, void *arg)
{
	struct curlm_xfer *x;
	CURLMcode rc;

	if (cm == NULL || easy == NULL || done == NULL)
		return -EINVAL;
	if (curlm_find(cm, easy) != NULL)
		return -EEXIST;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -ENOMEM;
	x->easy = easy;
	x->done = done;
	x->arg = arg;
	/* Before adding: libcurl may call our callbacks from inside. */
	LIST_INSERT_HEAD(&cm->xfers, x, entry);
	cm->nxfers++;

	if ((rc = curl_multi_add_handle(cm->multi, easy)) != CURLM_OK) {
		LIST_REMOVE(x, entry);
		cm->nxfers--;
		free(x);
		log_warnx("curlm: add_handle: %s", curl_multi_strerror(rc));
		switch (rc) {
		case CURLM_OUT_OF_MEMORY:
			return -ENOMEM;
		case CURLM_ADDED_ALREADY:
			return -EEXIST; /* in another multi handle */
		case CURLM_BAD_EASY_HANDLE:
			return -EINVAL;
		default:
			return -EIO;
		}
	}
	return 0;
}

void
curlm_remove(struct curlm *cm, void *easy)
{
	struct curlm_xfer *x;

	if (cm == NULL || (x = curlm_find(cm, easy)) == NULL)
		return; /* finished already, or never added */
	LIST_REMOVE(x, entry);
	cm->nxfers--;
	free(x);
	curl_multi_remove_handle(cm->multi, easy);
}

int
curlm_running(const struct curlm *cm)
{
	return cm != NULL ? cm->nxfers : 0;
}

void
curlm_free(struct curlm *cm)
{
	struct curlm_xfer *x;
	struct curlm_sock *s;

	if (cm == NULL)
		return;
	while ((x = LIST_FIRST(&cm->xfers)) != NULL)
		curlm_remove(cm, x->easy);
	/* Cleanup may still call our socket callback for cached connections. */
	if (cm->multi != NULL)
		curl_multi_cleanup(cm->multi);
	while ((s = LIST_FIRST(&cm->socks)) != NULL)
		curlm_sock_free(s);
	if (cm->timer != NULL)
		event_free(cm->timer);
	free(cm);
}
