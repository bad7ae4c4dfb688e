/* registry.c — open a backend by URL, so callers never name one. The URL is
 * parsed once (url.c) and each backend reads the parsed form. */
#include "backends.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sg_status open_parsed(const sg_url *u, const sg_open_opts *opts, sg_backend **out,
                             sg_error *err)
{
    switch (u->kind) {
    case SG_URL_REDIS:
    case SG_URL_REDISS:
    case SG_URL_UNIX:
        return sg_redis_open(u, opts, out, err);
    case SG_URL_POSTGRES:
    case SG_URL_CONNINFO:
        return sg_postgres_open(u, opts, out, err);
    case SG_URL_FIRESTORE:
        return sg_firestore_open(u, opts, out, err);
    }
    return sg_error_set(err, SG_E_INVALID_ARGUMENT, "unsupported backend URL");
}

sg_status sg_backend_open(const char *url, const sg_open_opts *opts, sg_backend **out,
                          sg_error *err)
{
    sg_error_clear(err);
    *out = NULL;
    sg_url u;
    sg_status st = sg_url_parse(url, &u, err);
    if (st == SG_OK && opts && opts->password_file && !opts->password) {
        /* one reader of secret files for every backend */
        sg_open_opts o = *opts;
        char *pw = sg_secret_read(opts->password_file, 1024, SG_E_INVALID_ARGUMENT, err);
        if (!pw) {
            st = SG_ERROR;
        } else {
            o.password = pw;
            st = open_parsed(&u, &o, out, err);
            sg_secret_free(pw);
        }
    } else if (st == SG_OK) {
        st = open_parsed(&u, opts, out, err);
    }
    sg_url_free(&u);
    return st;
}

const char *sg_backend_schemes(void)
{
    return "redis://, rediss://, unix://, postgres://, postgresql://, firestore://";
}
