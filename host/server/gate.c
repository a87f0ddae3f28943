/*
 * gate.c - the request head, read before libmicrohttpd reads it (see
 * gate.h).
 *
 * One thread with an epoll set: the listening socket, connections that
 * have not yet sent a whole first head, held kept-alive connections
 * between requests, and refused ones lingering while their client reads
 * the answer. A head is looked at with MSG_PEEK, so a good one is still
 * on the socket, whole, for libmicrohttpd; the checks follow
 * libmicrohttpd's own parser (connection.c, parse_initial_message_line,
 * parse_http_version, process_header_line, parse_connection_headers), so
 * that a head it would refuse is refused here first.
 *
 * Uses POSIX sockets, epoll and pthreads.
 */
#include "gate.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* How long a refused connection is read (and dropped) after its answer, so
 * that closing it with unread bytes does not reset the answer away. */
#define LINGER_SECONDS 2.0
/* How often timeouts are looked at. */
#define TICK_MS 100
#define ANSWER_SIZE 1024

typedef enum stage {
    FIRST,  /* accepted, its first head still arriving */
    HELD,   /* a kept-alive connection of libmicrohttpd's, between requests */
    LINGER, /* refused: answered, read until the client closes */
} stage;

typedef struct entry {
    struct entry *prev, *next;    /* the gate's list */
    stage stage;                  /* where it is */
    int fd;                       /* its socket */
    void *conn;                   /* HELD: libmicrohttpd's connection */
    struct sockaddr_storage addr; /* FIRST: the client's address */
    socklen_t addrlen;            /* its length */
    double since;                 /* entered its stage */
    double heard;                 /* last byte seen */
} entry;

struct gate {
    gate_config cfg;      /* as started */
    int epfd;             /* the epoll set */
    pthread_t thread;     /* the gate's */
    bool started;         /* thread runs */
    pthread_mutex_t lock; /* guards list, count and stopping */
    entry list;           /* every entry (a ring, head) */
    unsigned first;       /* entries in FIRST */
    bool stopping;        /* gate_stop was called */
    char head[GATE_HEAD_MAX + 1];
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* The head                                                            */

static const char *const BAD_LINE =
    "malformed request line: it must be METHOD TARGET HTTP/1.1 (a single space between)";

/* The request line, as parse_initial_message_line and parse_http_version
 * read it; *fields gains the query's parameters. */
static int check_request_line(const char *line, size_t len, int *fields, const char **why) {
    const char *sp = memchr(line, ' ', len), *end = line + len;
    if (memchr(line, 0, len)) return (*why = "the request line holds a NUL byte"), 400;
    if (len > GATE_LINE_MAX) return (*why = "the request line is longer than 8192 bytes"), 414;
    if (!sp || sp == line || line[len - 1] == ' ') return (*why = BAD_LINE), 400;
    const char *uri = sp;
    while (uri < end && *uri == ' ') uri++;
    const char *v = end;
    while (v > uri && v[-1] != ' ') v--;
    if (uri == end || v == uri) return (*why = BAD_LINE), 400;
    if (end - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return (*why = BAD_LINE), 400;
    if (v[5] != '1') return (*why = "unsupported HTTP version: use HTTP/1.1 (or HTTP/1.0)"), 505;
    const char *q = memchr(uri, '?', (size_t)(v - uri));
    for (; q && q < v; q++)
        if (*q == '?' || *q == '&') ++*fields;
    return 200;
}

/* A header line, as process_header_line and parse_connection_headers read
 * it; *fields gains it (and a Cookie header's cookies). */
static int check_header_line(const char *line, size_t len, int *fields, const char **why) {
    if (memchr(line, 0, len)) return (*why = "a header holds a NUL byte"), 400;
    if (*line == ' ' || *line == '\t')
        return (*why = "folded (multi-line) header values are not accepted"), 400;
    const char *colon = memchr(line, ':', len), *end = line + len;
    if (!colon) return (*why = "a header line without a colon"), 400;
    ++*fields;
    size_t klen = (size_t)(colon - line);
    const char *value = colon + 1;
    while (value < end && (*value == ' ' || *value == '\t')) value++;
    if (klen == 6 && strncasecmp(line, "Cookie", 6) == 0)
        for (const char *c = value; c < end; c++)
            if (*c == ';' || *c == ',') ++*fields;
    if (klen != 14 || strncasecmp(line, "Content-Length", 14) != 0) return 200;
    size_t n = (size_t)(end - value);
    if (!n || strspn(value, "0123456789") < n)
        return (*why = "Content-Length must be a number"), 400;
    uint64_t v = 0;
    for (const char *d = value; d < end; d++) {
        if (v > (UINT64_MAX - (uint64_t)(*d - '0')) / 10)
            return (*why = "the body is larger than the limit (--max-body)"), 413;
        v = v * 10 + (uint64_t)(*d - '0');
    }
    return 200;
}

int gate_check_head(const char *head, size_t len, const char **why) {
    size_t i = 0;
    /* libmicrohttpd skips empty lines before a request. */
    while (i < len && (head[i] == '\n' || (head[i] == '\r' && i + 1 < len && head[i + 1] == '\n')))
        i += head[i] == '\r' ? 2 : 1;
    size_t start = i;
    int fields = 0;
    for (bool first = true;; first = false) {
        const char *nl = memchr(head + i, '\n', len - i);
        if (!nl) {
            if (first && len - i > GATE_LINE_MAX)
                return (*why = "the request line is longer than 8192 bytes"), 414;
            if (len - start > GATE_HEAD_MAX)
                return (*why = "the request's headers are larger than 16384 bytes"), 431;
            return 0;
        }
        size_t end = (size_t)(nl - head), next = end + 1;
        if (end > i && head[end - 1] == '\r') end--;
        if (next - start > GATE_HEAD_MAX)
            return (*why = "the request's headers are larger than 16384 bytes"), 431;
        if (!first && end == i) break; /* the empty line: the head is whole */
        int st = first ? check_request_line(head + i, end - i, &fields, why)
                       : check_header_line(head + i, end - i, &fields, why);
        if (st != 200) return st;
        if (fields > GATE_FIELDS_MAX)
            return (*why = "more than 100 header fields, cookies and query parameters"), 431;
        i = next;
    }
    return 200;
}

/* ------------------------------------------------------------------ */
/* Entries                                                             */

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return false;
}

/* Adds e to the set and the list, or frees it (false). */
static bool enter(gate *g, entry *e) {
    e->since = e->heard = now_seconds();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = e};
    pthread_mutex_lock(&g->lock);
    bool ok = !g->stopping && epoll_ctl(g->epfd, EPOLL_CTL_ADD, e->fd, &ev) == 0;
    if (ok) {
        e->next = g->list.next;
        e->prev = &g->list;
        g->list.next->prev = e;
        g->list.next = e;
        if (e->stage == FIRST) g->first++;
    }
    pthread_mutex_unlock(&g->lock);
    return ok;
}

