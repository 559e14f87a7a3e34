/* Load client of scripts/bench/product.ts, linked against the distribution's libca (no -dev
 * headers needed: the prototypes are in libca-decls.h). The channel names come from a file, one
 * per line, so the same list can be run against iocmng (PVs of several plugins) and softIoc.
 *   connect FILE          create a channel per name, wait for all, then one DBR_DOUBLE get each;
 *                         prints "connect+get N: S s (connect C s, get G s)" (seconds from the
 *                         first create to the last get reply; C until every channel connected,
 *                         G from there to the last get reply).
 *   latency PV COUNT      COUNT sequential DBR_DOUBLE gets of one channel; prints p50/p99 in µs.
 *   samples PV COUNT      the same gets, one line each: "<start, CLOCK_MONOTONIC ns> <round trip
 *                         ns>", to line slow ones up with what the server did at that moment
 *                         (strace -tt, perf; scripts/bench/ca-p99.ts).
 *   monitor FILE SECONDS  a DBR_TIME_DOUBLE DBE_VALUE subscription per name; after 1 s to settle,
 *                         counts updates for SECONDS; prints "updates U in S s".
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libca-decls.h"

static atomic_long seen;
static void on_update(struct event_handler_args a) { (void)a; atomic_fetch_add(&seen, 1); }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int by_value(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

/* Reads the names of FILE (one per line, empty lines skipped) into a NULL-free array. */
static char **read_names(const char *file, int *n) {
    FILE *f = fopen(file, "r");
    if (!f) { perror(file); exit(2); }
    int cap = 1024, len = 0;
    char **names = malloc(cap * sizeof *names), line[1100];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        if (len == cap) names = realloc(names, (cap *= 2) * sizeof *names);
        names[len++] = strdup(line);
    }
    fclose(f);
    *n = len;
    return names;
}

static chid *create_all(char **names, int n) {
    chid *ids = calloc(n, sizeof *ids);
    for (int i = 0; i < n; i++)
        if (ca_create_channel(names[i], NULL, NULL, 0, &ids[i]) != ECA_NORMAL) { fprintf(stderr, "create %s failed\n", names[i]); exit(1); }
    int st = ca_pend_io(30.0);
    if (st != ECA_NORMAL) { fprintf(stderr, "connect: %s\n", ca_message(st)); exit(1); }
    return ids;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: product-client connect FILE _ | latency PV COUNT | monitor FILE SECONDS\n"); return 2; }
    ca_context_create(1);
    if (!strcmp(argv[1], "connect")) {
        int n;
        char **names = read_names(argv[2], &n);
        double t0 = now();
        chid *ids = create_all(names, n);
        double t1 = now();
        double *values = calloc(n, sizeof *values);
        for (int i = 0; i < n; i++) ca_array_get(DBR_DOUBLE, 1, ids[i], &values[i]);
        int st = ca_pend_io(30.0);
        if (st != ECA_NORMAL) { fprintf(stderr, "get: %s\n", ca_message(st)); return 1; }
        double t2 = now();
        printf("connect+get %d: %.4f s (connect %.4f s, get %.4f s)\n", n, t2 - t0, t1 - t0, t2 - t1);
    } else if (!strcmp(argv[1], "latency")) {
        int count = atoi(argv[3]);
        chid id;
        ca_create_channel(argv[2], NULL, NULL, 0, &id);
        if (ca_pend_io(10.0) != ECA_NORMAL) { fprintf(stderr, "connect %s failed\n", argv[2]); return 1; }
        double *us = calloc(count, sizeof *us), v;
        for (int i = 0; i < count; i++) {
            double t0 = now();
            ca_array_get(DBR_DOUBLE, 1, id, &v);
            if (ca_pend_io(5.0) != ECA_NORMAL) { fprintf(stderr, "get timed out\n"); return 1; }
            us[i] = (now() - t0) * 1e6;
        }
        qsort(us, count, sizeof *us, by_value);
        printf("get p50 %.1f us, p99 %.1f us\n", us[count / 2], us[(int)(count * 0.99)]);
    } else if (!strcmp(argv[1], "samples")) {
        int count = atoi(argv[3]);
        chid id;
        ca_create_channel(argv[2], NULL, NULL, 0, &id);
        if (ca_pend_io(10.0) != ECA_NORMAL) { fprintf(stderr, "connect %s failed\n", argv[2]); return 1; }
        long long *t = calloc(count, sizeof *t), *d = calloc(count, sizeof *d);
        double v;
        for (int i = 0; i < count; i++) {
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            ca_array_get(DBR_DOUBLE, 1, id, &v);
            if (ca_pend_io(5.0) != ECA_NORMAL) { fprintf(stderr, "get timed out\n"); return 1; }
            clock_gettime(CLOCK_MONOTONIC, &b);
            t[i] = a.tv_sec * 1000000000LL + a.tv_nsec;
            d[i] = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
        }
        /* Printed after the loop: no stdio work between samples. */
        for (int i = 0; i < count; i++) printf("%lld %lld\n", t[i], d[i]);
    } else if (!strcmp(argv[1], "monitor")) {
        int n;
        char **names = read_names(argv[2], &n);
        double secs = atof(argv[3]);
        chid *ids = create_all(names, n);
        for (int i = 0; i < n; i++)
            ca_create_subscription(DBR_TIME_DOUBLE, 1, ids[i], DBE_VALUE, on_update, NULL, NULL);
        ca_flush_io();
        ca_pend_event(1.0);
        long u0 = atomic_load(&seen);
        double t0 = now();
        ca_pend_event(secs);
        printf("updates %ld in %.3f s\n", atomic_load(&seen) - u0, now() - t0);
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    return 0;
}
