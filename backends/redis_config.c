/* redis_config.c — the settings of a Redis connection from its URL
 * (redis://, rediss://, unix://) and the open options: address, database,
 * credentials, timeouts, and the TLS context every connection of a backend
 * shares. Declared in redis_transport.h, whose connections use it. */
#include "redis_transport.h"

#include "backends.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- configuration ---- */
static bool parse_int(const char *s, long lo, long hi, long *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 10)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* The first OpenSSL error as text (for messages), and the queue cleared. */
static const char *ssl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, n, "%s", r ? r : "unknown reason");
    ERR_clear_error();
    return buf;
}

typedef struct tls_files {
    const char *ca, *cert, *key;
} tls_files;

/* The TLS context shared by every connection of a backend. Paths of the CA
 * and certificate are named in errors; the private key's is not (it is
 * redacted everywhere, see docs/decisions.md). */
static sg_status build_ssl_ctx(sg_redis_config *cfg, const tls_files *f, sg_error *err)
{
    char why[160] = "";
    const char *unreadable = f->ca && access(f->ca, R_OK) ? "tls_ca"
                             : f->cert && access(f->cert, R_OK) ? "tls_cert"
                                                                : NULL;
    if (unreadable)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "cannot read %s=%s: %s", unreadable,
                            !strcmp(unreadable, "tls_ca") ? f->ca : f->cert, strerror(errno));
    if (f->key && access(f->key, R_OK))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "cannot read tls_key= (path not shown): %s",
                            strerror(errno));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return sg_error_set(err, SG_E_INTERNAL, "cannot create a TLS context: %s",
                            ssl_reason(why, sizeof why));
    cfg->ssl_ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1); /* a record's header and body in one read() */
    SSL_CTX_set_verify(ctx, cfg->tls_insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (f->ca ? SSL_CTX_load_verify_locations(ctx, f->ca, NULL) != 1
              : SSL_CTX_set_default_verify_paths(ctx) != 1)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "cannot load the CA certificates %s%s: %s",
                            f->ca ? "in tls_ca=" : "of the system", f->ca ? f->ca : "",
                            ssl_reason(why, sizeof why));
    if (!f->cert != !f->key)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "tls_cert= and tls_key= go together (a client certificate and its "
                            "private key)");
    if (f->cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1)
            return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                "cannot load the client certificate tls_cert=%s: %s", f->cert,
                                ssl_reason(why, sizeof why));
        struct stat st;
        if (stat(f->key, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
            sg_log(SG_LOG_WARN,
                   "redis: the TLS private key (tls_key=) is readable by %s (mode %03o): "
                   "chmod 600 it",
                   (st.st_mode & 007) ? "others" : "its group", (unsigned)(st.st_mode & 0777));
        if (SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1 &&
            !strstr(ssl_reason(why, sizeof why), "mismatch"))
            return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                "cannot load the TLS private key (tls_key=): %s", why);
        if (strstr(why, "mismatch") || SSL_CTX_check_private_key(ctx) != 1)
            return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                "tls_key= is not the private key of tls_cert=%s", f->cert);
    }
    return SG_OK;
}

static sg_status set_timeout(int *ms, const char *name, const char *v, sg_error *err)
{
    long n;
    if (!parse_int(v, 1, 3600000, &n))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "%s must be 1..3600000 milliseconds",
                            name);
    *ms = (int)n;
    return SG_OK;
}

/* Query parameters of the connection (tls files into *f; *pwfile points into u). */
static sg_status apply_params(sg_redis_config *cfg, const sg_url *u, const char *const *extra,
                              const char **pwfile, tls_files *f, sg_error *err)
{
    for (size_t i = 0; i < u->n_params; i++) {
        const char *k = u->params[i].name, *v = u->params[i].value;
        long n;
        bool known = false;
        for (const char *const *e = extra; e && *e && !known; e++)
            known = !strcmp(k, *e);
        if (known)
            continue;
        if (!strcmp(k, "db")) {
            if (!parse_int(v, 0, 1000000, &n))
                return sg_error_set(err, SG_E_INVALID_ARGUMENT, "db must be a number");
            cfg->db = (int)n;
        } else if (!strcmp(k, "connect_timeout_ms")) {
            if (set_timeout(&cfg->connect_timeout_ms, k, v, err) != SG_OK)
                return SG_ERROR;
        } else if (!strcmp(k, "command_timeout_ms")) {
            if (set_timeout(&cfg->command_timeout_ms, k, v, err) != SG_OK)
                return SG_ERROR;
        } else if (!strcmp(k, "password_file")) {
            *pwfile = v;
        } else if (!strncmp(k, "tls_", 4) && u->kind != SG_URL_REDISS) {
            return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                "%.20s= needs a rediss:// URL (TLS)", k);
        } else if (!strcmp(k, "tls_ca") || !strcmp(k, "tls_cert") || !strcmp(k, "tls_key")) {
            if (!*v)
                return sg_error_set(err, SG_E_INVALID_ARGUMENT, "%s= needs a file", k);
            *(!strcmp(k, "tls_ca") ? &f->ca : !strcmp(k, "tls_cert") ? &f->cert : &f->key) = v;
        } else if (!strcmp(k, "tls_insecure")) {
            if (strcmp(v, "0") && strcmp(v, "1"))
                return sg_error_set(err, SG_E_INVALID_ARGUMENT, "tls_insecure must be 0 or 1");
            cfg->tls_insecure = v[0] == '1';
        } else {
            return sg_error_set(err, SG_E_INVALID_ARGUMENT, "unknown URL parameter '%.40s'",
                                sg_url_secret_name(k, strlen(k)) ? "(a secret)" : k);
        }
    }
    return SG_OK;
}

