/*
 * Native SSE readers for bench/live_client.py (--mode sse --native-readers).
 *
 * 10,000 SSE readers at 10 events/s are 100,000 deliveries a second: more than one Python
 * process can parse on one core, so a Python client falls behind and measures its own backlog.
 * This program does only the readers' part, the same way live_client.py does it (one epoll
 * loop, kernel receive timestamps, a bitmap of messages per reader, resumption from the last
 * control event's offset and cursor), and live_client.py keeps the writer, the phases and the
 * scrapes. It is driven by lines on stdin and answers with lines on stdout:
 *
 *   (start)          -> CONNECTED <open connections> <seconds>
 *                       READY <readers subscribed> <seconds>   (first control event each)
 *   TARGET <n>       -> DRAINED <readers with n messages>      (at once, or after --drain s)
 *   CLOSE            -> CLOSED                                 (every reader disconnected)
 *   STORED <i,j,..>  -> RESULT {json}                          (then exits)
 *
 * Messages are the writer's JSON objects {"i": k, "t": <ns since the epoch>, ...}; delivery
 * latency is the kernel receive time (SO_TIMESTAMPNS) of the bytes completing a message - t.
 * Build: gcc -O2 -o sse_readers sse_readers.c -lm  (bench/live_client.py does it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_SIZE (256 * 1024)
#define MAX_HEAD 65536
#define MAX_BLOCK (8 * 1024 * 1024)
#define MAX_RECONNECTS 20
#define MAX_ERRORS 50
#define MAX_STATUS 600

enum { CLOSED, CONNECTING, HEAD, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILER, BODY_LENGTH, BODY_TO_CLOSE };

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

typedef struct {
    int fd, idx, state, status, chunked, keep_alive, done, ready, complete;
    int reconnects, errors, n_seen, dups, pending_reconnect;
    long remaining;
    double reconnect_at;
    Buf head, block;
    char offset[128], cursor[64];
    uint8_t *seen;
} Reader;

typedef struct {
    int64_t *v;
    size_t n, cap;
} Samples;

static struct {
    const char *host, *path;
    int port, readers, appends, batch;
    double connect_timeout, drain;
} opt = {"127.0.0.1", NULL, 0, 0, 0, 100, 120.0, 30.0};

static Reader *readers;
static int ep, target, ready_count, complete_count, connecting_count, stopping, reconnect_pending;
static long recvs, multi_message_recvs, kernel_stamps, foreign, bad_bodies, bad_responses, keepalives;
static long reconnects, connect_failures, responses_200, responses_204, sse_ended;
static long status_errors[MAX_STATUS];
static Samples lat_kernel, lat_user;
static struct sockaddr_in addr;
static int64_t now_tk, now_tu;  /* receive times of the bytes being parsed */
static int messages_this_recv;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void buf_add(Buf *b, const char *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        b->data = realloc(b->data, cap);
        if (!b->data) die("realloc");
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void push(Samples *s, int64_t value) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1 << 16;
        s->v = realloc(s->v, s->cap * sizeof(int64_t));
        if (!s->v) die("realloc");
    }
    s->v[s->n++] = value;
}

/* -- connections ------------------------------------------------------------------------- */

static void send_request(Reader *r) {
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s?offset=%s&live=sse%s%s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", opt.path,
                     r->offset, r->cursor[0] ? "&cursor=" : "", r->cursor, opt.host, opt.port);
    r->state = HEAD;
    r->head.len = 0;
    r->block.len = 0;
    /* A fresh request on an idle connection: the kernel takes it whole or the connection is gone. */
    if (send(r->fd, req, n, MSG_NOSIGNAL) != n) {
        close(r->fd);
        r->fd = -1;
        r->state = CLOSED;
    }
}

static void open_reader(Reader *r) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        connect_failures++;
        r->done = 1;
        return;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r->fd = fd;
    r->state = CONNECTING;
    connecting_count++;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        connect_failures++;
        close(fd);
        r->fd = -1;
        r->state = CLOSED;
        r->done = 1;
        connecting_count--;
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = r};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
}

static void close_reader(Reader *r) {
    if (r->fd >= 0) {
        if (r->state == CONNECTING) connecting_count--;
        close(r->fd); /* (also leaves the epoll set) */
        r->fd = -1;
    }
    r->state = CLOSED;
}

