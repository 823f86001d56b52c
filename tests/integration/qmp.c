/* qmp: a minimal QMP client for the tests (QEMU's JSON monitor on a unix socket).
 *
 *   qmp [-t SECONDS] SOCKET COMMAND...
 *
 * Connects to SOCKET, reads the greeting, sends qmp_capabilities, then sends each COMMAND in turn and prints
 * its response (one JSON object per line, as QEMU sends it) on stdout. A COMMAND is either a JSON object
 * ('{"execute":"migrate","arguments":{"uri":"tcp:127.0.0.1:4444"}}') or a bare command name ("query-migrate"),
 * which is sent as {"execute":"NAME"}. Asynchronous events that arrive in between are skipped.
 * Exit: 0 every command returned "return", 1 some command returned "error" (printed like the others),
 * 2 connection, protocol or timeout error (message on stderr). -t bounds each wait for QEMU (default 10 s).
 * Used by tests/e2e/migrate.sh; built into $(O)/tests/qmp by the Makefile; needs nothing but libc. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char buf[1 << 20];
static size_t buf_len;
static int timeout_ms = 10000;

static void die(const char *what)
{
        fprintf(stderr, "qmp: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
        exit(2);
}

/* read_line: the next line from fd (without the newline, NUL-terminated) into line; dies on EOF/timeout. */
static void read_line(int fd, char *line, size_t cap)
{
        for (;;) {
                char *nl = memchr(buf, '\n', buf_len);
                if (nl) {
                        size_t n = (size_t)(nl - buf);
                        if (n >= cap)
                                n = cap - 1;
                        memcpy(line, buf, n);
                        line[n] = '\0';
                        buf_len -= (size_t)(nl + 1 - buf);
                        memmove(buf, nl + 1, buf_len);
                        return;
                }
                if (buf_len == sizeof(buf)) {
                        errno = 0;
                        die("line longer than 1 MiB");
                }
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int r = poll(&p, 1, timeout_ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        die("poll");
                if (r == 0) {
                        errno = 0;
                        die("timeout waiting for QEMU");
                }
                ssize_t got = read(fd, buf + buf_len, sizeof(buf) - buf_len);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got < 0)
                        die("read");
                if (got == 0) {
                        errno = 0;
                        die("QEMU closed the connection");
                }
                buf_len += (size_t)got;
        }
}

static void send_all(int fd, const char *s)
{
        size_t len = strlen(s);
        while (len) {
                ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        die("send");
                s += n;
                len -= (size_t)n;
        }
}

/* first_key: the first key of the JSON object on line ("return", "error", "event", "timestamp", "QMP"). */
static const char *first_key(const char *line, char *key, size_t cap)
{
        const char *p = line;
        size_t n = 0;
        while (*p == ' ' || *p == '\t' || *p == '\r')
                p++;
        if (*p++ != '{')
                return "";
        while (*p == ' ' || *p == '\t')
                p++;
        if (*p++ != '"')
                return "";
        while (*p && *p != '"' && n + 1 < cap)
                key[n++] = *p++;
        key[n] = '\0';
        return key;
}

/* response: reads lines until a command response; prints it; returns 0 for "return", 1 for "error". */
static int response(int fd, char *line, size_t cap)
{
        char key[32];
        for (;;) {
                read_line(fd, line, cap);
                const char *k = first_key(line, key, sizeof(key));
                if (!strcmp(k, "return") || !strcmp(k, "error"))
                        return strcmp(k, "return") != 0;
                if (!strcmp(k, "event") || !strcmp(k, "timestamp") || !*line)
                        continue;
                errno = 0;
                fprintf(stderr, "qmp: unexpected line: %s\n", line);
                exit(2);
        }
}

int main(int argc, char **argv)
{
        static char line[1 << 20];
        int i = 1, rc = 0;
        if (argc > 2 && !strcmp(argv[1], "-t")) {
                timeout_ms = atoi(argv[2]) * 1000;
                if (timeout_ms <= 0)
                        timeout_ms = 10000;
                i = 3;
        }
        if (argc - i < 2) {
                fprintf(stderr, "usage: qmp [-t SECONDS] SOCKET COMMAND...\n");
                return 2;
        }
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(argv[i]) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "qmp: socket path too long: %s\n", argv[i]);
                return 2;
        }
        strcpy(sa.sun_path, argv[i]);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                die("socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                fprintf(stderr, "qmp: connect %s: %s\n", argv[i], strerror(errno));
                return 2;
        }
        char key[32];
        read_line(fd, line, sizeof(line));
        if (strcmp(first_key(line, key, sizeof(key)), "QMP")) {
                fprintf(stderr, "qmp: not a QMP greeting: %s\n", line);
                return 2;
        }
        send_all(fd, "{\"execute\":\"qmp_capabilities\"}\n");
        if (response(fd, line, sizeof(line))) {
                fprintf(stderr, "qmp: qmp_capabilities failed: %s\n", line);
                return 2;
        }
        for (i++; i < argc; i++) {
                const char *c = argv[i];
                while (*c == ' ')
                        c++;
                if (*c == '{') {
                        send_all(fd, c);
                        send_all(fd, "\n");
                } else {
                        send_all(fd, "{\"execute\":\"");
                        send_all(fd, c);
                        send_all(fd, "\"}\n");
                }
                rc |= response(fd, line, sizeof(line));
                printf("%s\n", line);
                fflush(stdout);
        }
        close(fd);
        return rc;
}
