/* url.c — the one parser of backend URLs and the one redaction of them.
 *
 * Both start from the same structural split (split_uri / conninfo_items), so
 * what the backends log in with and what /proc/mounts, ps and the logs show
 * can never disagree about where a password ends. */
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *prefix;
    sg_url_kind kind;
} schemes[] = {
    {"redis://", SG_URL_REDIS},       {"rediss://", SG_URL_REDISS},
    {"unix://", SG_URL_UNIX},
    {"postgres://", SG_URL_POSTGRES}, {"postgresql://", SG_URL_POSTGRES},
    {"firestore://", SG_URL_FIRESTORE},
};

const char *sg_url_kind_name(sg_url_kind kind)
{
    switch (kind) {
    case SG_URL_REDIS:
        return "redis";
    case SG_URL_REDISS:
        return "rediss";
    case SG_URL_UNIX:
        return "unix";
    case SG_URL_POSTGRES:
    case SG_URL_CONNINFO:
        return "postgres";
    case SG_URL_FIRESTORE:
        return "firestore";
    }
    return "?";
}

/* ---- the structural split ---- */
typedef struct span {
    size_t off, len;
} span;

typedef struct uri_parts {
    size_t scheme_len; /* through "://" */
    bool has_userinfo;
    span userinfo; /* without the '@' */
    span authority; /* host[:port][,host[:port]...] */
    bool has_path;
    span path; /* from its '/' */
    bool has_query;
    span query; /* after the '?' */
} uri_parts;

/* Split "scheme://[userinfo@]authority[/path][?query]" (any scheme word).
 * The userinfo ends at the last '@' before the first '?'; a '/' right after
 * "://" means an empty authority. false when there is no "scheme://". */
static bool split_uri(const char *s, size_t n, uri_parts *p)
{
    memset(p, 0, sizeof *p);
    size_t i = 0;
    if (n == 0 || !isalpha((unsigned char)s[0]))
        return false;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i + 3 > n || memcmp(s + i, "://", 3) != 0)
        return false;
    p->scheme_len = i + 3;
    size_t start = p->scheme_len;
    const char *q = memchr(s + start, '?', n - start);
    size_t qpos = q ? (size_t)(q - s) : n;
    size_t host_start = start;
    if (start < n && s[start] != '/') {
        for (size_t j = qpos; j > start; j--) {
            if (s[j - 1] == '@') {
                p->has_userinfo = true;
                p->userinfo = (span){start, j - 1 - start};
                host_start = j;
                break;
            }
        }
    }
    size_t k = host_start;
    while (k < qpos && s[k] != '/')
        k++;
    p->authority = (span){host_start, k - host_start};
    if (k < qpos) {
        p->has_path = true;
        p->path = (span){k, qpos - k};
    }
    if (q) {
        p->has_query = true;
        p->query = (span){qpos + 1, n - qpos - 1};
    }
    return true;
}

/* One key=value item of a libpq connection string: the spans of the whole
 * item (for redaction), the name, and the raw value (quotes and backslash
 * escapes still in it). */
typedef struct ci_item {
    span whole, name, value;
    bool quoted;
} ci_item;

static bool ci_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* libpq's conninfo_parse rules: name = value, value bare (ends at white
 * space) or in single quotes; backslash escapes the next character. Calls
 * fn for each item; false on malformed input. */