static void lost(Reader *r) {
    close_reader(r);
    if (stopping || r->done) return;
    r->reconnects++;
    reconnects++;
    if (r->reconnects > MAX_RECONNECTS) {
        r->done = 1;
        return;
    }
    r->pending_reconnect = 1;
    r->reconnect_at = mono() + 0.05;
    reconnect_pending++;
}

/* -- what a reader receives ------------------------------------------------------------- */

static void record(Reader *r, long i, int64_t t) {
    if (i < 0 || i >= opt.appends) {
        foreign++;
        return;
    }
    messages_this_recv++;
    if (r->seen[i]) {
        r->dups++;
        return;
    }
    r->seen[i] = 1;
    r->n_seen++;
    push(&lat_kernel, now_tk - t);
    push(&lat_user, now_tu - t);
    if (!r->complete && r->n_seen >= target) {
        r->complete = 1;
        complete_count++;
    }
}

static const char *find(const char *p, const char *end, const char *what) {
    size_t n = strlen(what);
    for (; p + n <= end; p++) {
        p = memchr(p, what[0], end - p);
        if (!p || p + n > end) return NULL;
        if (memcmp(p, what, n) == 0) return p;
    }
    return NULL;
}

static int64_t number_after(const char *p, const char *end, int *ok) {
    while (p < end && (*p == ' ' || *p == ':')) p++;
    int64_t v = 0;
    int digits = 0, negative = 0;
    if (p < end && *p == '-') negative = 1, p++;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) v = v * 10 + (*p - '0');
    *ok = digits > 0;
    return negative ? -v : v;
}

static void data_block(Reader *r, const char *p, const char *end) {
    const char *payload = find(p, end, "data:");
    if (!payload || !find(payload, end, "[")) {
        bad_bodies++;
        return;
    }
    /* Each message is an object; the writer's carry "i" and "t", the closing poke "poke". */
    for (const char *obj = memchr(payload, '{', end - payload); obj; obj = memchr(obj + 1, '{', end - obj - 1)) {
        const char *close_ = memchr(obj, '}', end - obj);
        if (!close_) {
            bad_bodies++;
            return;
        }
        const char *i_at = find(obj, close_, "\"i\""), *t_at = find(obj, close_, "\"t\"");
        int ok_i = 0, ok_t = 0;
        if (i_at && t_at) {
            long i = (long)number_after(i_at + 3, close_, &ok_i);
            int64_t t = number_after(t_at + 3, close_, &ok_t);
            if (ok_i && ok_t) record(r, i, t);
            else foreign++;
        } else if (!find(obj, close_, "\"poke\"")) {
            foreign++;
        }
        obj = close_;
        if (obj + 1 >= end) break;
    }
}

static void copy_value(const char *p, const char *end, char *out, size_t cap, int quoted_only) {
    while (p < end && (*p == ' ' || *p == ':')) p++;
    int quoted = p < end && *p == '"';
    if (quoted_only && !quoted) return;
    if (quoted) p++;
    size_t n = 0;
    for (; p < end && n + 1 < cap; p++) {
        if (quoted ? *p == '"' : (*p == ',' || *p == '}' || *p == ' ' || *p == '\n')) break;
        out[n++] = *p;
    }
    out[n] = 0;
}

static void control_block(Reader *r, const char *p, const char *end) {
    const char *next = find(p, end, "\"streamNextOffset\"");
    const char *cursor = find(p, end, "\"streamCursor\"");
    if (next) copy_value(next + 18, end, r->offset, sizeof r->offset, 1);
    if (cursor) copy_value(cursor + 14, end, r->cursor, sizeof r->cursor, 0);
    const char *closed = find(p, end, "\"streamClosed\"");
    if (closed && find(closed, end, "true")) r->done = 1;
    if (!r->ready) {
        r->ready = 1;
        ready_count++;
    }
}

static int starts(const char *p, size_t n, const char *prefix) {
    size_t k = strlen(prefix);
    return n >= k && memcmp(p, prefix, k) == 0;
}

static void sse_block(Reader *r, const char *p, size_t n) {
    if (n == 0) return;
    if (p[0] == ':') keepalives++;
    else if (starts(p, n, "event: data") || starts(p, n, "event:data")) data_block(r, p, p + n);
    else if (starts(p, n, "event: control") || starts(p, n, "event:control")) control_block(r, p, p + n);
}

