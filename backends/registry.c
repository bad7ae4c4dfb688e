/* registry.c — open a backend by URL scheme, so callers never name one. */
#include "backends.h"

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
        return registry[i].open(url, opts, out, err);
    }
    return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                        "unsupported backend URL scheme (supported: %s)", sg_backend_schemes());
}

const char *sg_backend_schemes(void)
{
    return "redis://, unix://, postgres://, postgresql://, firestore://";
}
