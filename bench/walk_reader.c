/*
 * Catch-up walker for bench/speed.py: N connections, each reading a stream from a start offset
 * to its tail by following Stream-Next-Offset until a response says Stream-Up-To-Date, then
 * starting over, for a fixed time. Every response is checked, and every walk:
 *
 *   - each response must be 200 (anything else ends the walk as bad);
 *   - a walk that ends (Stream-Up-To-Date: true) must have received exactly EXPECTED body bytes
 *     and end at Stream-Next-Offset TAIL (the stream's tail offset as the writer saw it);
 *   - a response that is not up to date must move the offset forward (a Stream-Next-Offset that
 *     differs from the one requested), or the walk is bad.
 *
 * Only the body bytes of good walks count as throughput. Bodies are counted, never copied out
 * of the receive buffer: at ~1-2 GB/s a generator that copies every body (as wrk does for a Lua
 * response() callback) becomes the limit, while the per-response work here is one header parse.
 * The caller checks one walk's bytes against what it wrote before the run.
 *
 * The same program measures empty reads at the tail: START = TAIL, EXPECTED = 0, one GET a walk.
 *
 * Usage: walk_reader HOST PORT CONNS SECONDS PATH START TAIL EXPECTED
 * Prints one line: WALK_RESULT {json}. One thread per connection, blocking sockets, keep-alive.
 * Build: gcc -O2 -Wall -pthread -o walk_reader walk_reader.c  (bench/speed.py does it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_SIZE (512 * 1024)
#define MAX_HEAD 65536
#define MAX_OFFSET 128
#define MAX_GETS_PER_WALK 1000000
#define MAX_RECONNECTS 100

typedef struct {
    /* configuration */
    const char *path, *start, *tail, *hostport;
    struct sockaddr_in addr;
    long long expected;
    double deadline;
    /* connection */
    int fd;
    char *buf;
    size_t pos, have;
    /* results */
    long long walks_good, walks_bad, gets, gets_in_good_walks, bytes_good, bytes_all;
    long long bad_status, bad_size, bad_tail, no_progress, socket_errors, reconnects;
    int first_bad_status;
    double *lat_us;
    size_t n_lat, cap_lat;
} Conn;

typedef struct {
    int status, up_to_date, chunked, close;
    long long length; /* -1: none given */
    char next[MAX_OFFSET];
} Head;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_to(Conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->pos = c->have = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&c->addr, sizeof c->addr) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

/* Read more bytes into the buffer (compacting it first). 0 on success, -1 on error or EOF. */
static int fill(Conn *c) {
    if (c->pos > 0) {
        memmove(c->buf, c->buf + c->pos, c->have - c->pos);
        c->have -= c->pos;
        c->pos = 0;
    }
    if (c->have >= RECV_SIZE) return -1;
    ssize_t n = recv(c->fd, c->buf + c->have, RECV_SIZE - c->have, 0);
    if (n <= 0) return -1;
    c->have += (size_t)n;
    return 0;
}

/* One line (without CRLF) at the read position, as [start, length); consumes it. */
static int read_line(Conn *c, char **line, size_t *len) {
    for (;;) {
        char *at = c->buf + c->pos;
        char *end = memmem(at, c->have - c->pos, "\r\n", 2);
        if (end) {
            *line = at;
            *len = (size_t)(end - at);
            c->pos += *len + 2;
            return 0;
        }
        if (c->have - c->pos > MAX_HEAD || fill(c) != 0) return -1;
    }
}