/* SSE body bytes: blocks end at a blank line; a partial block waits for the next bytes. */
static void sse_feed(Reader *r, const char *p, size_t n) {
    Buf *b = &r->block;
    for (size_t k = 0; k < n; k++) {
        if (p[k] != '\r') buf_add(b, p + k, 1);
    }
    size_t start = 0;
    for (size_t k = 1; k < b->len; k++) {
        if (b->data[k] == '\n' && b->data[k - 1] == '\n') {
            sse_block(r, b->data + start, k - 1 - start);
            start = k + 1;
        }
    }
    if (start) {
        memmove(b->data, b->data + start, b->len - start);
        b->len -= start;
    }
    if (b->len > MAX_BLOCK) {
        bad_bodies++;
        b->len = 0;
    }
}

static void response_ended(Reader *r) {
    if (r->status == 200) {
        responses_200++;
        sse_ended++; /* the server ended the SSE response */
    } else if (r->status == 204) {
        responses_204++;
    }
    if (r->errors > MAX_ERRORS) r->done = 1;
    if (r->done || stopping) return;
    if (!r->keep_alive) {
        lost(r); /* the server closes it: reconnect */
        return;
    }
    if (r->status == 200 || r->status == 204) {
        r->reconnects++;
        reconnects++;
        send_request(r);
        if (r->state == CLOSED) lost(r);
    } else {
        r->state = CLOSED; /* retried after a pause, on a new connection */
        close_reader(r);
        r->pending_reconnect = 1;
        r->reconnect_at = mono() + 0.2;
        reconnect_pending++;
    }
}

static int parse_head(Reader *r) {
    Buf *h = &r->head;
    char *end = memmem(h->data, h->len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t used = end + 4 - h->data;
    *end = 0;
    r->status = (h->len > 12 && memcmp(h->data, "HTTP/1.", 7) == 0) ? atoi(h->data + 9) : 0;
    r->chunked = 0;
    r->keep_alive = 1;
    long length = -1;
    for (char *line = strstr(h->data, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        char *s = line + 2;
        if (strncasecmp(s, "content-length:", 15) == 0) length = atol(s + 15);
        else if (strncasecmp(s, "transfer-encoding:", 18) == 0 && strcasestr(s, "chunked")) r->chunked = 1;
        else if (strncasecmp(s, "connection:", 11) == 0 && strcasestr(s, "close")) r->keep_alive = 0;
    }
    if (r->status != 200 && r->status != 204) {
        r->errors++;
        if (r->status > 0 && r->status < MAX_STATUS) status_errors[r->status]++;
        else bad_responses++;
    }
    if (r->status == 204 || (!r->chunked && length == 0)) r->state = BODY_LENGTH, r->remaining = 0;
    else if (r->chunked) r->state = CHUNK_SIZE;
    else if (length > 0) r->state = BODY_LENGTH, r->remaining = length;
    else r->state = BODY_TO_CLOSE, r->keep_alive = 0;
    return (int)used;
}

static void body_bytes(Reader *r, const char *p, size_t n) {
    if (r->status == 200) sse_feed(r, p, n);
}

/* One recv's bytes through the HTTP/1.1 response parser. */
static void feed(Reader *r, const char *p, size_t n) {
    while (n > 0 && r->fd >= 0) {
        switch (r->state) {
        case HEAD: {
            size_t before = r->head.len;
            buf_add(&r->head, p, n);
            int used = parse_head(r);
            if (!used) {
                if (r->head.len > MAX_HEAD) {
                    bad_responses++;
                    lost(r);
                }
                return;
            }
            size_t consumed = used - before;
            p += consumed, n -= consumed;
            r->head.len = 0;
            if (r->state == BODY_LENGTH && r->remaining == 0) response_ended(r);
            break;
        }
        case CHUNK_SIZE:
        case TRAILER: {
            const char *nl = memchr(p, '\n', n);
            size_t take = nl ? (size_t)(nl - p + 1) : n;
            buf_add(&r->head, p, take);
            p += take, n -= take;
            if (!nl) break;
            Buf *h = &r->head;
            if (r->state == CHUNK_SIZE) {
                long size = strtol(h->data, NULL, 16);
                h->len = 0;
                if (size > 0) r->state = CHUNK_DATA, r->remaining = size;
                else r->state = TRAILER;
            } else {
                int blank = h->len <= 2;
                h->len = 0;
                if (blank) response_ended(r);
            }
            break;
        }
        case CHUNK_DATA: {
            size_t take = (size_t)r->remaining < n ? (size_t)r->remaining : n;
            body_bytes(r, p, take);
            p += take, n -= take;
            r->remaining -= take;
            if (r->remaining == 0) r->state = CHUNK_CRLF, r->remaining = 2;
            break;
        }
        case CHUNK_CRLF: {
            size_t take = (size_t)r->remaining < n ? (size_t)r->remaining : n;
            p += take, n -= take;
            r->remaining -= take;
            if (r->remaining == 0) r->state = CHUNK_SIZE;
            break;
        }
        case BODY_LENGTH: {
            size_t take = (size_t)r->remaining < n ? (size_t)r->remaining : n;
            body_bytes(r, p, take);
            p += take, n -= take;
            r->remaining -= take;
            if (r->remaining == 0) response_ended(r);
            break;
        }
        case BODY_TO_CLOSE:
            body_bytes(r, p, n);
            return;
        default:
            return;
        }
    }
}

static char recv_buffer[RECV_SIZE];

static void readable(Reader *r) {
    for (int round = 0; round < 4 && r->fd >= 0; round++) {
        char control[CMSG_SPACE(sizeof(struct timespec))];
        struct iovec iov = {recv_buffer, sizeof recv_buffer};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
        ssize_t got = recvmsg(r->fd, &msg, 0);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            lost(r);
            return;
        }
        if (got == 0) {
            if (r->state == BODY_TO_CLOSE) response_ended(r);
            lost(r);
            return;
        }
        now_tu = realtime_ns();
        now_tk = now_tu;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof ts);
                now_tk = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
                kernel_stamps++;
            }
        }
        recvs++;
        messages_this_recv = 0;
        feed(r, recv_buffer, (size_t)got);
        if (messages_this_recv > 1) multi_message_recvs++;
        if ((size_t)got < sizeof recv_buffer) return;
    }
}