static bool conninfo_items(const char *s, size_t n, bool (*fn)(const char *, const ci_item *, void *),
                           void *ud)
{
    size_t i = 0;
    for (;;) {
        while (i < n && ci_space(s[i]))
            i++;
        if (i >= n)
            return true;
        ci_item it = {0};
        it.whole.off = it.name.off = i;
        while (i < n && !ci_space(s[i]) && s[i] != '=')
            i++;
        it.name.len = i - it.name.off;
        while (i < n && ci_space(s[i]))
            i++;
        if (it.name.len == 0 || i >= n || s[i] != '=')
            return false;
        i++;
        while (i < n && ci_space(s[i]))
            i++;
        if (i < n && s[i] == '\'') {
            it.quoted = true;
            it.value.off = ++i;
            while (i < n && s[i] != '\'') {
                if (s[i] == '\\')
                    i++;
                i++;
            }
            if (i >= n)
                return false; /* unterminated quote */
            it.value.len = i - it.value.off;
            i++;
        } else {
            it.value.off = i;
            while (i < n && !ci_space(s[i])) {
                if (s[i] == '\\')
                    i++;
                i++;
            }
            if (i > n)
                return false; /* a trailing backslash */
            it.value.len = i - it.value.off;
        }
        it.whole.len = i - it.whole.off;
        if (!fn(s, &it, ud))
            return false;
    }
}

static bool looks_like_conninfo(const char *s)
{
    while (ci_space(*s))
        s++;
    if (!isalpha((unsigned char)*s) && *s != '_')
        return false;
    while (isalnum((unsigned char)*s) || *s == '_')
        s++;
    while (ci_space(*s))
        s++;
    return *s == '=';
}

/* ---- decoding ---- */
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode n bytes of s into a new string; NULL when malformed, %00,
 * or out of memory (*oom tells which). */
static char *pct_decode(const char *s, size_t n, bool *oom)
{
    char *out = malloc(n + 1);
    if (!out) {
        *oom = true;
        return NULL;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[j++] = s[i];
            continue;
        }
        int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi | lo) == 0) {
            free(out);
            return NULL;
        }
        out[j++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[j] = '\0';
    return out;
}

/* A conninfo value without its quotes and escapes. */
static char *ci_unescape(const char *s, const ci_item *it)
{
    char *out = malloc(it->value.len + 1);
    if (!out)
        return NULL;
    size_t j = 0;
    for (size_t i = it->value.off; i < it->value.off + it->value.len; i++) {
        if (s[i] == '\\' && i + 1 < it->value.off + it->value.len)
            i++;
        out[j++] = s[i];
    }
    out[j] = '\0';
    return out;
}

