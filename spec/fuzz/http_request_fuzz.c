/*
 * http_request_fuzz.c - libFuzzer harness for HTTP request handling: each
 * input is sent as raw bytes to a real aeon-host server (the sanitized
 * build, serving spec/fixtures/http-app.lua on a store in a temporary
 * directory, over loopback), which must answer or close and stay alive. The server is a
 * child process, so coverage guides only the request bytes; a crash or a
 * sanitizer report in the server shows as its exit, and this harness
 * aborts with the input that did it.
 *
 * AEON_FUZZ_HOST names the aeon-host to run (default
 * build/sanitize/aeon-host, made by `make sanitize`).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t server;        /* the aeon-host child */
static unsigned short port; /* where it listens */

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* A kept-alive connection stays open after the answer: wait briefly. */
    struct timeval tv = {0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static unsigned short free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void stop_server(void) {
    if (server > 0) kill(server, SIGTERM);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    const char *host = getenv("AEON_FUZZ_HOST");
    if (!host) host = "build/sanitize/aeon-host";
    port = free_port();
    char listen[32], dir[] = "/tmp/aeon-http-fuzz-XXXXXX", uri[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    if (!mkdtemp(dir)) return 1;
    snprintf(uri, sizeof uri, "sqlite:%s/fuzz.db", dir);
    server = fork();
    if (server == 0) {
        setenv("AEON_LUA_PATH", "lua/?.lua;lua/?/init.lua", 1); /* the tree's library */
        execl(host, host, "--store", uri, "serve", "spec/fixtures/http-app.lua", "--listen", listen,
              "--workers", "2", "--max-body", "65536", "--timeout", "2", "--log-level", "error",
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        int fd = dial();
        if (fd >= 0) {
            close(fd);
            atexit(stop_server);
            return 0;
        }
        usleep(50000);
    }
    fprintf(stderr, "http_request_fuzz: %s did not start listening\n", host);
    exit(1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = dial();
    if (fd >= 0) {
        if (write(fd, data, size) >= 0) {
            shutdown(fd, SHUT_WR);
            char buf[4096];
            while (read(fd, buf, sizeof buf) > 0) {}
        }
        close(fd);
    }
    int status;
    if (waitpid(server, &status, WNOHANG) == server) {
        fprintf(stderr, "http_request_fuzz: the server died (status %d) on this input\n", status);
        server = 0;
        abort();
    }
    return 0;
}
