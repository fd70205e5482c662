/*  toolutil.c: helpers shared by the command-line tools. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "toolutil.h"

static long long
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or the deadline; 1 when ready. */
static int
s_wait(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - s_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, events, 0};
        int rc = poll(&p, 1, (int)left);
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return 0;
    }
}

int
tool_http_get(const char *hostport, const char *path, int timeout_ms, int *status,
              char **body)
{
    *body = NULL;
    const char *colon = strrchr(hostport, ':');
    char host[64];
    if (!colon || (size_t)(colon - hostport) >= sizeof(host))
        return -1;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
    long port = strtol(colon + 1, NULL, 10);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (strcmp(host, "0.0.0.0") == 0) /* a wildcard listener: ask it locally */
        snprintf(host, sizeof(host), "127.0.0.1");
    if (port < 1 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    long long deadline = s_now_ms() + timeout_ms;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (!s_wait(fd, POLLOUT, deadline)
        || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) || soerr) {
        close(fd);
        return -1;
    }
    /* path and hostport are the caller's, of any length: sized first */
    static const char *form = "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n";
    int n = snprintf(NULL, 0, form, path, hostport);
    char *req = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (req)
        snprintf(req, (size_t)n + 1, form, path, hostport);
    if (!req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        free(req);
        close(fd);
        return -1;
    }
    free(req);
    size_t cap = 1 << 16, used = 0, max = 4u << 20;
    char *buf = malloc(cap + 1);
    while (buf && s_wait(fd, POLLIN, deadline)) {
        if (used == cap) {
            if (cap >= max)
                break;
            char *grown = realloc(buf, cap * 2 + 1);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        }
        ssize_t got = recv(fd, buf + used, cap - used, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0)
            break;
        used += (size_t)got;
    }
    close(fd);
    if (!buf)
        return -1;
    buf[used] = '\0';
    char *head_end = strstr(buf, "\r\n\r\n");
    int code = 0;
    if (!head_end || sscanf(buf, "HTTP/%*d.%*d %d", &code) != 1) {
        free(buf);
        return -1;
    }
    *status = code;
    *body = strdup(head_end + 4);
    free(buf);
    return *body ? 0 : -1;
}

int
tool_file_value(const char *path, const char *key, char sep, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[4096];
    size_t klen = strlen(key);
    int rc = -1;
    while (rc < 0 && fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0 && line[klen] == sep) {
            char *v = line + klen + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\r\n")] = '\0';
            rc = (size_t)snprintf(out, len, "%s", v) < len ? 0 : -2;
        }
    fclose(f);
    return rc == 0 ? 0 : -1;
}

long
tool_proc_kib(int pid, const char *key)
{
    char path[64], value[64];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (pid <= 0 || tool_file_value(path, key, ':', value, sizeof(value)) != 0)
        return -1;
    return atol(value);
}

int
tool_wait_text(const char *path, const char *text, long from, int timeout_ms)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t deadline = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
    for (;;) {
        FILE *f = fopen(path, "r");
        if (f) {
            fseek(f, from, SEEK_SET);
            char line[2048];
            while (fgets(line, sizeof(line), f))
                if (strstr(line, text)) {
                    fclose(f);
                    return 0;
                }
            fclose(f);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 >= deadline)
            return -1;
        struct timespec pause = {0, 10 * 1000000};
        nanosleep(&pause, NULL);
    }
}
