/*
 * haproxy_stat: parse the reply of `show stat <backend> 6 -1;show servers
 * state <backend>` (see haproxy.h for its shape).
 *
 * The text comes from a socket: lines may be missing, repeated, cut,
 * absurdly long or hold NUL bytes. Lines are found with explicit lengths,
 * cells are copied bounded, numbers must be whole numbers, and the table
 * of servers is bounded. A reply that does not end with both outputs'
 * closing empty lines was cut short and is refused.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haproxy.h"

/* Longest cell copied out of a row (names, statuses, numbers). */
#define STAT_CELL_MAX 255

enum stat_col {
	COL_PXNAME,
	COL_SVNAME,
	COL_STATUS,
	COL_SCUR,
	COL_STOT,
	COL_QCUR,
	COL_WEIGHT,
	COL_ACT,
	COL_BCK,
	COL_CHKFAIL,
	COL_DOWNTIME,
	COL_TYPE,
	COL_N,
};

static const char *const stat_col_names[COL_N] = {
	"pxname", "svname", "status", "scur", "stot", "qcur", "weight",
	"act", "bck", "chkfail", "downtime", "type",
};

enum state_col {
	SCOL_BE_NAME,
	SCOL_SRV_NAME,
	SCOL_OP,
	SCOL_ADMIN,
	SCOL_N,
};

static const char *const state_col_names[SCOL_N] = {
	"be_name", "srv_name", "srv_op_state", "srv_admin_state",
};

struct stat_parser {
	struct haproxy_backend *be;
	const char *backend;
	char *err;
	size_t errlen;
	int stat_col[COL_N];   /* index of each column; -1 if absent */
	int state_col[SCOL_N];
};

static int
stat_fail(struct stat_parser *p, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
stat_fail(struct stat_parser *p, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	return r;
}

/* A printable, bounded copy of a line for messages. */
static void
stat_show(const char *s, size_t n, char *out, size_t outlen)
{
	size_t j = 0;

	for (size_t i = 0; i < n && j + 4 < outlen; i++)
		out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (j + 4 >= outlen && n > j) {
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j] = '\0';
}

int
haproxy_name_valid(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > HAPROXY_NAME_MAX)
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
		    *s == '.' || *s == ':'))
			return 0;
	return 1;
}

/*
 * The next CSV cell of line[*pos..n), unquoted into out (at most outlen-1
 * bytes; a longer cell is -E2BIG). HAProxy quotes a cell holding a comma
 * or a quote, doubling the quotes inside. Returns 1 with a cell, 0 at the
 * end of the line, or a negative errno.
 */
static int
stat_csv_cell(const char *line, size_t n, size_t *pos, char *out,
    size_t outlen)
{
	size_t i = *pos, j = 0;
	int quoted;

	if (i > n)
		return 0;
	quoted = i < n && line[i] == '"';
	if (quoted)
		i++;
	for (; i < n; i++) {
		char c = line[i];

		if (quoted && c == '"') {
			if (i + 1 < n && line[i + 1] == '"') {
				i++;
			} else {
				quoted = 0;
				continue;
			}
		} else if (!quoted && c == ',') {
			break;
		}
		if (c == '\0')
			return -EBADMSG;
		if (j + 1 >= outlen)
			return -E2BIG;
		out[j++] = c;
	}
	if (quoted)
		return -EBADMSG;
	out[j] = '\0';
	/* Past the comma; past the end when the line ended. */
	*pos = i + 1;
	return 1;
}

