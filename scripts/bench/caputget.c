/* Write-path load client for scripts/bench/ca-server.ts, linked against the distribution's libca
 * (no -dev headers needed: the prototypes are in libca-decls.h). Modes:
 *   putget PV COUNT   COUNT sequential rounds of ca_put (DBR_DOUBLE, no callback) followed at once
 *                     by ca_get on the same channel; each round checks the get saw the put.
 *                     Prints p50/p99 microseconds and the number of stale reads.
 *   burst PV N        N ca_put of 0..N-1 back to back, then one ca_get: prints seconds (first put
 *                     to get reply) and the final value; ECA errors reported by libca are counted.
 *   subput PV R       acctst's singleSubscriptionDeleteTest: R rounds of a DBR_GR_FLOAT
 *                     subscription added, a get awaited, i DBR_FLOAT puts (round i), the
 *                     subscription cancelled. Prints seconds, puts and stale gets.
 *   clearput PV R     acctst's channelClearWithEventTrafficTest: the same on a channel created for
 *                     the round and cleared at its end (after a 1 ms sleep).
 *   rundown PV R      acctst's verifyContextRundownFlush: R rounds of a context that connects,
 *                     puts and is destroyed, then one that connects, gets (must see the put) and
 *                     is destroyed. Prints the time of each phase summed over the rounds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libca-decls.h"
int usleep(unsigned us);

static long exceptions;
static long updates;
static void on_update(struct event_handler_args a) { (void)a; updates++; }

/* One round of acctst's single-subscription / channel-clear tests on `ch`: subscribe, get, i puts. */
static int traffic_round(chid ch, int i, long *stale) {
    evid id;
    float got = -1;
    if (ca_add_masked_array_event(DBR_GR_FLOAT, 1, ch, on_update, NULL, 0, 0, 0, &id, 5) != ECA_NORMAL) return 1;
    ca_array_get(DBR_FLOAT, 1, ch, &got);
    if (ca_pend_io(30.0) != ECA_NORMAL) return 1;
    if (i > 0 && got != (float)(i - 2 < 0 ? 0 : i - 2)) (*stale)++;
    for (int j = 0; j < i; j++) {
        float v = (float)j;
        ca_array_put(DBR_FLOAT, 1, ch, &v);
    }
    ca_flush_io();
    return ca_clear_subscription(id) != ECA_NORMAL;
}
static void on_exception(struct exception_handler_args a) {
    if (exceptions++ < 5) fprintf(stderr, "exception: %s (%s)\n", ca_message(a.stat), a.ctx ? a.ctx : "");
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: caputget putget|burst PV N\n"); return 2; }
    if (!strcmp(argv[1], "rundown")) {
        int rounds = atoi(argv[3]);
        double ph[6] = {0}, t0 = now(), t;
        long stale = 0;
        for (int i = 0; i < rounds; i++) {
            double stim = i, resp = -1;
            chid c;
            t = now(); ca_context_create(0); ph[0] += now() - t;
            t = now();
            if (ca_create_channel(argv[2], NULL, NULL, 0, &c) != ECA_NORMAL || ca_pend_io(30.0) != ECA_NORMAL) return 1;
            ph[1] += now() - t;
            ca_array_put(DBR_DOUBLE, 1, c, &stim);
            ca_clear_channel(c);
            t = now(); ca_context_destroy(); ph[2] += now() - t;
            ca_context_create(0);
            t = now();
            if (ca_create_channel(argv[2], NULL, NULL, 0, &c) != ECA_NORMAL || ca_pend_io(30.0) != ECA_NORMAL) return 1;
            ph[3] += now() - t;
            t = now();
            ca_array_get(DBR_DOUBLE, 1, c, &resp);
            if (ca_pend_io(30.0) != ECA_NORMAL) return 1;
            ph[4] += now() - t;
            if (resp != stim) stale++;
            ca_clear_channel(c);
            t = now(); ca_context_destroy(); ph[5] += now() - t;
        }
        printf("rundown %d rounds: %.2f s; create %.2f, connect %.2f, put+destroy %.2f, connect %.2f, get %.2f, destroy %.2f s; stale %ld\n",
               rounds, now() - t0, ph[0], ph[1], ph[2], ph[3], ph[4], ph[5], stale);
        return 0;
    }
    ca_context_create(1);
    ca_add_exception_event(on_exception, NULL);
    if (!strcmp(argv[1], "clearput")) {
        /* A channel per round, as channelClearWithEventTrafficTest does. */
        int rounds = atoi(argv[3]);
        long stale = 0, puts = 0;
        double t0 = now(), tconn = 0, tslow = 0;
        int slow = 0;
        for (int i = 0; i < rounds; i++) {
            chid c;
            double tc = now();
            if (ca_create_channel(argv[2], NULL, NULL, 0, &c) != ECA_NORMAL || ca_pend_io(30.0) != ECA_NORMAL) {
                fprintf(stderr, "cannot connect to %s\n", argv[2]);
                return 1;
            }
            double dc = now() - tc;
            tconn += dc;
            if (dc > 0.1) {
                slow++;
                tslow += dc;
                if (getenv("CAPUTGET_VERBOSE")) fprintf(stderr, "round %d: connect took %.3f s\n", i, dc);
            }
            if (traffic_round(c, i, &stale)) { fprintf(stderr, "round %d failed\n", i); return 1; }
            puts += i;
            usleep(1000);
            ca_clear_channel(c);
        }
        ca_flush_io();
        printf("clearput %d rounds: %.2f s (connecting %.2f s, %d connects over 0.1 s took %.2f s), %ld puts, %ld updates, exceptions %ld\n", rounds, now() - t0, tconn, slow, tslow, puts, updates, exceptions);
        return 0;
    }
    chid ch;
    if (ca_create_channel(argv[2], NULL, NULL, 0, &ch) != ECA_NORMAL || ca_pend_io(10.0) != ECA_NORMAL) {
        fprintf(stderr, "cannot connect to %s\n", argv[2]);
        return 1;
    }
    int n = atoi(argv[3]);
    if (!strcmp(argv[1], "subput")) {
        long stale = 0, puts = 0;
        double t0 = now();
        for (int i = 0; i < n; i++) {
            if (traffic_round(ch, i, &stale)) { fprintf(stderr, "round %d failed\n", i); return 1; }
            puts += i;
        }
        /* The last round's puts: a get after them sees the last one. */
        float got = -1;
        ca_array_get(DBR_FLOAT, 1, ch, &got);
        if (ca_pend_io(30.0) != ECA_NORMAL) return 1;
        printf("subput %d rounds: %.2f s, %ld puts, %ld updates, last get %s, exceptions %ld\n", n, now() - t0, puts, updates,
               n < 2 || got == (float)(n - 2) ? "ok" : "stale", exceptions);
        return 0;
    }
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
