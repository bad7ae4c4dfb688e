/* postgres_wake.h — private: PostgreSQL wake-ups (postgres_wake.c) for postgres.c. */
#ifndef SG_POSTGRES_WAKE_H
#define SG_POSTGRES_WAKE_H
#include "wake.h"

/* A registry whose listener connects with connect(ud) (a plain PGconn) and
 * LISTENs on channel (an identifier of at most 63 bytes, copied) while any
 * key is watched. timeout_ms bounds LISTEN/UNLISTEN. NULL on ENOMEM. */
sg_wake *sg_pg_wake_new(void *(*connect)(void *ud), const char *channel, int timeout_ms,
                        void *ud);
/* A key's topic: md5(storage key) in hex, as the release's pg_notify sends it. */
void sg_pg_wake_topic(const char *storage_key, char out[33]);
#endif