/* Takes e off the set and the list (the caller then hands it on). */
static void leave(gate *g, entry *e) {
    pthread_mutex_lock(&g->lock);
    epoll_ctl(g->epfd, EPOLL_CTL_DEL, e->fd, NULL);
    e->prev->next = e->next;
    e->next->prev = e->prev;
    if (e->stage == FIRST) g->first--;
    pthread_mutex_unlock(&g->lock);
}

/* Ends e: a held connection goes back to libmicrohttpd (shut down first
 * when `cut`, so that it closes it), any other is closed. */
static void finish(gate *g, entry *e, bool cut) {
    leave(g, e);
    if (e->stage == HELD) {
        if (cut) shutdown(e->fd, SHUT_RDWR);
        g->cfg.resume(g->cfg.ctx, e->conn);
    } else
        close(e->fd);
    free(e);
}

static void accept_all(gate *g) {
    for (;;) {
        entry *e = calloc(1, sizeof *e);
        if (!e) return;
        e->addrlen = sizeof e->addr;
        e->fd = accept(g->cfg.listen_fd, (struct sockaddr *)&e->addr, &e->addrlen);
        if (e->fd < 0) {
            free(e);
            return;
        }
        fcntl(e->fd, F_SETFL, fcntl(e->fd, F_GETFL) | O_NONBLOCK);
        fcntl(e->fd, F_SETFD, FD_CLOEXEC);
        unsigned same = 0;
        pthread_mutex_lock(&g->lock);
        bool full = g->first >= g->cfg.max_connections;
        for (entry *o = g->list.next; !full && o != &g->list; o = o->next)
            if (o->stage == FIRST && same_address(&o->addr, &e->addr)) same++;
        pthread_mutex_unlock(&g->lock);
        /* Past a limit the connection is closed at accept, so one address
         * cannot lock the others out. */
        if (full || same >= g->cfg.max_client_addresses || !enter(g, e)) {
            close(e->fd);
            free(e);
        }
    }
}

/* Answers the refused head, then lingers. */
static void refuse(gate *g, entry *e, size_t peeked, int status, const char *why) {
    char answer[ANSWER_SIZE];
    size_t n = g->cfg.refuse(g->cfg.ctx, status, why, e->fd, answer, sizeof answer);
    /* What was looked at is read now, so the socket holds no unread bytes
     * of it; the rest (a client still sending) is read while lingering. */
    while (peeked > 0) {
        ssize_t r = recv(e->fd, g->head, peeked, 0);
        if (r <= 0) break;
        peeked -= (size_t)r;
    }
    if (n) send(e->fd, answer, n, MSG_NOSIGNAL);
    shutdown(e->fd, SHUT_WR);
    if (e->stage == HELD) { /* libmicrohttpd owns the socket: it closes it */
        finish(g, e, true);
        return;
    }
    pthread_mutex_lock(&g->lock);
    g->first--;
    e->stage = LINGER;
    e->since = now_seconds();
    pthread_mutex_unlock(&g->lock);
}

