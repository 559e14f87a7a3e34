/* Subscription-churn load client (libca from the distribution; prototypes in libca-decls.h), the
 * shape of acctst's multiSubscrDestroyNoLateCallbackTest:
 *   casubs PV ROUNDS N   ROUNDS rounds of: N DBR_GR_FLOAT subscriptions added, flush, wait for
 *                        the first one's first update, all N cancelled. Prints seconds and
 *                        subscribe/update/cancel round trips per second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "libca-decls.h"

static volatile int first;
static void on_update(struct event_handler_args a) { if (a.usr) first = 1; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: casubs PV ROUNDS N\n"); return 2; }
    ca_context_create(1);
    chid ch;
    if (ca_create_channel(argv[1], NULL, NULL, 0, &ch) != ECA_NORMAL || ca_pend_io(10.0) != ECA_NORMAL) {
        fprintf(stderr, "cannot connect to %s\n", argv[1]);
        return 1;
    }
    int rounds = atoi(argv[2]), n = atoi(argv[3]);
    evid *ids = calloc(n, sizeof(evid));
    double t0 = now();
    for (int r = 0; r < rounds; r++) {
        first = 0;
        for (int j = 0; j < n; j++)
            if (ca_add_masked_array_event(DBR_GR_FLOAT, 1, ch, on_update, j == 0 ? (void *)1 : NULL,
                    0, 0, 0, &ids[j], 5) != ECA_NORMAL) { fprintf(stderr, "add failed\n"); return 1; }
        ca_flush_io();
        double w = now();
        while (!first) { usleep(50); if (now() - w > 10) { fprintf(stderr, "no update\n"); return 1; } }
        for (int j = 0; j < n; j++) ca_clear_subscription(ids[j]);
    }
    ca_flush_io();
    double s = now() - t0;
    printf("%d x %d subscriptions: %.2f s, %.0f per second\n", rounds, n, s, rounds * n / s);
    return 0;
}
