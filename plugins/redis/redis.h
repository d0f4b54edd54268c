/*
 * Internal interfaces of the redis plugin: the connection (redis_link.c)
 * and the INFO parser (redis_info.c). redis.c holds the plugin itself.
 */
#ifndef TROIKA_REDIS_H
#define TROIKA_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redisReply;
struct redis_link;

/* How a connection ended; the first three are certain evidence. */
enum redis_loss {
	REDIS_LOSS_REFUSED = 1, /* connect refused */
	REDIS_LOSS_RESET,       /* reset, broken pipe */
	REDIS_LOSS_CLOSED,      /* the server closed it (end of file) */
	REDIS_LOSS_PROTOCOL,    /* not RESP: garbage, or not a Redis server */
	REDIS_LOSS_TOO_LARGE,   /* a reply past max_reply */
	REDIS_LOSS_UNSOLICITED, /* data nobody asked for */
	REDIS_LOSS_OTHER,       /* any other socket error */
};

struct redis_link_ops {
	/* The TCP connection is up; commands may be sent. */
	void (*connected)(void *arg);
	/* The reply to the command sent with redis_link_command(). */
	void (*reply)(void *arg, const struct redisReply *reply);
	/*
	 * The connection is over (connect failed, broke, or was dropped for
	 * a protocol violation); why is one line. The link may be freed
	 * only later, from the event loop, never inside this callback.
	 */
	void (*lost)(void *arg, enum redis_loss loss, const char *why);
};

/*
 * Start connecting to ip:port (numeric). Returns 0 with *ret_link set,
 * or a negative errno with why filled in when it failed at once
 * (-ECONNREFUSED for a refused connect). ops and arg must outlive the
 * link. No callback is called before this returns.
 */
int redis_link_open(struct event_base *base, const char *ip, int port,
    size_t max_reply, const struct redis_link_ops *ops, void *arg,
    struct redis_link **ret_link, char *why, size_t whylen);

/*
 * Send one command; its reply comes through ops->reply. One command at a
 * time: -EBUSY while a reply is due, -ENOTCONN once the link is lost.
 */
int redis_link_command(struct redis_link *l, int argc, const char **argv);

/* 1 while connected and nothing unexpected is waiting on the socket. */
int redis_link_usable(struct redis_link *l);

/* 1 while a reply is due. */
int redis_link_busy(const struct redis_link *l);

/* Close the connection (no callback) and free the link. Accepts NULL.
 * Never from inside an ops callback. */
void redis_link_free(struct redis_link *l);

/* 1 for losses that are certain evidence (refused, reset, closed). */
int redis_loss_is_certain(enum redis_loss loss);

/* One key:value line of an INFO reply. */
struct redis_info_kv {
	const char *key;
	const char *value;
};

/* A replica line of a master's INFO: slaveN:ip=..,port=..,state=.. */
struct redis_info_replica {
	const char *name; /* "slave0" */
	const char *ip;
	const char *port;
	const char *state;
	int64_t offset; /* -1 if absent */
	int64_t lag;    /* -1 if absent */
};

/* A keyspace line: dbN:keys=..,expires=.. */
struct redis_info_db {
	const char *db; /* "db0" */
	int64_t keys;
	int64_t expires;
};

#define REDIS_INFO_MAX_REPLICAS 32
#define REDIS_INFO_MAX_DBS 64

/* A parsed INFO reply; it owns a copy of the text. */
struct redis_info {
	char *text;
	char *extra; /* copies of replica and keyspace values, split up */
	struct redis_info_kv *kv;
	size_t nkv;
	struct redis_info_replica replicas[REDIS_INFO_MAX_REPLICAS];
	size_t nreplicas;
	size_t replicas_skipped; /* past REDIS_INFO_MAX_REPLICAS */
	struct redis_info_db dbs[REDIS_INFO_MAX_DBS];
	size_t ndbs;
};

/* Parse len bytes of INFO text. Returns 0 or -ENOMEM. Lines that are not
 * key:value are skipped. */
int redis_info_parse(struct redis_info *info, const char *text, size_t len);
/* Free what parse allocated and zero the struct. Accepts a zeroed one. */
void redis_info_clear(struct redis_info *info);
/* The value of key, or NULL. */
const char *redis_info_get(const struct redis_info *info, const char *key);
/* The value of key as a number: 0, -ENOENT (absent) or -EINVAL. */
int redis_info_double(const struct redis_info *info, const char *key,
    double *ret);
int redis_info_int(const struct redis_info *info, const char *key,
    int64_t *ret);

#endif