bool sg_url_secret_name(const char *name, size_t len)
{
    char low[64];
    if (len >= sizeof low)
        len = sizeof low - 1;
    for (size_t i = 0; i < len; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[len] = '\0';
    if (len >= 4 && !strcmp(low + len - 4, "file"))
        return false; /* a path to a secret: password_file=, token_file=, passfile= */
    static const char *const words[] = {"pass", "pwd", "secret", "token", "apikey", "api_key",
                                         "auth"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(low, words[i]))
            return true;
    return false;
}

/* ---- parsing ---- */
typedef struct parse_ctx {
    sg_url *u;
    sg_error *err;
    sg_status st;
} parse_ctx;

static sg_status oom(sg_error *err)
{
    return sg_error_set(err, SG_E_INTERNAL, "out of memory");
}

static sg_status add_param(sg_url *u, char *name, char *value, sg_error *err)
{
    sg_url_param *p = realloc(u->params, (u->n_params + 1) * sizeof *p);
    if (!p) {
        free(name);
        free(value);
        return oom(err);
    }
    u->params = p;
    p[u->n_params++] = (sg_url_param){name, value};
    return SG_OK;
}

static bool ci_collect(const char *s, const ci_item *it, void *ud)
{
    parse_ctx *c = ud;
    char *name = strndup(s + it->name.off, it->name.len);
    char *value = ci_unescape(s, it);
    if (!name || !value) {
        free(name);
        free(value);
        c->st = oom(c->err);
        return false;
    }
    c->st = add_param(c->u, name, value, c->err);
    return c->st == SG_OK;
}

static sg_status parse_hosts(const char *s, span a, sg_url *u, sg_error *err)
{
    if (a.len == 0)
        return SG_OK;
    size_t count = 1;
    for (size_t i = a.off; i < a.off + a.len; i++)
        count += s[i] == ',';
    u->hosts = calloc(count, sizeof *u->hosts);
    if (!u->hosts)
        return oom(err);
    size_t i = a.off, end = a.off + a.len;
    while (i <= end && u->n_hosts < count) { /* count may include commas inside [] */
        size_t item_end = i;
        if (s[i] == '[') {
            while (item_end < end && s[item_end] != ']')
                item_end++;
            if (item_end >= end)
                return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                    "malformed IPv6 host in URL (missing ']')");
        }
        while (item_end < end && s[item_end] != ',')
            item_end++;
        size_t name_off = i, name_len, port_off = 0, port_len = 0;
        bool has_port = false;
        if (s[i] == '[') {
            const char *rb = memchr(s + i, ']', item_end - i);
            name_off = i + 1;
            name_len = (size_t)(rb - s) - name_off;
            size_t after = (size_t)(rb - s) + 1;
            if (after < item_end) {
                if (s[after] != ':')
                    return sg_error_set(err, SG_E_INVALID_ARGUMENT, "malformed host in URL");
                has_port = true;
                port_off = after + 1;
                port_len = item_end - port_off;
            }
            if (name_len == 0)
                return sg_error_set(err, SG_E_INVALID_ARGUMENT, "empty IPv6 host in URL");
        } else {
            const char *colon = memchr(s + i, ':', item_end - i);
            name_len = (colon ? (size_t)(colon - s) : item_end) - i;
            if (colon) {
                has_port = true;
                port_off = (size_t)(colon - s) + 1;
                port_len = item_end - port_off;
            }
        }
        sg_url_host *h = &u->hosts[u->n_hosts++];
        if (has_port) {
            long v = 0;
            bool ok = port_len > 0 && port_len <= 5;
            for (size_t k = 0; ok && k < port_len; k++) {
                ok = s[port_off + k] >= '0' && s[port_off + k] <= '9';
                v = v * 10 + (s[port_off + k] - '0');
            }
            if (!ok || v < 1 || v > 65535)
                return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                    "port must be 1..65535 (IPv6 hosts go in brackets: "
                                    "[::1]:6379)");
            h->port = (int)v;
        }
        bool bad = false;
        h->name = pct_decode(s + name_off, name_len, &bad);
        if (!h->name)
            return bad ? oom(err)
                       : sg_error_set(err, SG_E_INVALID_ARGUMENT, "malformed %%-escape in host");
        if (strchr(h->name, ','))
            return sg_error_set(err, SG_E_INVALID_ARGUMENT, "a host name cannot contain ','");
        i = item_end + 1;
    }
    return SG_OK;
}

static sg_status parse_query(const char *s, span q, sg_url *u, sg_error *err)
{
    size_t i = q.off, end = q.off + q.len;
    while (i < end) {
        const char *amp = memchr(s + i, '&', end - i);
        size_t item_end = amp ? (size_t)(amp - s) : end;
        if (item_end > i) { /* empty items ("a=1&&b=2", a trailing '&') are skipped */
            const char *eq = memchr(s + i, '=', item_end - i);
            if (!eq || eq == s + i)
                return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                    "malformed URL query: every parameter is name=value");
            bool bad = false;
            char *name = pct_decode(s + i, (size_t)(eq - s) - i, &bad);
            char *value = name ? pct_decode(eq + 1, item_end - (size_t)(eq - s) - 1, &bad) : NULL;
            if (!name || !value) {
                free(name);
                return bad ? oom(err)
                           : sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                          "malformed %%-escape in URL query");
            }
            if (add_param(u, name, value, err) != SG_OK)
                return SG_ERROR;
        }
        i = item_end + 1;
    }
    return SG_OK;
}

/* The generic parse; any_scheme lets the redaction read URLs of schemes no
 * backend serves. */
