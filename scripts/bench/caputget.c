/* Write-path load client for scripts/bench/ca-server.ts, linked against the distribution's libca
 * (no headers needed: the few prototypes are declared here). Modes:
 *   putget PV COUNT   COUNT sequential rounds of ca_put (DBR_DOUBLE, no callback) followed at once
 *                     by ca_get on the same channel; each round checks the get saw the put.
 *                     Prints p50/p99 microseconds and the number of stale reads.
 *   burst PV N        N ca_put of 0..N-1 back to back, then one ca_get: prints seconds (first put
 *                     to get reply) and the final value; ECA errors reported by libca are counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct oldChannelNotify *chid;
typedef long chtype;
struct exception_handler_args { void *usr; chid chid; long type; long count; void *addr; long stat; long op; const char *ctx; const char *pFile; unsigned lineNo; };
int ca_context_create(int preemptive);
int ca_create_channel(const char *name, void *conn, void *puser, unsigned priority, chid *pid);
int ca_pend_io(double timeout);
int ca_array_get(chtype type, unsigned long count, chid id, void *pvalue);
int ca_array_put(chtype type, unsigned long count, chid id, const void *pvalue);
int ca_add_exception_event(void (*f)(struct exception_handler_args), void *arg);
const char *ca_message(long status);
#define ECA_NORMAL 1
#define DBR_DOUBLE 6

static long exceptions;
static void on_exception(struct exception_handler_args a) { (void)a; exceptions++; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: caputget putget|burst PV N\n"); return 2; }
    ca_context_create(1);
    ca_add_exception_event(on_exception, NULL);
    chid ch;
    if (ca_create_channel(argv[2], NULL, NULL, 0, &ch) != ECA_NORMAL || ca_pend_io(10.0) != ECA_NORMAL) {
        fprintf(stderr, "cannot connect to %s\n", argv[2]);
        return 1;
    }
    int n = atoi(argv[3]);
    if (!strcmp(argv[1], "putget")) {
        double *lat = calloc(n, sizeof(double));
        long stale = 0;
        for (int i = 0; i < n; i++) {
            double v = 1000.0 + i, got = -1;
            double t0 = now();
            ca_array_put(DBR_DOUBLE, 1, ch, &v);
            ca_array_get(DBR_DOUBLE, 1, ch, &got);
            int st = ca_pend_io(10.0);
            lat[i] = (now() - t0) * 1e6;
            if (st != ECA_NORMAL) { fprintf(stderr, "get: %s\n", ca_message(st)); return 1; }
            if (got != v) stale++;
        }
        qsort(lat, n, sizeof(double), cmpd);
        printf("putget %d: p50 %.1f us, p99 %.1f us, stale reads %ld, exceptions %ld\n", n, lat[n / 2], lat[(int)(n * 0.99)], stale, exceptions);
    } else if (!strcmp(argv[1], "burst")) {
        double t0 = now(), got = -1;
        for (int i = 0; i < n; i++) {
            double v = i;
            ca_array_put(DBR_DOUBLE, 1, ch, &v);
        }
        ca_array_get(DBR_DOUBLE, 1, ch, &got);
        int st = ca_pend_io(120.0);
        if (st != ECA_NORMAL) { fprintf(stderr, "get: %s\n", ca_message(st)); return 1; }
        printf("burst %d: %.3f s, final value %.0f, exceptions %ld\n", n, now() - t0, got, exceptions);
    }
    return 0;
}
