/* renewer_i.h — private to core/: a renewer whose renewals come every
 * fixed_interval_ms (the heartbeat's interval_ms) instead of the lease rule's
 * TTL/3; 0 means the lease rule. Otherwise as sg_renewer_start. */
#ifndef SG_RENEWER_I_H
#define SG_RENEWER_I_H
#include "syncguard.h"

sg_status sg_renewer_start_fixed(sg_backend *b, unsigned workers, int64_t fixed_interval_ms,
                                 sg_lease_lost_fn on_lost, void *ud, sg_renewer **out,
                                 sg_error *err);
#endif
