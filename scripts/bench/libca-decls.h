/* The part of libca's C API (cadef.h, db_access.h, caerr.h of EPICS Base) that the bench clients
 * use, declared here so they build against the distribution's libca.so without its -dev headers.
 * Layouts and values are libca 4.13's (EPICS Base 7.0). One copy for every client in this folder.
 */
#ifndef IOCMNG_BENCH_LIBCA_DECLS_H
#define IOCMNG_BENCH_LIBCA_DECLS_H

typedef struct oldChannelNotify *chid;
typedef struct oldSubscription *evid;
typedef long chtype;
struct event_handler_args { void *usr; chid chid; long type; long count; const void *dbr; int status; };
struct exception_handler_args { void *usr; chid chid; long type; long count; void *addr; long stat; long op; const char *ctx; const char *pFile; unsigned lineNo; };

int ca_context_create(int preemptive);
void ca_context_destroy(void);
int ca_create_channel(const char *name, void *conn, void *puser, unsigned priority, chid *pid);
int ca_clear_channel(chid id);
int ca_pend_io(double timeout);
int ca_pend_event(double timeout);
int ca_flush_io(void);
int ca_array_get(chtype type, unsigned long count, chid id, void *pvalue);
int ca_array_put(chtype type, unsigned long count, chid id, const void *pvalue);
int ca_create_subscription(chtype type, unsigned long count, chid id, long mask,
    void (*f)(struct event_handler_args), void *arg, evid *pev);
int ca_add_masked_array_event(chtype type, unsigned long count, chid chan,
    void (*f)(struct event_handler_args), void *arg, double p, double n, double t, evid *id, long mask);
int ca_clear_subscription(evid id);
int ca_add_exception_event(void (*f)(struct exception_handler_args), void *arg);
const char *ca_message(long status);

#define ECA_NORMAL 1
#define DBR_FLOAT 2
#define DBR_DOUBLE 6
#define DBR_TIME_DOUBLE 20
#define DBR_GR_FLOAT 23
#define DBE_VALUE 1

#endif
