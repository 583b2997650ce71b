/* Host (POSIX) board: the protocol on stdin/stdout or a tty path, trigger events to a path or fd.
 * Usage: ffdut [--port TTY] [--trigger PATH|FD] */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "hal.h"
#include "proto.h"

static int fd_in = 0, fd_out = 1, fd_trig = -1;

void hal_init(void) {}

int hal_getc(uint32_t timeout_ms) {
    struct pollfd p = {fd_in, POLLIN, 0};
    int r = poll(&p, 1, (int)timeout_ms);
    if (r < 0 && errno == EINTR) return -1;
    if (r <= 0) {
        if (r < 0) { perror("ffdut: poll"); exit(2); }
        return -1;
    }
    uint8_t c;
    ssize_t n = read(fd_in, &c, 1);
    if (n == 1) return c;
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return -1;
    fprintf(stderr, "ffdut: serial input closed (%s)\n", n == 0 ? "EOF" : strerror(errno));
    exit(n == 0 ? 0 : 2);
}

static void write_all(int fd, const uint8_t *buf, uint32_t n) {
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            perror("ffdut: write");
            exit(2);
        }
        buf += w;
        n -= (uint32_t)w;
    }
}

void hal_write(const uint8_t *buf, uint32_t n) { write_all(fd_out, buf, n); }

uint32_t hal_ticks(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

uint32_t hal_tick_hz(void) { return 1000000000u; }

void hal_trigger(int level, uint32_t work) {
    if (fd_trig < 0) return;
    uint8_t ev[8] = {0x54, (uint8_t)level, 0, 0, (uint8_t)work, (uint8_t)(work >> 8), (uint8_t)(work >> 16),
                     (uint8_t)(work >> 24)};
    write_all(fd_trig, ev, sizeof ev);
}

static int open_or_die(const char *path, int flags) {
    int fd = open(path, flags, 0644);
    if (fd < 0) {
        fprintf(stderr, "ffdut: cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    return fd;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            fd_in = fd_out = open_or_die(argv[++i], O_RDWR | O_NOCTTY);
            struct termios t;
            if (tcgetattr(fd_in, &t) == 0) {
                cfmakeraw(&t);
                tcsetattr(fd_in, TCSANOW, &t);
            }
        } else if (!strcmp(argv[i], "--trigger") && i + 1 < argc) {
            const char *a = argv[++i];
            fd_trig = strspn(a, "0123456789") == strlen(a) ? atoi(a) : open_or_die(a, O_WRONLY | O_CREAT | O_APPEND | O_NOCTTY);
        } else {
            fprintf(stderr, "usage: %s [--port TTY] [--trigger PATH|FD]\n", argv[0]);
            return 2;
        }
    }
    proto_run();
    return 0;
}
