/* backends.h — private: the open functions the URL registry dispatches to. */
#ifndef SG_BACKENDS_H
#define SG_BACKENDS_H
#include "syncguard_backend.h"
#include "url.h"

/* secret.c: a secret file (password, token, credentials JSON): at most max bytes,
 * trailing newlines trimmed; a read failure is `code`. Free with sg_secret_free. */
char *sg_secret_read(const char *path, size_t max, sg_code code, sg_error *err);
void sg_secret_free(char *s);

sg_status sg_redis_open(const sg_url *url, const sg_open_opts *opts, sg_backend **out,
                        sg_error *err);
sg_status sg_postgres_open(const sg_url *url, const sg_open_opts *opts, sg_backend **out,
                           sg_error *err);
sg_status sg_firestore_open(const sg_url *url, const sg_open_opts *opts, sg_backend **out,
                            sg_error *err);
#endif
