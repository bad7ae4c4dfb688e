/* registry.c — open a backend by URL scheme, so callers never name one. */
#include "backends.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef sg_status (*open_fn)(const char *, const sg_open_opts *, sg_backend **, sg_error *);

static const struct {
    const char *scheme;
    const char *backend;
    open_fn open; /* NULL: known scheme, backend not built yet */
} registry[] = {
    {"redis://", "redis", sg_redis_open},
    {"unix://", "redis", sg_redis_open},
    {"postgres://", "postgres", sg_postgres_open},
    {"postgresql://", "postgres", sg_postgres_open},
    {"firestore://", "firestore", sg_firestore_open},
};

char *sg_secret_read(const char *path, size_t max, sg_code code, sg_error *err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        sg_error_set(err, code, "cannot read secret file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *s = malloc(max + 1);
    size_t n = s ? fread(s, 1, max, f) : 0;
    fclose(f);
    if (!s) {
        sg_error_set(err, SG_E_INTERNAL, "out of memory");
        return NULL;
    }
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    s[n] = '\0';
    return s;
}

sg_backend *sg_backend_alloc(const sg_backend_ops *ops, sg_capabilities caps, size_t impl_size,
                             sg_error *err)
{
    sg_backend *b = calloc(1, sizeof *b);
    void *impl = calloc(1, impl_size);
    if (!b || !impl) {
        free(b);
        free(impl);
        sg_error_set(err, SG_E_INTERNAL, "out of memory");
        return NULL;
    }
    *b = (sg_backend){ops, caps, impl};
    return b;
}

void sg_secret_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

sg_status sg_backend_open(const char *url, const sg_open_opts *opts, sg_backend **out,
                          sg_error *err)
{
    sg_error_clear(err);
    *out = NULL;
    if (!url || !*url)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "backend URL is empty");
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
        if (strncasecmp(url, registry[i].scheme, strlen(registry[i].scheme)) != 0)
            continue;
        if (!registry[i].open)
            return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                "the %s backend is not implemented yet in this build "
                                "(supported: %s)",
                                registry[i].backend, sg_backend_schemes());
        if (!opts || !opts->password_file || opts->password)
            return registry[i].open(url, opts, out, err);
        /* one reader of secret files for every backend */
        sg_open_opts o = *opts;
        char *pw = sg_secret_read(opts->password_file, 1024, SG_E_INVALID_ARGUMENT, err);
        if (!pw)
            return SG_ERROR;
        o.password = pw;
        sg_status st = registry[i].open(url, &o, out, err);
        sg_secret_free(pw);
        return st;
    }
    return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                        "unsupported backend URL scheme (supported: %s)", sg_backend_schemes());
}

const char *sg_backend_schemes(void)
{
    return "redis://, unix://, postgres://, postgresql://, firestore://";
}
