/* redis_wake.h — private: Redis wake-ups (redis_wake.c) for redis.c. */
#ifndef SG_REDIS_WAKE_H
#define SG_REDIS_WAKE_H
#include "wake.h"

/* A registry whose subscriber connects with connect(ud) (a redisContext
 * with AUTH/SELECT done) and closes it with close. NULL on ENOMEM. */
sg_wake *sg_redis_wake_new(void *(*connect)(void *ud, sg_error *err), void (*close)(void *conn),
                           void *ud);
/* The channel a release of the lock at storage key lock_key publishes on. */
#define SG_REDIS_WAKE_SUFFIX ":wake"
#endif