/* Reads and drops what a refused client still sends; closes at its end. */
static void linger(gate *g, entry *e) {
    for (;;) {
        ssize_t r = recv(e->fd, g->head, sizeof g->head, 0);
        if (r > 0) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        finish(g, e, false);
        return;
    }
}

/* Something arrived on e: look at its head so far. */
static void look(gate *g, entry *e) {
    if (e->stage == LINGER) {
        linger(g, e);
        return;
    }
    ssize_t n = recv(e->fd, g->head, sizeof g->head, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) { /* closed or failed before a request: nothing to answer */
        finish(g, e, false);
        return;
    }
    e->heard = now_seconds();
    const char *why = NULL;
    int status = gate_check_head(g->head, (size_t)n, &why);
    if (status == 0) return; /* more to come */
    if (status != 200) {
        refuse(g, e, (size_t)n, status, why);
        return;
    }
    if (e->stage == HELD) {
        finish(g, e, false);
        return;
    }
    leave(g, e);
    g->cfg.admit(g->cfg.ctx, e->fd, (const struct sockaddr *)&e->addr, e->addrlen);
    free(e);
}

/* Cuts what waited too long: a head past --header-timeout, a connection
 * silent past --timeout, a refused one past its linger. */
static void expire(gate *g) {
    double now = now_seconds(), header = g->cfg.header_timeout, idle = g->cfg.idle_timeout;
    for (;;) {
        entry *late = NULL;
        pthread_mutex_lock(&g->lock);
        for (entry *e = g->list.next; e != &g->list && !late; e = e->next) {
            if (e->stage == LINGER ? now - e->since > LINGER_SECONDS
                                   : (header > 0 && now - e->since > header) ||
                                         (idle > 0 && now - e->heard > idle))
                late = e;
        }
        pthread_mutex_unlock(&g->lock);
        if (!late) return;
        finish(g, late, true);
    }
}

static void *gate_main(void *arg) {
    gate *g = arg;
    struct epoll_event events[64];
    for (;;) {
        pthread_mutex_lock(&g->lock);
        bool stopping = g->stopping;
        pthread_mutex_unlock(&g->lock);
        if (stopping) break;
        int n = epoll_wait(g->epfd, events, 64, TICK_MS);
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == g)
                accept_all(g);
            else
                look(g, events[i].data.ptr);
        }
        expire(g);
    }
    /* Stopping: nothing waiting here has a request in flight. */
    while (g->list.next != &g->list) finish(g, g->list.next, true);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Starting and stopping                                               */

int gate_start(const gate_config *cfg, gate **out, char **err) {
    gate *g = calloc(1, sizeof *g);
    *out = NULL;
    if (!g) return (*err = strdup("out of memory")), -1;
    g->cfg = *cfg;
    g->list.next = g->list.prev = &g->list;
    pthread_mutex_init(&g->lock, NULL);
    g->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = g};
    int flags = fcntl(cfg->listen_fd, F_GETFL);
    /* accept_all takes every waiting connection, then finds none. */
    if (flags >= 0) fcntl(cfg->listen_fd, F_SETFL, flags | O_NONBLOCK);
    flags = 0;
    if (g->epfd < 0 || epoll_ctl(g->epfd, EPOLL_CTL_ADD, cfg->listen_fd, &ev) != 0 ||
        (flags = pthread_create(&g->thread, NULL, gate_main, g)) != 0) {
        *err = strdup(flags ? strerror(flags) : strerror(errno));
        g->cfg.listen_fd = -1; /* still the caller's */
        gate_free(g);
        return -1;
    }
    g->started = true;
    *out = g;
    return 0;
}

void gate_hold(gate *g, int fd, void *conn) {
    entry *e = calloc(1, sizeof *e);
    if (e) {
        e->stage = HELD;
        e->fd = fd;
        e->conn = conn;
        if (enter(g, e)) return;
        free(e);
    }
    /* Not held: libmicrohttpd reads the head itself. */
    g->cfg.resume(g->cfg.ctx, conn);
}

void gate_stop(gate *g) {
    if (!g || !g->started) return;
    pthread_mutex_lock(&g->lock);
    g->stopping = true;
    pthread_mutex_unlock(&g->lock);
    shutdown(g->cfg.listen_fd, SHUT_RDWR);
    pthread_join(g->thread, NULL);
    g->started = false;
}

void gate_free(gate *g) {
    if (!g) return;
    gate_stop(g);
    if (g->epfd >= 0) close(g->epfd);
    if (g->cfg.listen_fd >= 0) close(g->cfg.listen_fd);
    pthread_mutex_destroy(&g->lock);
    free(g);
}
