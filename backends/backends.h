/* backends.h — private: the open functions the URL registry dispatches to. */
#ifndef SG_BACKENDS_H
#define SG_BACKENDS_H
#include "syncguard.h"

sg_status sg_redis_open(const char *url, const sg_open_opts *opts, sg_backend **out,
                        sg_error *err);
sg_status sg_postgres_open(const char *url, const sg_open_opts *opts, sg_backend **out,
                           sg_error *err);
sg_status sg_firestore_open(const char *url, const sg_open_opts *opts, sg_backend **out,
                            sg_error *err);
#endif
