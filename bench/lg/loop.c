/*
 * loop.c - the load generator's event loop: level-triggered epoll over every
 * connection, one monotonic clock, and "run until a condition holds or a
 * deadline passes" as the only way to wait, so no phase of a benchmark can hang.
 *
 * Each turn: start connections up to the concurrency limit, let the publishing
 * policy send what is due, wait for events (never longer than the next paced send
 * or a 10 ms tick), dispatch them, and send keep-alive pings that have come due.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "util/error.h"

#define TICK_NS 10000000ull             /* longest wait between turns */
#define PING_INTERVAL_NS 15000000000ull /* each open connection sends a keep-alive this often */
#define MAX_EVENTS 1024

uint64_t sb_lg_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sb_lg_note_error(sb_lg_ctx *c, const char *fmt, ...) {
    if (c->st.first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->st.first_error, sizeof c->st.first_error, fmt, ap);
    va_end(ap);
}

int sb_lg_loop_init(sb_lg_ctx *c) {
    c->ep = epoll_create1(EPOLL_CLOEXEC);
    /* the offset between the clocks, sampled as the tightest of a few tries */
    int64_t best_gap = INT64_MAX;
    for (int i = 0; i < 5; i++) {
        struct timespec a, r, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_REALTIME, &r);
        clock_gettime(CLOCK_MONOTONIC, &b);
        int64_t ma = (int64_t)a.tv_sec * 1000000000 + a.tv_nsec,
                mb = (int64_t)b.tv_sec * 1000000000 + b.tv_nsec;
        if (mb - ma < best_gap) {
            best_gap = mb - ma;
            c->rt_minus_mono = (int64_t)r.tv_sec * 1000000000 + r.tv_nsec - (ma + mb) / 2;
        }
    }
    c->now = sb_lg_clock_ns();
    return c->ep < 0 ? -errno : SB_OK;
}

static void ctl(sb_lg_ctx *c, int op, sb_lg_io *io, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = io};
    epoll_ctl(c->ep, op, io->fd, &ev);
}

void sb_lg_loop_add(sb_lg_ctx *c, sb_lg_io *io, uint32_t events) {
    ctl(c, EPOLL_CTL_ADD, io, events);
}
void sb_lg_loop_mod(sb_lg_ctx *c, sb_lg_io *io, uint32_t events) {
    ctl(c, EPOLL_CTL_MOD, io, events);
}
void sb_lg_loop_del(sb_lg_ctx *c, sb_lg_io *io) {
    ctl(c, EPOLL_CTL_DEL, io, 0);
}

int sb_lg_tcp_connect(const char *host, int port, const char *src_ip, int *in_progress) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return SB_EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src_ip) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (inet_pton(AF_INET, src_ip, &src.sin_addr) != 1 ||
            bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
            int e = -errno;
            close(fd);
            return e ? e : SB_EINVAL;
        }
    }
    *in_progress = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno != EINPROGRESS) {
            int e = -errno;
            close(fd);
            return e;
        }
        *in_progress = 1;
    }
    return fd;
}

static void start_connections(sb_lg_ctx *c) {
    while (c->next_start < c->nconns && c->connecting < c->o.connect_concurrency) {
        c->connecting++;
        sb_lg_conn_start(c, &c->conns[c->next_start++]);
    }
}

/* Spread keep-alives so every open connection sends one per interval, from 15 s after the epoch. */
static void send_pings(sb_lg_ctx *c) {
    if (!c->ping_epoch_ns || c->now < c->ping_epoch_ns + PING_INTERVAL_NS || !c->nconns)
        return;
    uint64_t due = (uint64_t)((double)(c->now - c->ping_epoch_ns - PING_INTERVAL_NS) / PING_INTERVAL_NS *
                              (double)c->nconns) +
                   1;
    while (c->pings_sent < due) {
        sb_lg_conn *cn = &c->conns[c->pings_sent++ % (uint64_t)c->nconns];
        if (cn->state == SB_LG_CS_OPEN)
            sb_lg_conn_ping(c, cn);
    }
}

int sb_lg_run_until(sb_lg_ctx *c, int (*done)(sb_lg_ctx *c), uint64_t deadline_ns) {
    static struct epoll_event events[MAX_EVENTS];
    for (;;) {
        c->now = sb_lg_clock_ns();
        if (done && done(c))
            return 1;
        if (c->now >= deadline_ns)
            return 0;
        start_connections(c);
        if (c->publishing)
            sb_lg_publish_drive(c);
        send_pings(c);
        uint64_t wait = TICK_NS;
        if (deadline_ns - c->now < wait)
            wait = deadline_ns - c->now;
        if (c->publishing && c->o.rate > 0) {
            /* wake for the next paced send: ms granularity, so round down and let it batch */
            uint64_t next = c->publish_start_ns + (uint64_t)((double)(c->seq + 1) * 1e9 / c->o.rate);
            wait = next > c->now ? (next - c->now < wait ? next - c->now : wait) : 0;
        }
        int n = epoll_wait(c->ep, events, MAX_EVENTS, (int)(wait / 1000000));
        if (n < 0 && errno != EINTR)
            return 0;
        c->now = sb_lg_clock_ns();
        for (int i = 0; i < n; i++) {
            sb_lg_io *io = events[i].data.ptr;
            if (io->kind == SB_LG_IO_CONN)
                sb_lg_conn_on_event(c, (sb_lg_conn *)io, events[i].events);
            else
                sb_lg_pub_on_event(c, (sb_lg_pub *)io, events[i].events);
        }
    }
}
