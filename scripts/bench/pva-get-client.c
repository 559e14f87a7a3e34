/*
 * Sequential pvAccess GET round trips against one or more servers, alternated one GET per server
 * per round, for scripts/bench/pva-server.ts latency. A C client so that the client's own pauses
 * (a JIT compiling, a GC, their helper threads) are not in the figures: with our Bun test client
 * the client's p99 against softIocPVX was 0.15-0.9 ms at load 3-4 (docs/benchmarks.md).
 *
 *   pva-get-client <warmup> <rounds> <port> [<port>...]    (servers on 127.0.0.1)
 *
 * Per server: anonymous validation, CREATE_CHANNEL "BENCH:LAT", GET INIT with an empty pvRequest,
 * then <warmup> unmeasured and <rounds> measured GET EXECs (INIT once, EXEC repeated, as the Bun
 * client did). Prints one line per server: "port <port> us <t1> <t2> ..." (every measured round
 * trip in microseconds, in order). Messages are little-endian, as pvxs clients send them.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CMD_VALIDATION = 1, CMD_CREATE_CHANNEL = 7, CMD_VALIDATED = 9, CMD_GET = 10 };

struct side {
  int fd;
  int port;
  uint32_t sid;
  double *us;
  unsigned char buf[1 << 16];
  size_t have;
};

static void die(const char *what, int port) {
  fprintf(stderr, "pva-get-client: %s (port %d)\n", what, port);
  exit(1);
}

static uint32_t rd32(const unsigned char *p, int le) {
  return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
            : (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}

static void send_msg(struct side *s, int cmd, const unsigned char *payload, uint32_t n) {
  unsigned char m[256];
  m[0] = 0xca;
  m[1] = 2;
  m[2] = 0; /* client, little-endian, application message */
  m[3] = (unsigned char)cmd;
  m[4] = n & 0xff;
  m[5] = (n >> 8) & 0xff;
  m[6] = (n >> 16) & 0xff;
  m[7] = (n >> 24) & 0xff;
  memcpy(m + 8, payload, n);
  if (write(s->fd, m, 8 + n) != (ssize_t)(8 + n)) die("write", s->port);
}

/*
 * Reads until a whole application message with command `cmd` is buffered; returns its payload
 * (valid until the next call) and drops everything before it. Control messages are skipped.
 */
static const unsigned char *next_msg(struct side *s, int cmd, uint32_t *len) {
  for (;;) {
    size_t off = 0;
    while (s->have - off >= 8) {
      const unsigned char *h = s->buf + off;
      if (h[0] != 0xca) die("bad magic", s->port);
      int le = (h[2] & 0x80) == 0;
      uint32_t size = (h[2] & 0x01) ? 0 : rd32(h + 4, le);
      if (size > sizeof s->buf - 8) die("message too large", s->port);
      if (s->have - off < 8 + size) break;
      if (!(h[2] & 0x01) && h[3] == cmd) {
        /* Move this message to the front, keep what follows it. */
        memmove(s->buf, s->buf + off, s->have - off);
        s->have -= off;
        *len = size;
        return s->buf + 8;
      }
      off += 8 + size;
    }
    memmove(s->buf, s->buf + off, s->have - off);
    s->have -= off;
    ssize_t r = read(s->fd, s->buf + s->have, sizeof s->buf - s->have);
    if (r <= 0) die("connection closed", s->port);
    s->have += (size_t)r;
  }
}

/* Drops the message next_msg returned. */
static void consume(struct side *s, uint32_t len) {
  memmove(s->buf, s->buf + 8 + len, s->have - 8 - len);
  s->have -= 8 + len;
}

static void setup(struct side *s) {
  s->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)s->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s->fd, (struct sockaddr *)&a, sizeof a) != 0) die("connect", s->port);
  int one = 1;
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  uint32_t n;
  next_msg(s, CMD_VALIDATION, &n);
  consume(s, n);
  /* buffer size, registry size, QoS, "anonymous", no auth data (null type) */
  static const unsigned char val[] = {0x00, 0x00, 0x01, 0x00, 0xff, 0x7f, 0x00, 0x00, 9,
                                      'a',  'n',  'o',  'n',  'y',  'm',  'o',  'u',  's', 0xff};
  send_msg(s, CMD_VALIDATION, val, sizeof val);
  next_msg(s, CMD_VALIDATED, &n);
  consume(s, n);
  static const unsigned char create[] = {1, 0, 1, 0, 0, 0, 9, 'B', 'E', 'N', 'C', 'H', ':', 'L', 'A', 'T'};
  send_msg(s, CMD_CREATE_CHANNEL, create, sizeof create);
  const unsigned char *p = next_msg(s, CMD_CREATE_CHANNEL, &n);
  if (n < 9 || p[8] != 0xff) die("channel BENCH:LAT refused", s->port);
  s->sid = rd32(p + 4, 1);
  consume(s, n);
  /* sid, ioid 1, INIT, pvRequest {field {}} */
  unsigned char init[] = {0, 0, 0, 0, 1, 0, 0, 0, 0x08, 0x80, 0, 1, 5, 'f', 'i', 'e', 'l', 'd', 0x80, 0, 0};
  memcpy(init, &s->sid, 4); /* x86/aarch64 Linux: little-endian, as the message */
  send_msg(s, CMD_GET, init, sizeof init);
  p = next_msg(s, CMD_GET, &n);
  if (n < 6 || p[5] != 0xff) die("GET INIT failed", s->port);
  consume(s, n);
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void get(struct side *s) {
  unsigned char exec[] = {0, 0, 0, 0, 1, 0, 0, 0, 0x00};
  memcpy(exec, &s->sid, 4);
  send_msg(s, CMD_GET, exec, sizeof exec);
  uint32_t n;
  const unsigned char *p = next_msg(s, CMD_GET, &n);
  if (n < 6 || rd32(p, 1) != 1 || p[5] != 0xff) die("GET failed", s->port);
  consume(s, n);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: pva-get-client <warmup> <rounds> <port> [<port>...]\n");
    return 2;
  }
  int warmup = atoi(argv[1]);
  int rounds = atoi(argv[2]);
  int n = argc - 3;
  struct side *sides = calloc((size_t)n, sizeof *sides);
  for (int k = 0; k < n; k++) {
    sides[k].port = atoi(argv[3 + k]);
    sides[k].us = calloc((size_t)rounds, sizeof(double));
    setup(&sides[k]);
  }
  for (int k = 0; k < n; k++)
    for (int i = 0; i < warmup; i++) get(&sides[k]);
  for (int i = 0; i < rounds; i++) {
    for (int k = 0; k < n; k++) {
      double t0 = now_us();
      get(&sides[k]);
      sides[k].us[i] = now_us() - t0;
    }
  }
  for (int k = 0; k < n; k++) {
    printf("port %d us", sides[k].port);
    for (int i = 0; i < rounds; i++) printf(" %.1f", sides[k].us[i]);
    printf("\n");
    close(sides[k].fd);
  }
  return 0;
}
