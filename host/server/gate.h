/*
 * gate.h - the request head, read before libmicrohttpd reads it.
 *
 * libmicrohttpd 0.9.75 answers the requests it cannot parse itself (a bad
 * request line, an HTTP version it does not speak, a request line or
 * headers over its buffer, a bad Content-Length), in HTML, before any
 * callback of the server sees them. The gate makes sure it never has to:
 * it owns the listening socket, and for each new connection, and for each
 * kept-alive connection between requests, it looks at the next request's
 * head (MSG_PEEK, nothing consumed) and hands the connection on only when
 * the head is one libmicrohttpd takes; any other is answered here, in JSON,
 * and the connection closed.
 */
#ifndef AEON_GATE_H
#define AEON_GATE_H

#include <stddef.h>
#include <sys/socket.h>

/* The longest request line, the largest head, and the most header fields,
 * cookies and query parameters a request may have; libmicrohttpd's memory
 * pool per connection (GATE_POOL) holds any head within them. */
#define GATE_LINE_MAX 8192
#define GATE_HEAD_MAX 16384
#define GATE_FIELDS_MAX 100
#define GATE_POOL (64 * 1024)

typedef struct gate gate;

typedef struct gate_config {
    int listen_fd;                 /* bound and listening; the gate's from gate_start on */
    double header_timeout;         /* a head not complete this long is cut (0: none) */
    double idle_timeout;           /* a connection silent this long is cut */
    unsigned max_connections;      /* connections waiting here at most */
    unsigned max_client_addresses; /* ... from one client address */
    /* A new connection whose head is good: hand it to libmicrohttpd. */
    void (*admit)(void *ctx, int fd, const struct sockaddr *addr, socklen_t len);
    /* A held connection (gate_hold) is ready (a good head, or it closed). */
    void (*resume)(void *ctx, void *conn);
    /* The answer to a refused head: writes the whole HTTP answer (status
     * line, headers, JSON body) into out, logs and counts it; returns its
     * length. */
    size_t (*refuse)(void *ctx, int status, const char *why, int fd, char *out, size_t size);
    void *ctx; /* for the callbacks */
} gate_config;

/* The status a head asks for: 0 while it is incomplete (and within the
 * limits), 200 when libmicrohttpd may have it, else the refusal (400, 413,
 * 414, 431, 505) with *why. `head` is what has arrived so far. */
int gate_check_head(const char *head, size_t len, const char **why);

/* Starts the gate's thread; 0, or -1 with *err (malloc'd). */
int gate_start(const gate_config *cfg, gate **out, char **err);

/* Takes a libmicrohttpd connection (suspended, its socket fd) that has
 * answered a request and is kept alive: its next head is looked at here,
 * then cfg->resume(conn). From the libmicrohttpd thread. */
void gate_hold(gate *g, int fd, void *conn);

/* Stops accepting and shuts the listening socket at once (new connections
 * are refused), cuts connections still sending their first head, and hands
 * the held ones back (their sockets shut down, so libmicrohttpd closes
 * them). Returns when the thread has ended. */
void gate_stop(gate *g);
void gate_free(gate *g);

#endif
