/*
 * faultproxy.c - a fault-injecting HTTP/1.1 proxy for the DynamoDB fault
 * specs. It listens on a loopback port and forwards each request to an
 * upstream (DynamoDB Local), and for a given share of requests does one of:
 *
 *   throttle     answers 400 ThrottlingException; upstream never sees it
 *   error        answers 500 InternalServerError; upstream never sees it
 *   reset-before resets the connection before forwarding
 *   reset-after  forwards, lets upstream commit, then resets instead of
 *                answering: the client cannot know the request succeeded
 *   delay        waits before forwarding
 *
 * Usage: faultproxy LISTEN_PORT UPSTREAM_PORT RATE [SEED [DELAY_MS]]
 * RATE is the share of requests that get a fault (0.2 = 20%). DELAY_MS
 * holds every request that long before forwarding it: a network's round
 * trip, for `make bench` (bench/run.lua, with RATE 0). It prints
 * "listening PORT" once ready (port 0 picks a free one) and, at SIGTERM or
 * SIGINT, one line of counts per fault kind to stdout. Loopback only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { F_NONE, F_THROTTLE, F_ERROR, F_RESET_BEFORE, F_RESET_AFTER, F_DELAY, F_KINDS };
static const char *const KIND_NAMES[F_KINDS] = {"passed",       "throttle",    "error",
                                                "reset-before", "reset-after", "delay"};

static int upstream_port;           /* where requests go */
static double rate;                 /* share of requests that get a fault */
static long delay_ms;               /* every request waits this long first */
static atomic_uint counts[F_KINDS]; /* requests per outcome */
static pthread_mutex_t rng_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stopping;

/* A buffered HTTP message: headers then Content-Length bytes of body. */
typedef struct message {
    char *data; /* malloc'd bytes */
    size_t len; /* bytes in the message */
} message;

static int pick(void) {
    pthread_mutex_lock(&rng_lock);
    double r = drand48();
    int kind = r < rate ? 1 + (int)(drand48() * (F_KINDS - 1)) : F_NONE;
    pthread_mutex_unlock(&rng_lock);
    return kind;
}

/* The length of a chunked body that starts at buf[at] (chunks, then the
 * last chunk of size 0 with no trailers), or 0 while it is incomplete. */
static size_t chunked_end(const char *buf, size_t len, size_t at) {
    while (at < len) {
        const char *eol = memmem(buf + at, len - at, "\r\n", 2);
        if (!eol) return 0;
        size_t size = strtoul(buf + at, NULL, 16);
        size_t next = (size_t)(eol - buf) + 2 + size + 2;
        if (next > len) return 0;
        if (size == 0) return next;
        at = next;
    }
    return 0;
}

/* Reads one whole HTTP message (request or response) from fd. Returns 0,
 * or -1 when the peer closed or sent something this proxy cannot follow.
 * Bodies come with a Content-Length or chunked (DynamoDB Local sends large
 * answers so). */
static int read_message(int fd, message *m) {
    size_t cap = 8192, len = 0, need = 0, head = 0;
    int chunked = 0;
    char *buf = malloc(cap);
    if (!buf) return -1;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            char *n = realloc(buf, cap);
            if (!n) break;
            buf = n;
        }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got <= 0) break;
        len += (size_t)got;
        if (!head) {
            char *end = memmem(buf, len, "\r\n\r\n", 4);
            if (!end) continue;
            head = (size_t)(end - buf) + 4;
            size_t body = 0;
            for (char *p = buf; p < end; p++) {
                if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
                    body = strtoul(p + 15, NULL, 10);
                if ((p == buf || p[-1] == '\n') && strncasecmp(p, "transfer-encoding:", 18) == 0 &&
                    memmem(p, (size_t)(end - p), "chunked", 7))
                    chunked = 1;
            }
            need = head + body;
        }
        if (chunked) need = chunked_end(buf, len, head);
        if (need && len >= need) {
            m->data = buf;
            m->len = len;
            return 0;
        }
    }
    free(buf);
    return -1;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Closes with an RST rather than a FIN, as a dropped connection does. */
static void reset(int fd) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void answer(int fd, int status, const char *reason, const char *type, const char *msg) {
    char body[256], out[512];
    int bl = snprintf(body, sizeof body,
                      "{\"__type\":\"com.amazonaws.dynamodb.v20120810#%s\",\"message\":\"%s\"}",
                      type, msg);
    int ol = snprintf(out, sizeof out,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/x-amz-json-1.0\r\n"
                      "Content-Length: %d\r\n\r\n%s",
                      status, reason, bl, body);
    write_all(fd, out, (size_t)ol);
}

/* No Nagle: each message goes out in one write, at once. */
static void no_delay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int connect_upstream(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)upstream_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    no_delay(fd);
    return fd;
}

static void *serve(void *arg) {
    int client = (int)(intptr_t)arg, up = -1;
    message req = {0}, resp = {0};
    while (!stopping && read_message(client, &req) == 0) {
        int kind = pick();
        atomic_fetch_add(&counts[kind], 1);
        if (kind == F_THROTTLE) {
            answer(client, 400, "Bad Request", "ThrottlingException", "Rate exceeded");
        } else if (kind == F_ERROR) {
            answer(client, 500, "Internal Server Error", "InternalServerError", "injected");
        } else if (kind == F_RESET_BEFORE) {
            reset(client);
            client = -1;
        } else {
            long wait_ms = delay_ms + (kind == F_DELAY ? 300 : 0);
            if (wait_ms > 0)
                nanosleep(&(struct timespec){wait_ms / 1000, wait_ms % 1000 * 1000000L}, NULL);
            if (up < 0) up = connect_upstream();
            if (up < 0 || write_all(up, req.data, req.len) || read_message(up, &resp)) {
                reset(client);
                client = -1;
            } else if (kind == F_RESET_AFTER) {
                reset(client);
                client = -1;
            } else {
                write_all(client, resp.data, resp.len);
            }
            free(resp.data);
            resp.data = NULL;
        }
        free(req.data);
        req.data = NULL;
        if (client < 0) break;
    }
    free(req.data);
    if (client >= 0) close(client);
    if (up >= 0) close(up);
    return NULL;
}

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: faultproxy LISTEN_PORT UPSTREAM_PORT RATE [SEED [DELAY_MS]]\n");
        return 2;
    }
    upstream_port = atoi(argv[2]);
    rate = atof(argv[3]);
    srand48(argc > 4 ? atol(argv[4]) : (long)time(NULL));
    delay_ms = argc > 5 ? atol(argv[5]) : 0;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 64) ||
        getsockname(ls, (struct sockaddr *)&a, &alen)) {
        perror("faultproxy");
        return 1;
    }
    printf("listening %d\n", ntohs(a.sin_port));
    fflush(stdout);
    while (!stopping) {
        int c = accept(ls, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR) continue;
            break;
        }
        no_delay(c);
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
        else
            close(c);
    }
    for (int k = 0; k < F_KINDS; k++)
        printf("%s%s=%u", k ? " " : "", KIND_NAMES[k], atomic_load(&counts[k]));
    printf("\n");
    return 0;
}