static void header_value(const char *line, size_t len, size_t name_len, char *out, size_t cap) {
    size_t i = name_len + 1;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t n = len - i;
    while (n > 0 && (line[i + n - 1] == ' ' || line[i + n - 1] == '\t')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(out, line + i, n);
    out[n] = 0;
}

static int is_header(const char *line, size_t len, const char *name) {
    size_t n = strlen(name);
    return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

static int read_head(Conn *c, Head *h) {
    char *line, value[MAX_OFFSET];
    size_t len;
    memset(h, 0, sizeof *h);
    h->length = -1;
    if (read_line(c, &line, &len) != 0) return -1;
    if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0) return -1;
    h->status = atoi(line + 9);
    for (;;) {
        if (read_line(c, &line, &len) != 0) return -1;
        if (len == 0) return 0;
        if (is_header(line, len, "content-length")) {
            header_value(line, len, 14, value, sizeof value);
            h->length = atoll(value);
        } else if (is_header(line, len, "transfer-encoding")) {
            header_value(line, len, 17, value, sizeof value);
            h->chunked = strcasestr(value, "chunked") != NULL;
        } else if (is_header(line, len, "stream-next-offset")) {
            header_value(line, len, 18, h->next, sizeof h->next);
        } else if (is_header(line, len, "stream-up-to-date")) {
            header_value(line, len, 17, value, sizeof value);
            h->up_to_date = strcasecmp(value, "true") == 0;
        } else if (is_header(line, len, "connection")) {
            header_value(line, len, 10, value, sizeof value);
            h->close = strcasecmp(value, "close") == 0;
        }
    }
}

/* Skip n body bytes, counting them. */
static int skip(Conn *c, long long n) {
    while (n > 0) {
        if (c->pos == c->have) {
            c->pos = c->have = 0;
            if (fill(c) != 0) return -1;
        }
        size_t avail = c->have - c->pos;
        size_t take = (long long)avail < n ? avail : (size_t)n;
        c->pos += take;
        n -= (long long)take;
    }
    return 0;
}

/* The body's length in bytes (read and discarded), or -1 on a broken response. */
static long long read_body(Conn *c, const Head *h) {
    if (!h->chunked) {
        long long n = h->length < 0 ? 0 : h->length; /* no length: 204/304, or an empty 200 */
        return skip(c, n) == 0 ? n : -1;
    }
    long long total = 0;
    for (;;) {
        char *line, digits[32];
        size_t len;
        if (read_line(c, &line, &len) != 0) return -1;
        size_t n = len < sizeof digits - 1 ? len : sizeof digits - 1;
        memcpy(digits, line, n);
        digits[n] = 0;
        long long size = strtoll(digits, NULL, 16);
        if (size < 0) return -1;
        if (size == 0) {
            do { /* trailers, up to the empty line */
                if (read_line(c, &line, &len) != 0) return -1;
            } while (len != 0);
            return total;
        }
        if (skip(c, size) != 0 || read_line(c, &line, &len) != 0 || len != 0) return -1;
        total += size;
    }
}

static void record_latency(Conn *c, double us) {
    if (c->n_lat == c->cap_lat) {
        c->cap_lat = c->cap_lat ? 2 * c->cap_lat : 65536;
        c->lat_us = realloc(c->lat_us, c->cap_lat * sizeof *c->lat_us);
        if (!c->lat_us) abort();
    }
    c->lat_us[c->n_lat++] = us;
}

/* One GET. 0: answered (h and *body set); -1: the connection broke (reconnected, walk lost). */
static int get(Conn *c, const char *offset, Head *h, long long *body) {
    char req[4096];
    int n = snprintf(req, sizeof req, "GET %s?offset=%s HTTP/1.1\r\nHost: %s\r\n\r\n", c->path, offset, c->hostport);
    if (n <= 0 || (size_t)n >= sizeof req) return -1;
    double t0 = now_s();
    if (c->fd < 0 || send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n || read_head(c, h) != 0 ||
        (*body = read_body(c, h)) < 0) {
        c->socket_errors++;
        if (c->reconnects++ < MAX_RECONNECTS) connect_to(c);
        return -1;
    }
    record_latency(c, (now_s() - t0) * 1e6);
    c->gets++;
    c->bytes_all += *body;
    if (h->close) {
        c->reconnects++;
        connect_to(c);
    }
    return 0;
}

/* One walk from START to the tail. 1: good, 0: bad, -1: ended by the deadline or a broken connection. */
static int walk(Conn *c) {
    char offset[MAX_OFFSET];
    long long bytes = 0, gets = 0;
    snprintf(offset, sizeof offset, "%s", c->start);
    while (gets < MAX_GETS_PER_WALK) {
        if (now_s() >= c->deadline) return -1;
        Head h;
        long long body = 0;
        if (get(c, offset, &h, &body) != 0) return -1;
        gets++;
        bytes += body;
        if (h.status != 200) {
            if (!c->bad_status) c->first_bad_status = h.status;
            c->bad_status++;
            return 0;
        }
        if (h.up_to_date) {
            if (bytes != c->expected) {
                c->bad_size++;
                return 0;
            }
            if (strcmp(h.next, c->tail) != 0) {
                c->bad_tail++;
                return 0;
            }
            c->bytes_good += bytes;
            c->gets_in_good_walks += gets;
            return 1;
        }
        if (h.next[0] == 0 || strcmp(h.next, offset) == 0) {
            c->no_progress++;
            return 0;
        }
        snprintf(offset, sizeof offset, "%s", h.next);
    }
    c->no_progress++;
    return 0;
}

static void *run(void *arg) {
    Conn *c = arg;
    c->fd = -1;
    c->buf = malloc(RECV_SIZE);
    if (!c->buf || connect_to(c) != 0) {
        c->socket_errors++;
        return NULL;
    }
    while (now_s() < c->deadline && c->fd >= 0) {
        int r = walk(c);
        if (r == 1) c->walks_good++;
        else if (r == 0) c->walks_bad++;
    }
    if (c->fd >= 0) close(c->fd);
    free(c->buf);
    return NULL;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *v, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SECONDS PATH START TAIL EXPECTED\n", argv[0]);
        return 2;
    }
    int conns = atoi(argv[3]);
    double seconds = atof(argv[4]);
    if (conns < 1 || conns > 1024 || seconds <= 0 || strlen(argv[6]) >= MAX_OFFSET) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    static char hostport[300];
    snprintf(hostport, sizeof hostport, "%s:%s", argv[1], argv[2]);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "HOST must be an IPv4 address\n");
        return 2;
    }
    Conn *cs = calloc((size_t)conns, sizeof *cs);
    pthread_t *threads = calloc((size_t)conns, sizeof *threads);
    double t0 = now_s();
    for (int i = 0; i < conns; i++) {
        cs[i] = (Conn){.path = argv[5], .start = argv[6], .tail = argv[7], .hostport = hostport, .addr = addr,
                       .expected = atoll(argv[8]), .deadline = t0 + seconds};
        if (pthread_create(&threads[i], NULL, run, &cs[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    Conn sum = {0};
    size_t n_lat = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(threads[i], NULL);
        n_lat += cs[i].n_lat;
    }
    double elapsed = now_s() - t0;
    double *lat = malloc((n_lat ? n_lat : 1) * sizeof *lat);
    size_t at = 0;
    for (int i = 0; i < conns; i++) {
        Conn *c = &cs[i];
        sum.walks_good += c->walks_good;
        sum.walks_bad += c->walks_bad;
        sum.gets += c->gets;
        sum.gets_in_good_walks += c->gets_in_good_walks;
        sum.bytes_good += c->bytes_good;
        sum.bytes_all += c->bytes_all;
        sum.bad_status += c->bad_status;
        sum.bad_size += c->bad_size;
        sum.bad_tail += c->bad_tail;
        sum.no_progress += c->no_progress;
        sum.socket_errors += c->socket_errors;
        sum.reconnects += c->reconnects;
        if (!sum.first_bad_status) sum.first_bad_status = c->first_bad_status;
        memcpy(lat + at, c->lat_us, c->n_lat * sizeof *lat);
        at += c->n_lat;
        free(c->lat_us);
    }
    qsort(lat, n_lat, sizeof *lat, by_value);
    printf("WALK_RESULT {\"elapsed_s\":%.6f,\"connections\":%d,\"walks_good\":%lld,\"walks_bad\":%lld,"
           "\"gets\":%lld,\"gets_in_good_walks\":%lld,\"bytes_good\":%lld,\"bytes_all\":%lld,"
           "\"bad_status\":%lld,\"first_bad_status\":%d,\"bad_size\":%lld,\"bad_tail\":%lld,"
           "\"no_progress\":%lld,\"socket_errors\":%lld,\"reconnects\":%lld,"
           "\"lat_p50_us\":%.1f,\"lat_p90_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_max_us\":%.1f}\n",
           elapsed, conns, sum.walks_good, sum.walks_bad, sum.gets, sum.gets_in_good_walks, sum.bytes_good,
           sum.bytes_all, sum.bad_status, sum.first_bad_status, sum.bad_size, sum.bad_tail, sum.no_progress,
           sum.socket_errors, sum.reconnects, percentile(lat, n_lat, 50), percentile(lat, n_lat, 90),
           percentile(lat, n_lat, 99), n_lat ? lat[n_lat - 1] : 0.0);
    free(lat);
    free(cs);
    free(threads);
    return 0;
}
