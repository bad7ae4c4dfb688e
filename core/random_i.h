/* random_i.h — private to core/: the jitter source shared by the retry
 * helper and the lease logic. */
#ifndef SG_RANDOM_I_H
#define SG_RANDOM_I_H

/* Uniform [0,1) from a per-thread generator seeded by getrandom (not for
 * secrets: lockIds come from sg_lock_id_generate). */
double sg_uniform01(void);

#endif