static sg_status parse(const char *url, sg_url *u, bool any_scheme, sg_error *err)
{
    memset(u, 0, sizeof *u);
    if (!url || !*url)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "backend URL is empty");
    size_t n = strnlen(url, SG_URL_MAX + 1);
    if (n > SG_URL_MAX)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "backend URL longer than %d bytes",
                            SG_URL_MAX);
    uri_parts p;
    if (!split_uri(url, n, &p)) {
        if (!looks_like_conninfo(url))
            return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                "unsupported backend URL (supported: %s, or a PostgreSQL "
                                "key=value connection string)",
                                sg_backend_schemes());
        for (size_t i = 0; i < n; i++)
            if (((unsigned char)url[i] < 0x20 && !ci_space(url[i])) || url[i] == 0x7f)
                return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                    "connection string contains control characters");
        u->kind = SG_URL_CONNINFO;
        parse_ctx c = {u, err, SG_OK};
        if (!conninfo_items(url, n, ci_collect, &c))
            return c.st != SG_OK ? c.st
                                 : sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                                "malformed connection string (name=value "
                                                "items; quote values with spaces in '...')");
        return SG_OK;
    }
    bool known = false;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        if (p.scheme_len == strlen(schemes[i].prefix) &&
            !strncasecmp(url, schemes[i].prefix, p.scheme_len)) {
            u->kind = schemes[i].kind;
            known = true;
        }
    }
    if (!known && !any_scheme)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "unsupported backend URL scheme (supported: %s)",
                            sg_backend_schemes());
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] < 0x20 || url[i] == 0x7f)
            return sg_error_set(err, SG_E_INVALID_ARGUMENT, "URL contains control characters");
    bool bad = false;
    if (p.has_userinfo) {
        const char *ui = url + p.userinfo.off;
        const char *colon = memchr(ui, ':', p.userinfo.len);
        size_t ulen = colon ? (size_t)(colon - ui) : p.userinfo.len;
        if (ulen > 0 && !(u->user = pct_decode(ui, ulen, &bad)))
            return bad ? oom(err)
                       : sg_error_set(err, SG_E_INVALID_ARGUMENT, "malformed %%-escape in user");
        if (colon && !(u->password = pct_decode(colon + 1, p.userinfo.len - ulen - 1, &bad)))
            return bad ? oom(err)
                       : sg_error_set(err, SG_E_INVALID_ARGUMENT,
                                      "malformed %%-escape in password");
    }
    if (parse_hosts(url, p.authority, u, err) != SG_OK)
        return SG_ERROR;
    if (p.has_path) {
        size_t skip = u->kind == SG_URL_UNIX ? 0 : 1; /* unix: the absolute path */
        if (!(u->path = pct_decode(url + p.path.off + skip, p.path.len - skip, &bad)))
            return bad ? oom(err)
                       : sg_error_set(err, SG_E_INVALID_ARGUMENT, "malformed %%-escape in path");
    }
    if (p.has_query && parse_query(url, p.query, u, err) != SG_OK)
        return SG_ERROR;
    return SG_OK;
}

sg_status sg_url_parse(const char *url, sg_url *out, sg_error *err)
{
    return parse(url, out, false, err);
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void sg_url_free(sg_url *u)
{
    if (!u)
        return;
    free(u->user);
    wipe_free(u->password);
    for (size_t i = 0; i < u->n_hosts; i++)
        free(u->hosts[i].name);
    free(u->hosts);
    free(u->path);
    for (size_t i = 0; i < u->n_params; i++) {
        free(u->params[i].name);
        wipe_free(u->params[i].value);
    }
    free(u->params);
    memset(u, 0, sizeof *u);
}

const char *sg_url_get(const sg_url *u, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < u->n_params; i++)
        if (!strcmp(u->params[i].name, name))
            v = u->params[i].value;
    return v;
}

/* ---- redaction ---- */
/* The path of a TLS private key (Redis tls_key=, libpq sslkey=). Not a
 * secret itself, but it says where the one file lives that lets anyone pose
 * as this client, and mount tables and ps are world-readable: hidden.
 * CA and certificate paths (public material) stay visible. */
