/* url.h — private to the backends: the one parser of backend URLs (every
 * scheme, and libpq key=value connection strings). The public face is
 * sg_url_redact() in syncguard.h, built on the same parser.
 *
 * Forms (see docs/redis.md, docs/postgres.md, docs/firestore.md):
 *   redis[s]://[user][:password@]host[:port][/db][?name=value&...]
 *   unix://[[user]:password@]/path/to/redis.sock[?...]
 *   postgres[ql]://[user[:password]@][host[:port][,host[:port]...]][/dbname][?...]
 *   host=... dbname=... password='...'           (libpq key=value string)
 *   firestore://PROJECT[/DATABASE][?...]
 * Rules: the userinfo ends at the LAST '@' before the query (so a password
 * may hold '@', ':' and '/' unencoded); '?' in a password must be written
 * %3F. A '/' right after "://" means no authority at all (unix sockets,
 * postgres:///db?host=/run/postgresql). IPv6 literals go in brackets. user,
 * password, host, path and query names/values are percent-decoded (%00 is
 * refused). */
#ifndef SG_URL_H
#define SG_URL_H
#include <stdbool.h>
#include <stddef.h>

#include "syncguard.h"

#define SG_URL_MAX 8192 /* longer input is refused */

typedef enum sg_url_kind {
    SG_URL_REDIS,
    SG_URL_REDISS, /* redis over TLS */
    SG_URL_UNIX,
    SG_URL_POSTGRES,
    SG_URL_CONNINFO, /* libpq key=value: every item is in params, password too */
    SG_URL_FIRESTORE,
} sg_url_kind;

typedef struct sg_url_host {
    char *name; /* decoded, IPv6 without brackets; "" when omitted */
    int port;   /* 0 when omitted */
} sg_url_host;

typedef struct sg_url_param {
    char *name, *value; /* decoded */
} sg_url_param;

typedef struct sg_url {
    sg_url_kind kind;
    char *user;          /* NULL when absent */
    char *password;      /* NULL when absent; "" for "user:@" */
    sg_url_host *hosts;  /* the authority's hosts (postgres may list several) */
    size_t n_hosts;      /* 0 when the authority is empty */
    char *path;          /* decoded, without the leading '/' (unix: the absolute
                            socket path); NULL when none */
    sg_url_param *params; /* query items (or conninfo items) in order */
    size_t n_params;
} sg_url;

/* Parse url into *out (zeroed first; free with sg_url_free even on error).
 * SG_ERROR InvalidArgument with a message that never quotes a secret. */
sg_status sg_url_parse(const char *url, sg_url *out, sg_error *err);
/* Free everything, wiping the password and secret parameter values. */
void sg_url_free(sg_url *u);
/* The value of the last parameter called name, or NULL. */
const char *sg_url_get(const sg_url *u, const char *name);
/* A parameter whose value is a secret (password=, sslpassword=, token=, ...);
 * names ending in "file" (paths to secrets) are not. Case-insensitive. */
bool sg_url_secret_name(const char *name, size_t len);
/* The scheme word for messages ("redis", "postgres", ...). */
const char *sg_url_kind_name(sg_url_kind kind);
#endif