static sg_status address(sg_redis_config *cfg, const sg_url *u, sg_error *err)
{
    if (u->kind == SG_URL_UNIX) {
        if (u->n_hosts || !u->path || u->path[0] != '/' ||
            strlen(u->path) >= sizeof cfg->socket_path)
            return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                "unix:// URL needs an absolute socket path under 108 bytes "
                                "(unix:///path/redis.sock)");
        snprintf(cfg->socket_path, sizeof cfg->socket_path, "%s", u->path);
        return SG_OK;
    }
    if (u->n_hosts > 1)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "one host per Redis URL (Redis Cluster is not supported)");
    const char *host = u->n_hosts ? u->hosts[0].name : "";
    if (strlen(host) >= sizeof cfg->host)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "host name too long");
    snprintf(cfg->host, sizeof cfg->host, "%s", *host ? host : "127.0.0.1");
    for (const char *h = cfg->host; *h; h++)
        if (*h == '%' || *h == '@' || *h == '/' || (unsigned char)*h <= ' ')
            return sg_error_set(err, SG_E_INVALID_ARGUMENT, "invalid host in Redis URL");
    cfg->port = u->n_hosts && u->hosts[0].port ? u->hosts[0].port : 6379;
    long n;
    if (u->path && *u->path) {
        if (!parse_int(u->path, 0, 1000000, &n))
            return sg_error_set(err, SG_E_INVALID_ARGUMENT, "database must be a number");
        cfg->db = (int)n;
    }
    return SG_OK;
}

/* The password: opts first, then the URL's, password_file=, the environment. */
static sg_status password(sg_redis_config *cfg, const sg_url *u, const sg_open_opts *o,
                          const char *pwfile, sg_error *err)
{
    if ((u->user && !(cfg->user = strdup(u->user))) ||
        (u->password && !(cfg->password = strdup(u->password))))
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    char *pw = NULL;
    if (o->password)
        pw = strdup(o->password);
    else if (!cfg->password && pwfile) {
        if (!(pw = sg_secret_read(pwfile, 1024, SG_E_INVALID_ARGUMENT, err)))
            return SG_ERROR;
    } else if (!cfg->password && getenv("SYNCGUARD_REDIS_PASSWORD"))
        pw = strdup(getenv("SYNCGUARD_REDIS_PASSWORD"));
    if (pw) {
        sg_secret_free(cfg->password);
        cfg->password = pw;
    }
    if (cfg->password && !cfg->password[0]) { /* "redis://:@host": no password */
        free(cfg->password);
        cfg->password = NULL;
    }
    if (cfg->user && !cfg->password)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "a Redis user name needs a password (redis://user:password@host, "
                            "password_file= or SYNCGUARD_REDIS_PASSWORD)");
    return SG_OK;
}

sg_status sg_redis_config_parse(sg_redis_config *cfg, const sg_url *u, const sg_open_opts *opts,
                                const char *const *extra, sg_error *err)
{
    sg_open_opts o = opts ? *opts : (sg_open_opts){0};
    memset(cfg, 0, sizeof *cfg);
    cfg->connect_timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 2000;
    cfg->command_timeout_ms = o.command_timeout_ms > 0 ? o.command_timeout_ms : 2000;
    cfg->tls = u->kind == SG_URL_REDISS;
    const char *pwfile = NULL;
    tls_files f = {0};
    if (apply_params(cfg, u, extra, &pwfile, &f, err) != SG_OK || address(cfg, u, err) != SG_OK ||
        password(cfg, u, &o, pwfile, err) != SG_OK)
        return SG_ERROR;
    if (!cfg->tls)
        return SG_OK;
    if (cfg->tls_insecure)
        sg_log(SG_LOG_WARN,
               "redis: tls_insecure=1 — THE SERVER'S CERTIFICATE IS NOT VERIFIED: anyone on the "
               "network path to %s can pose as Redis, read the password and grant or take "
               "locks. Use tls_ca=FILE instead.",
               cfg->host);
    return build_ssl_ctx(cfg, &f, err);
}

void sg_redis_config_free(sg_redis_config *cfg)
{
    if (!cfg)
        return;
    sg_secret_free(cfg->password);
    free(cfg->user);
    SSL_CTX_free(cfg->ssl_ctx);
    memset(cfg, 0, sizeof *cfg);
}