static bool private_key_path(const char *name, size_t nlen)
{
    return (nlen == 7 && !strncasecmp(name, "tls_key", 7)) ||
           (nlen == 6 && !strncasecmp(name, "sslkey", 6));
}

/* A value that may carry a whole nested URL or connection string (libpq
 * expands a dbname that looks like one) is hidden as if it were a secret. */
static bool hide_param(const char *name, size_t nlen, const char *value)
{
    return sg_url_secret_name(name, nlen) || private_key_path(name, nlen) ||
           strstr(value, "://") || strchr(value, '=') || strchr(value, '@');
}

typedef struct out_buf {
    char *p;
    size_t n;
} out_buf;

static void put(out_buf *o, const char *s, size_t n)
{
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

static bool ci_redact(const char *s, const ci_item *it, void *ud)
{
    out_buf *o = ud;
    char *v = ci_unescape(s, it);
    if (!v)
        return false;
    bool hide = hide_param(s + it->name.off, it->name.len, v);
    wipe_free(v);
    if (!hide) {
        if (o->n)
            put(o, " ", 1);
        put(o, s + it->whole.off, it->whole.len);
    }
    return true;
}

/* What is shown for input that cannot be parsed: the scheme only. */
static char *unparsable(const char *url)
{
    uri_parts p;
    char buf[96];
    if (split_uri(url, strnlen(url, 40), &p))
        snprintf(buf, sizeof buf, "%.*s(unparsable URL not shown)", (int)p.scheme_len, url);
    else
        snprintf(buf, sizeof buf, "(unparsable backend URL not shown)");
    return strdup(buf);
}

char *sg_url_redact(const char *url)
{
    if (!url)
        return strdup("");
    sg_url u;
    sg_status st = parse(url, &u, true, NULL);
    sg_url_free(&u);
    if (st != SG_OK)
        return unparsable(url);
    size_t n = strlen(url);
    out_buf o = {malloc(2 * n + 2), 0}; /* conninfo items may gain a separator */
    if (!o.p)
        return NULL;
    o.p[0] = '\0';
    uri_parts p;
    if (!split_uri(url, n, &p)) { /* a key=value connection string */
        if (!conninfo_items(url, n, ci_redact, &o)) {
            free(o.p);
            return unparsable(url);
        }
        return o.p;
    }
    put(&o, url, p.scheme_len);
    if (p.has_userinfo) { /* keep the user name, drop the password */
        const char *ui = url + p.userinfo.off;
        const char *colon = memchr(ui, ':', p.userinfo.len);
        size_t ulen = colon ? (size_t)(colon - ui) : p.userinfo.len;
        if (ulen) {
            put(&o, ui, ulen);
            put(&o, "@", 1);
        }
    }
    put(&o, url + p.authority.off, p.authority.len);
    if (p.has_path)
        put(&o, url + p.path.off, p.path.len);
    if (p.has_query) {
        bool first = true;
        size_t i = p.query.off, end = p.query.off + p.query.len;
        while (i < end) {
            const char *amp = memchr(url + i, '&', end - i);
            size_t item_end = amp ? (size_t)(amp - url) : end;
            const char *eq = memchr(url + i, '=', item_end - i);
            if (eq) {
                bool bad = false;
                char *name = pct_decode(url + i, (size_t)(eq - url) - i, &bad);
                char *value = pct_decode(eq + 1, item_end - (size_t)(eq - url) - 1, &bad);
                bool hide = !name || !value || hide_param(name, strlen(name), value);
                free(name);
                wipe_free(value);
                if (!hide) {
                    put(&o, first ? "?" : "&", 1);
                    put(&o, url + i, item_end - i);
                    first = false;
                }
            }
            i = item_end + 1;
        }
    }
    return o.p;
}