static void connected(Reader *r) {
    connecting_count--;
    r->state = HEAD;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        connect_failures++;
        lost(r);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = r};
    epoll_ctl(ep, EPOLL_CTL_MOD, r->fd, &ev);
    send_request(r);
    if (r->state == CLOSED) lost(r);
}

/* -- the loop ---------------------------------------------------------------------------- */

static void reconnect_due(void) {
    if (!reconnect_pending) return;
    double now = mono();
    for (int k = 0; k < opt.readers; k++) {
        Reader *r = &readers[k];
        if (r->pending_reconnect && r->reconnect_at <= now) {
            r->pending_reconnect = 0;
            reconnect_pending--;
            if (!stopping && !r->done) open_reader(r);
        }
    }
}

static char command[1 << 20];
static size_t command_len;

/* Runs the loop until `until()` holds or `deadline` (monotonic; 0: none) passes; returns until(). */
static int pump(int (*until)(void), double deadline, int *command_ready) {
    struct epoll_event events[1024];
    for (;;) {
        if (until && until()) return 1;
        if (command_ready && *command_ready) return 0;
        double now = mono();
        if (deadline && now >= deadline) return until ? until() : 0;
        int wait = 50;
        if (deadline && (deadline - now) * 1000 < wait) wait = (int)((deadline - now) * 1000) + 1;
        int n = epoll_wait(ep, events, 1024, wait);
        for (int k = 0; k < n; k++) {
            Reader *r = events[k].data.ptr;
            if (r == NULL) { /* stdin */
                ssize_t got = read(0, command + command_len, sizeof command - command_len - 1);
                if (got <= 0) exit(0); /* the driver went away */
                command_len += got;
                if (memchr(command, '\n', command_len) && command_ready) *command_ready = 1;
                continue;
            }
            if (r->fd < 0) continue;
            if (r->state == CONNECTING) {
                if (events[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) connected(r);
            } else if (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                readable(r);
            }
        }
        reconnect_due();
    }
}

static int all_ready(void) { return ready_count >= opt.readers; }
static int all_complete(void) { return complete_count >= opt.readers; }
static int opened;
static int batch_connected(void) { return connecting_count == 0; }

static char *next_command(void) {
    static char line[1 << 20];
    char *nl = memchr(command, '\n', command_len);
    if (!nl) return NULL;
    size_t n = nl - command;
    memcpy(line, command, n);
    line[n] = 0;
    memmove(command, nl + 1, command_len - n - 1);
    command_len -= n + 1;
    return line;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void print_stats(const char *name, Samples *s) {
    printf("\"%s\": ", name);
    if (!s->n) {
        printf("{\"n\": 0}");
        return;
    }
    qsort(s->v, s->n, sizeof(int64_t), cmp64);
    double sum = 0;
    for (size_t k = 0; k < s->n; k++) sum += s->v[k];
    double q[4] = {50, 90, 99, 99.9};
    const char *names[4] = {"p50", "p90", "p99", "p999"};
    printf("{\"n\": %zu, \"mean\": %.6f, \"min\": %.6f", s->n, sum / s->n / 1e6, s->v[0] / 1e6);
    for (int k = 0; k < 4; k++) {
        /* nearest rank, as live_client.stats() */
        size_t rank = (size_t)ceil(s->n * q[k] / 100.0);
        if (rank < 1) rank = 1;
        if (rank > s->n) rank = s->n;
        printf(", \"%s\": %.6f", names[k], s->v[rank - 1] / 1e6);
    }
    printf(", \"max\": %.6f}", s->v[s->n - 1] / 1e6);
}

static void result(const char *stored_list) {
    uint8_t *stored = calloc(opt.appends ? opt.appends : 1, 1);
    long stored_count = 0;
    for (const char *p = stored_list; *p;) {
        char *end;
        long i = strtol(p, &end, 10);
        if (end == p) break;
        if (i >= 0 && i < opt.appends && !stored[i]) stored[i] = 1, stored_count++;
        p = *end ? end + 1 : end;
    }
    long received = 0, never_stored = 0, duplicates = 0, with_missed = 0, with_dups = 0, max_missed = 0, max_dups = 0;
    int stuck[10], n_stuck = 0;
    for (int k = 0; k < opt.readers; k++) {
        Reader *r = &readers[k];
        long got = 0, unstored = 0;
        for (int i = 0; i < opt.appends; i++) {
            if (r->seen[i]) (stored[i] ? got++ : unstored++);
        }
        long missed = stored_count - got;
        received += got, never_stored += unstored, duplicates += r->dups;
        if (missed) {
            with_missed++;
            if (n_stuck < 10) stuck[n_stuck++] = k;
        }
        if (r->dups) with_dups++;
        if (missed > max_missed) max_missed = missed;
        if (r->dups > max_dups) max_dups = r->dups;
    }
    long expected = (long)opt.readers * stored_count;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("RESULT {\"readers\": %d, \"expected_deliveries\": %ld, \"deliveries\": %ld, \"missed\": %ld, ", opt.readers,
           expected, received, expected - received);
    printf("\"duplicates\": %ld, \"readers_with_missed\": %ld, \"readers_with_duplicates\": %ld, ", duplicates,
           with_missed, with_dups);
    printf("\"max_missed_per_reader\": %ld, \"max_duplicates_per_reader\": %ld, \"readers_incomplete\": %ld, ",
           max_missed, max_dups, with_missed);
    printf("\"stuck_examples\": [");
    for (int k = 0; k < n_stuck; k++) {
        Reader *r = &readers[stuck[k]];
        printf("%s{\"reader\": %d, \"received\": %d, \"offset\": \"%s\", \"last_status\": %d, \"reconnects\": %d, "
               "\"ready\": %s, \"done\": %s}",
               k ? ", " : "", r->idx, r->n_seen, r->offset, r->status, r->reconnects, r->ready ? "true" : "false",
               r->done ? "true" : "false");
    }
    printf("], \"readers_ready\": %d, \"never_stored_but_received\": %ld, \"status_errors\": {", ready_count,
           never_stored);
    int first = 1;
    for (int s = 0; s < MAX_STATUS; s++) {
        if (status_errors[s]) printf("%s\"%d\": %ld", first ? "" : ", ", s, status_errors[s]), first = 0;
    }
    printf("}, \"bad_bodies\": %ld, \"bad_responses\": %ld, \"foreign_messages\": %ld, \"reconnects\": %ld, ",
           bad_bodies, bad_responses, foreign, reconnects);
    printf("\"connect_failures\": %ld, \"responses_200\": %ld, \"responses_204\": %ld, \"sse_responses_ended\": %ld, ",
           connect_failures, responses_200, responses_204, sse_ended);
    printf("\"keepalives\": %ld, \"recvs\": %ld, \"multi_message_recvs\": %ld, \"kernel_timestamps\": %ld, ",
           keepalives, recvs, multi_message_recvs, kernel_stamps);
    print_stats("latency_ms", &lat_kernel);
    printf(", ");
    print_stats("latency_user_ms", &lat_user);
    printf(", \"readers_cpu_s\": %.3f}\n",
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    fflush(stdout);
}

static void usage(void) {
    fprintf(stderr, "usage: sse_readers --port P --path PATH --offset O --readers N --appends M "
                    "[--host H] [--connect-batch B] [--connect-timeout S] [--drain S]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *offset = NULL;
    for (int k = 1; k + 1 < argc; k += 2) {
        const char *a = argv[k], *v = argv[k + 1];
        if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--port")) opt.port = atoi(v);
        else if (!strcmp(a, "--path")) opt.path = v;
        else if (!strcmp(a, "--offset")) offset = v;
        else if (!strcmp(a, "--readers")) opt.readers = atoi(v);
        else if (!strcmp(a, "--appends")) opt.appends = atoi(v);
        else if (!strcmp(a, "--connect-batch")) opt.batch = atoi(v);
        else if (!strcmp(a, "--connect-timeout")) opt.connect_timeout = atof(v);
        else if (!strcmp(a, "--drain")) opt.drain = atof(v);
        else usage();
    }
    if (!opt.path || !offset || opt.port <= 0 || opt.readers <= 0 || opt.appends <= 0 || strlen(offset) >= 128)
        usage();
    if (strcmp(opt.host, "127.0.0.1") && strcmp(opt.host, "localhost")) {
        fprintf(stderr, "sse_readers: only loopback servers\n");
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons(opt.port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < (rlim_t)opt.readers + 64) {
        lim.rlim_cur = lim.rlim_max < (rlim_t)opt.readers + 64 ? lim.rlim_max : (rlim_t)opt.readers + 64;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event in = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in) < 0) die("epoll_ctl stdin");
    target = opt.appends;
    readers = calloc(opt.readers, sizeof(Reader));
    for (int k = 0; k < opt.readers; k++) {
        readers[k].idx = k;
        readers[k].fd = -1;
        snprintf(readers[k].offset, sizeof readers[k].offset, "%s", offset);
        readers[k].seen = calloc(opt.appends, 1);
    }
    double t0 = mono(), deadline = t0 + opt.connect_timeout;
    int command_ready = 0;
    for (opened = 0; opened < opt.readers && mono() < deadline;) {
        int until = opened + opt.batch < opt.readers ? opened + opt.batch : opt.readers;
        for (; opened < until; opened++) open_reader(&readers[opened]);
        pump(batch_connected, deadline, NULL);
    }
    int open_now = 0;
    for (int k = 0; k < opt.readers; k++) open_now += readers[k].fd >= 0;
    say("CONNECTED %d %.3f\n", open_now, mono() - t0);
    pump(all_ready, mono() + opt.connect_timeout, NULL);
    say("READY %d %.3f\n", ready_count, mono() - t0);
    for (;;) {
        pump(NULL, 0, &command_ready);
        char *line;
        while ((line = next_command()) != NULL) {
            if (!strncmp(line, "TARGET ", 7)) {
                target = atoi(line + 7);
                for (int k = 0; k < opt.readers; k++) {
                    Reader *r = &readers[k];
                    if (!r->complete && r->n_seen >= target) r->complete = 1, complete_count++;
                }
                pump(all_complete, mono() + opt.drain, NULL);
                say("DRAINED %d\n", complete_count);
            } else if (!strcmp(line, "CLOSE")) {
                stopping = 1;
                for (int k = 0; k < opt.readers; k++) close_reader(&readers[k]);
                say("CLOSED\n");
            } else if (!strncmp(line, "STORED", 6)) {
                result(line + 6 + (line[6] == ' '));
                return 0;
            }
        }
        command_ready = memchr(command, '\n', command_len) != NULL;
    }
}