/* Whole number, or empty (NAN). -EINVAL for anything else. */
static int
stat_number(const char *s, double *ret)
{
	char *end;
	long long v;

	if (*s == '\0') {
		*ret = NAN;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*ret = (double)v;
	return 0;
}

static int
stat_header(struct stat_parser *p, const char *line, size_t n)
{
	char cell[STAT_CELL_MAX + 1];
	size_t pos = 2; /* after "# " */
	int idx = 0, r;

	for (int c = 0; c < COL_N; c++)
		p->stat_col[c] = -1;
	while ((r = stat_csv_cell(line, n, &pos, cell, sizeof(cell))) == 1) {
		for (int c = 0; c < COL_N; c++)
			if (strcmp(cell, stat_col_names[c]) == 0 &&
			    p->stat_col[c] == -1)
				p->stat_col[c] = idx;
		if (++idx > 10000)
			return stat_fail(p, -EBADMSG, "show stat: more than "
			    "10000 columns");
	}
	if (r < 0)
		return stat_fail(p, -EBADMSG, "show stat: malformed header");
	for (int c = COL_PXNAME; c <= COL_STATUS; c++)
		if (p->stat_col[c] == -1)
			return stat_fail(p, -EBADMSG, "show stat: no %s column",
			    stat_col_names[c]);
	return 0;
}

static int
stat_add_server(struct stat_parser *p, const char *name, const char *status,
    struct haproxy_server **ret)
{
	struct haproxy_backend *be = p->be;
	struct haproxy_server *s;

	if (haproxy_backend_server(be, name) != NULL)
		return stat_fail(p, -EBADMSG, "show stat: server %s listed "
		    "twice", name);
	if (be->nsrv >= HAPROXY_SERVERS_MAX)
		return stat_fail(p, -EBADMSG, "show stat: more than %d "
		    "servers in backend %s", HAPROXY_SERVERS_MAX, p->backend);
	/* Grow by doubling; nsrv is bounded above. */
	if ((be->nsrv & (be->nsrv - 1)) == 0) {
		size_t cap = be->nsrv == 0 ? 4 : be->nsrv * 2;
		struct haproxy_server *n = realloc(be->srv, cap * sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		be->srv = n;
	}
	s = &be->srv[be->nsrv];
	memset(s, 0, sizeof(*s));
	s->admin = -1;
	s->op = -1;
	s->name = strdup(name);
	s->status = strdup(status);
	be->nsrv++;
	if (s->name == NULL || s->status == NULL)
		return -ENOMEM;
	*ret = s;
	return 0;
}

static int
stat_row(struct stat_parser *p, const char *line, size_t n)
{
	char cells[COL_N][STAT_CELL_MAX + 1];
	char cell[STAT_CELL_MAX + 1];
	double v[COL_N];
	size_t pos = 0;
	int idx = 0, r;
	struct haproxy_server *s = NULL;

	for (int c = 0; c < COL_N; c++)
		cells[c][0] = '\0';
	/* Cells of columns not kept may be long (check_desc): skip them. */
	for (;;) {
		int want = -1;

		for (int c = 0; c < COL_N; c++)
			if (p->stat_col[c] == idx)
				want = c;
		r = stat_csv_cell(line, n, &pos, want >= 0 ? cells[want] : cell,
		    want >= 0 ? sizeof(cells[want]) : sizeof(cell));
		if (r == -E2BIG && want < 0) {
			/* Find the cell's end without keeping it. */
			size_t end = pos;
			int q = 0;

			for (; end < n && (q || line[end] != ','); end++)
				if (line[end] == '"')
					q = !q;
			pos = end + 1;
			r = 1;
		}
		if (r <= 0)
			break;
		idx++;
	}
	if (r < 0)
		return stat_fail(p, -EBADMSG, "show stat: malformed row %d",
		    (int)p->be->nsrv + 1);
	if (idx <= p->stat_col[COL_STATUS] || idx <= p->stat_col[COL_SVNAME])
		return stat_fail(p, -EBADMSG, "show stat: a row has %d cells, "
		    "fewer than the header", idx);
	if (strcmp(cells[COL_PXNAME], p->backend) != 0)
		return 0; /* another proxy; the filter should have left it out */
	for (int c = COL_SCUR; c < COL_TYPE; c++)
		if (stat_number(cells[c], &v[c]) < 0)
			return stat_fail(p, -EBADMSG, "show stat: %s of %s is "
			    "not a number", stat_col_names[c], cells[COL_SVNAME]);
	if (strcmp(cells[COL_SVNAME], "BACKEND") == 0) {
		if (p->be->status != NULL)
			return stat_fail(p, -EBADMSG, "show stat: two BACKEND "
			    "rows");
		if ((p->be->status = strdup(cells[COL_STATUS])) == NULL)
			return -ENOMEM;
		p->be->scur = v[COL_SCUR];
		p->be->stot = v[COL_STOT];
		p->be->act = v[COL_ACT];
		p->be->bck = v[COL_BCK];
		return 0;
	}
	/* type 2 is a server; without the column, anything but FRONTEND. */
	if (p->stat_col[COL_TYPE] >= 0 ? strcmp(cells[COL_TYPE], "2") != 0 :
	    strcmp(cells[COL_SVNAME], "FRONTEND") == 0)
		return 0;
	if (cells[COL_SVNAME][0] == '\0')
		return stat_fail(p, -EBADMSG, "show stat: a server without a "
		    "name");
	if ((r = stat_add_server(p, cells[COL_SVNAME], cells[COL_STATUS],
	    &s)) < 0)
		return r;
	s->scur = v[COL_SCUR];
	s->stot = v[COL_STOT];
	s->qcur = v[COL_QCUR];
	s->weight = v[COL_WEIGHT];
	s->chkfail = v[COL_CHKFAIL];
	s->downtime = v[COL_DOWNTIME];
	return 0;
}

/*
 * The next space-separated word of line[*pos..n) into out; 1, 0 at the
 * end, or -E2BIG.
 */
static int
stat_word(const char *line, size_t n, size_t *pos, char *out, size_t outlen)
{
	size_t i = *pos, j = 0;

	while (i < n && line[i] == ' ')
		i++;
	if (i >= n)
		return 0;
	for (; i < n && line[i] != ' '; i++) {
		if (line[i] == '\0' || j + 1 >= outlen)
			return -E2BIG;
		out[j++] = line[i];
	}
	out[j] = '\0';
	*pos = i;
	return 1;
}

static int
state_header(struct stat_parser *p, const char *line, size_t n)
{
	char w[STAT_CELL_MAX + 1];
	size_t pos = 1; /* after "#" */
	int idx = 0, r;

	for (int c = 0; c < SCOL_N; c++)
		p->state_col[c] = -1;
	while ((r = stat_word(line, n, &pos, w, sizeof(w))) == 1) {
		for (int c = 0; c < SCOL_N; c++)
			if (strcmp(w, state_col_names[c]) == 0 &&
			    p->state_col[c] == -1)
				p->state_col[c] = idx;
		if (++idx > 10000)
			break;
	}
	if (r < 0 || idx > 10000)
		return stat_fail(p, -EBADMSG, "show servers state: malformed "
		    "header");
	for (int c = 0; c < SCOL_N; c++)
		if (p->state_col[c] == -1)
			return stat_fail(p, -EBADMSG, "show servers state: no "
			    "%s column", state_col_names[c]);
	return 0;
}

static int
state_int(const char *s, int *ret)
{
	double d;

	if (stat_number(s, &d) < 0 || isnan(d) || d > 0xffff)
		return -EINVAL;
	*ret = (int)d;
	return 0;
}

static int
state_row(struct stat_parser *p, const char *line, size_t n)
{
	char w[SCOL_N][STAT_CELL_MAX + 1];
	char skip[STAT_CELL_MAX + 1];
	size_t pos = 0;
	int idx = 0, r, need = 0;
	struct haproxy_server *s;

	for (int c = 0; c < SCOL_N; c++)
		if (p->state_col[c] > need)
			need = p->state_col[c];
	while (idx <= need) {
		int want = -1;

		for (int c = 0; c < SCOL_N; c++)
			if (p->state_col[c] == idx)
				want = c;
		r = stat_word(line, n, &pos, want >= 0 ? w[want] : skip,
		    STAT_CELL_MAX + 1);
		if (r <= 0)
			return stat_fail(p, -EBADMSG, "show servers state: "
			    "malformed row");
		idx++;
	}
	if (strcmp(w[SCOL_BE_NAME], p->backend) != 0)
		return 0;
	s = (struct haproxy_server *)(uintptr_t)haproxy_backend_server(p->be,
	    w[SCOL_SRV_NAME]);
	if (s == NULL)
		return 0; /* added between the two commands: stat decides */
	if (state_int(w[SCOL_OP], &s->op) < 0 ||
	    state_int(w[SCOL_ADMIN], &s->admin) < 0)
		return stat_fail(p, -EBADMSG, "show servers state: bad state "
		    "of %s", s->name);
	return 0;
}

enum stat_step {
	STEP_STAT_HEADER,
	STEP_STAT_ROWS,
	STEP_STATE_VERSION,
	STEP_STATE_HEADER,
	STEP_STATE_ROWS,
	STEP_END,
};

int
haproxy_stat_parse(struct haproxy_backend *be, const char *buf, size_t len,
    const char *backend, char *err, size_t errlen)
{
	struct stat_parser p = {
		.be = be, .backend = backend, .err = err, .errlen = errlen,
	};
	enum stat_step step = STEP_STAT_HEADER;
	size_t off = 0;
	char shown[80];
	int r;

	if (errlen > 0)
		err[0] = '\0';
	while (off < len && step != STEP_END) {
		const char *line = buf + off;
		const char *nl = memchr(line, '\n', len - off);
		size_t n;

		if (nl == NULL)
			break; /* a last line without its newline: cut short */
		n = (size_t)(nl - line);
		off += n + 1;
		switch (step) {
		case STEP_STAT_HEADER:
			if (n >= 9 && memcmp(line, "# pxname,", 9) == 0) {
				if ((r = stat_header(&p, line, n)) < 0)
					return r;
				step = STEP_STAT_ROWS;
				break;
			}
			stat_show(line, n, shown, sizeof(shown));
			if (strcmp(shown, "No such proxy.") == 0)
				return stat_fail(&p, -ENOENT, "HAProxy has no "
				    "backend %s", backend);
			return stat_fail(&p, -EBADMSG, "HAProxy answered "
			    "\"%s\"", shown);
		case STEP_STAT_ROWS:
			if (n == 0) {
				step = STEP_STATE_VERSION;
				break;
			}
			if ((r = stat_row(&p, line, n)) < 0)
				return r;
			break;
		case STEP_STATE_VERSION:
			stat_show(line, n, shown, sizeof(shown));
			if (strcmp(shown, "1") == 0) {
				step = STEP_STATE_HEADER;
				break;
			}
			if (strcmp(shown, "Can't find backend.") == 0)
				return stat_fail(&p, -ENOENT, "HAProxy has no "
				    "backend %s", backend);
			return stat_fail(&p, -EBADMSG, "show servers state "
			    "answered \"%s\"", shown);
		case STEP_STATE_HEADER:
			if (n < 2 || line[0] != '#')
				return stat_fail(&p, -EBADMSG, "show servers "
				    "state: no header");
			if ((r = state_header(&p, line, n)) < 0)
				return r;
			step = STEP_STATE_ROWS;
			break;
		case STEP_STATE_ROWS:
			if (n == 0) {
				step = STEP_END;
				break;
			}
			if ((r = state_row(&p, line, n)) < 0)
				return r;
			break;
		case STEP_END:
			break;
		}
	}
	if (step != STEP_END)
		return stat_fail(&p, -EBADMSG, "reply cut short (%zu bytes, "
		    "%s)", len, step <= STEP_STAT_ROWS ? "in show stat" :
		    "in show servers state");
	if (be->status == NULL)
		return stat_fail(&p, -ENOENT, "HAProxy has no backend %s",
		    backend);
	return 0;
}

void
haproxy_backend_clear(struct haproxy_backend *be)
{
	if (be == NULL)
		return;
	for (size_t i = 0; i < be->nsrv; i++) {
		free(be->srv[i].name);
		free(be->srv[i].status);
	}
	free(be->srv);
	free(be->status);
	memset(be, 0, sizeof(*be));
}

const struct haproxy_server *
haproxy_backend_server(const struct haproxy_backend *be, const char *name)
{
	for (size_t i = 0; i < be->nsrv; i++)
		if (be->srv[i].name != NULL && strcmp(be->srv[i].name, name) == 0)
			return &be->srv[i];
	return NULL;
}

/* 1 if status is word, alone or followed by a space ("UP 1/3"). */
static int
stat_status_is(const char *status, const char *word)
{
	size_t n = strlen(word);

	return strncmp(status, word, n) == 0 &&
	    (status[n] == '\0' || status[n] == ' ');
}

const char *
haproxy_server_state(const struct haproxy_server *s)
{
	if (s->admin >= 0 && (s->admin & HAPROXY_ADMF_MAINT))
		return "MAINT";
	if (s->admin >= 0 && (s->admin & HAPROXY_ADMF_DRAIN))
		return "DRAIN";
	/* Without show servers state, show stat's words must do. */
	if (s->admin < 0 && stat_status_is(s->status, "MAINT") &&
	    strstr(s->status, "resolution") == NULL)
		return "MAINT";
	if (stat_status_is(s->status, "UP") ||
	    strcmp(s->status, "no check") == 0)
		return "UP";
	/* A weight set to 0 by an operator shows as DRAIN too. */
	if (stat_status_is(s->status, "DRAIN"))
		return "DRAIN";
	/* Down, going up, or in maintenance nobody chose (resolution). */
	if (stat_status_is(s->status, "DOWN") ||
	    stat_status_is(s->status, "MAINT"))
		return "DOWN";
	if (stat_status_is(s->status, "NOLB"))
		return "NOLB";
	return s->status[0] != '\0' ? s->status : "UNKNOWN";
}

int
haproxy_server_disabled(const struct haproxy_server *s)
{
	const char *st = haproxy_server_state(s);

	return strcmp(st, "MAINT") == 0 || strcmp(st, "DRAIN") == 0;
}

int
haproxy_server_up(const struct haproxy_server *s)
{
	return stat_status_is(s->status, "UP") ||
	    stat_status_is(s->status, "DRAIN") ||
	    strcmp(s->status, "no check") == 0;
}
