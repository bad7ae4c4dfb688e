/* redis_transport.c — the one Redis transport (see redis_transport.h): our
 * socket (TCP, unix, or TCP under OpenSSL), hiredis's formatter and reply
 * reader, a deadline per request. Every wait is a poll() bounded by the
 * request's deadline, so a stalled network costs at most command_timeout_ms
 * per request (not per read, as hiredis's SO_RCVTIMEO did) — with one
 * exception that keeps plain requests at hiredis's two system calls: the
 * first read of a request on a plain socket is a blocking recv() bounded by
 * SO_RCVTIMEO = command_timeout_ms, which is then the time left to within
 * a millisecond. Plain sockets are blocking (every other call passes
 * MSG_DONTWAIT); TLS sockets are non-blocking (OpenSSL reads on its own). */

#include "redis_transport.h"

#include "backends.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* What went wrong on a connection; mapped to the contract by sg_redis_error. */
typedef enum fail_kind {
    F_NONE,
    F_DROPPED,       /* EOF, reset, broken pipe: the server or network closed it */
    F_TIMEOUT,       /* the deadline passed */
    F_IO,            /* connect refused, unreachable, other socket errors */
    F_RESOLVE,       /* the host name did not resolve */
    F_PROTOCOL,      /* the reply stream is not RESP */
    F_OOM,
    F_TLS_VERIFY,    /* the server's certificate or name was not accepted */
    F_TLS_REFUSED,   /* the server refused our certificate (or its absence) */
    F_TLS_NOT_TLS,   /* the port answered without TLS */
    F_TLS,           /* another TLS failure */
} fail_kind;

struct sg_redis_conn {
    const sg_redis_config *cfg;
    int fd;
    SSL *ssl;          /* NULL on plain connections */
    bool timed_recv;   /* plain, blocking, SO_RCVTIMEO = command_timeout_ms */
    bool answered;     /* a reply has arrived on it */
    bool mid_reply;    /* bytes fed to the reader that no reply returned yet */
    short want;        /* what the last would-block operation waits for */
    redisReader *reader;
    char *out;         /* formatted commands not yet written */
    size_t out_len, out_off;
    fail_kind fail;
    char cause[120];   /* the low-level reason, for sg_error.cause and messages */
};

/* ---- failures ---- */
static void fail_set(sg_redis_conn *c, fail_kind k, const char *cause)
{
    if (c->fail == F_NONE) { /* the first failure is the cause */
        c->fail = k;
        snprintf(c->cause, sizeof c->cause, "%.*s", (int)sizeof c->cause - 1, cause);
    }
}

static void fail_errno(sg_redis_conn *c, int e)
{
    bool dropped = e == ECONNRESET || e == EPIPE || e == ENOTCONN || e == ECONNABORTED;
    fail_set(c, dropped ? F_DROPPED : F_IO, strerror(e));
}

/* An OpenSSL failure (SSL_get_error result e): a certificate alert from the
 * server means it refused us; a failed verification means we refused it. */
static void fail_tls(sg_redis_conn *c, int e)
{
    int sys = errno;
    unsigned long code = ERR_peek_last_error();
    int reason = ERR_GET_REASON(code);
    char buf[160] = "";
    if (code)
        ERR_error_string_n(code, buf, sizeof buf);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN) {
        fail_set(c, F_DROPPED, "TLS connection closed by the server");
        return;
    }
    if (e == SSL_ERROR_SYSCALL && !code) {
        if (sys)
            fail_errno(c, sys);
        else
            fail_set(c, F_DROPPED, "connection closed by the server");
        return;
    }
    long v = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED || v != X509_V_OK) {
        snprintf(buf, sizeof buf, "%s", X509_verify_cert_error_string(v));
        fail_set(c, F_TLS_VERIFY, buf);
        return;
    }
    switch (reason) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
        fail_set(c, F_TLS_REFUSED, buf);
        return;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNKNOWN_PROTOCOL:
        fail_set(c, F_TLS_NOT_TLS, buf);
        return;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        fail_set(c, F_DROPPED, "connection closed by the server");
        return;
    }
    fail_set(c, e == SSL_ERROR_SYSCALL ? F_IO : F_TLS, buf[0] ? buf : "TLS error");
}

sg_status sg_redis_error(const sg_redis_conn *c, sg_error *err)
{
    if (err)
        snprintf(err->cause, sizeof err->cause, "%s", c ? c->cause : "no connection");
    switch (c ? c->fail : F_IO) {
    case F_TIMEOUT:
        return sg_error_set(err, SG_E_NETWORK_TIMEOUT, "Redis did not answer in time");
    case F_OOM:
        return sg_error_set(err, SG_E_INTERNAL, "out of memory talking to Redis");
    case F_PROTOCOL:
        return sg_error_set(err, SG_E_INTERNAL, "Redis protocol error");
    case F_TLS_VERIFY:
        return sg_error_set(err, SG_E_AUTH_FAILED,
                            "Redis TLS: the server's certificate was not accepted (%s); check "
                            "tls_ca= and the host name in the URL",
                            c->cause);
    case F_TLS_REFUSED:
        return sg_error_set(err, SG_E_AUTH_FAILED,
                            "Redis TLS: the server refused our client certificate (give one "
                            "it trusts with tls_cert= and tls_key=)");
    case F_TLS_NOT_TLS:
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "Redis TLS: the server does not speak TLS on this port (use "
                            "redis:// or the server's tls-port)");
    case F_RESOLVE:
        return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "cannot resolve the Redis host");
    case F_TLS:
        return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "Redis TLS connection failed");
    default:
        return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "Redis connection failed");
    }
}

sg_status sg_redis_reply_error(const redisReply *r, sg_error *err)
{
    const char *s = r->str ? r->str : "";
    if (err)
        snprintf(err->cause, sizeof err->cause, "%s", s);
    if (!strncmp(s, "NOAUTH", 6) || !strncmp(s, "WRONGPASS", 9) || !strncmp(s, "NOPERM", 6) ||
        strstr(s, "invalid password") || strstr(s, "invalid username-password"))
        return sg_error_set(err, SG_E_AUTH_FAILED, "Redis refused authentication");
    if (!strncmp(s, "LOADING", 7) || !strncmp(s, "BUSY", 4) || !strncmp(s, "MASTERDOWN", 10) ||
        !strncmp(s, "READONLY", 8) || !strncmp(s, "TRYAGAIN", 8) ||
        !strncmp(s, "CLUSTERDOWN", 11))
        return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE, "Redis is not serving writes");
    if (!strncmp(s, "OOM", 3))
        return sg_error_set(err, SG_E_RATE_LIMITED, "Redis is out of memory (maxmemory)");
    if (!strncmp(s, "CROSSSLOT", 9) || !strncmp(s, "MOVED", 5) || !strncmp(s, "ASK", 3))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "Redis Cluster is not supported (lock keys span slots)");
    return sg_error_set(err, SG_E_INTERNAL, "Redis returned an error");
}

bool sg_redis_broken(const sg_redis_conn *c)
{
    return c->fail != F_NONE;
}

bool sg_redis_dropped(const sg_redis_conn *c)
{
    return c->fail == F_DROPPED;
}

int sg_redis_fd(const sg_redis_conn *c)
{
    return c->fd;
}

bool sg_redis_pending(const sg_redis_conn *c)
{
    return c->ssl && SSL_has_pending(c->ssl);
}

/* ---- waiting ---- */
/* Wait until fd is ready for ev or the deadline passes (-1: never).
 * true when ready (or hung up: the next read or write says how). */
static bool wait_ready(sg_redis_conn *c, short ev, int64_t deadline)
{
    for (;;) {
        int left = -1;
        if (deadline >= 0) {
            int64_t l = deadline - sg_monotonic_ms();
            left = l < 0 ? 0 : l > 3600000 ? 3600000 : (int)l;
        }
        struct pollfd p = {.fd = c->fd, .events = ev};
        int n = poll(&p, 1, left);
        if (n > 0)
            return true;
        if (n == 0) {
            fail_set(c, F_TIMEOUT, "timed out");
            return false;
        }
        if (errno != EINTR) {
            fail_errno(c, errno);
            return false;
        }
    }
}

/* ---- raw I/O: > 0 bytes moved, 0 would block (c->want set), < 0 failed ---- */
/* After an SSL_read/SSL_write that moved nothing: 0 (would block, c->want set)
 * or -1 (failed). */
static ssize_t tls_would_block(sg_redis_conn *c, int r)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return 0;
    }
    fail_tls(c, e);
    return -1;
}

static ssize_t raw_read(sg_redis_conn *c, char *buf, size_t n, bool block)
{
    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, buf, (int)n);
        if (r > 0)
            return r;
        return tls_would_block(c, r);
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, block ? 0 : MSG_DONTWAIT);
        if (r > 0)
            return r;
        if (r == 0) {
            fail_set(c, F_DROPPED, "connection closed by the server");
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (block && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fail_set(c, F_TIMEOUT, "timed out");
            return -1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->want = POLLIN;
            return 0;
        }
        fail_errno(c, errno);
        return -1;
    }
}

static ssize_t raw_write(sg_redis_conn *c, const char *buf, size_t n)
{
    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_write(c->ssl, buf, (int)n);
        if (r > 0)
            return r;
        return tls_would_block(c, r);
    }
    for (;;) {
        ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->want = POLLOUT;
            return 0;
        }
        fail_errno(c, errno);
        return -1;
    }
}

/* ---- requests ---- */
static sg_status queue(sg_redis_conn *c, int argc, const char **argv)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0) {
        fail_set(c, F_OOM, "out of memory formatting a command");
        return SG_ERROR;
    }
    if (c->out_off == c->out_len) { /* the common case: nothing queued, take it */
        free(c->out);
        c->out = cmd;
        c->out_len = (size_t)len;
        c->out_off = 0;
        return SG_OK;
    }
    char *p = realloc(c->out, c->out_len + (size_t)len);
    if (!p) {
        redisFreeCommand(cmd);
        fail_set(c, F_OOM, "out of memory queueing a command");
        return SG_ERROR;
    }
    memcpy(p + c->out_len, cmd, (size_t)len);
    redisFreeCommand(cmd);
    c->out = p;
    c->out_len += (size_t)len;
    return SG_OK;
}

/* Write everything queued before the deadline; *sent once a byte left. */
static sg_status flush(sg_redis_conn *c, int64_t deadline, bool *sent)
{
    while (c->out_off < c->out_len) {
        /* a TLS record may be on the wire before SSL_write reports it */
        if (c->ssl)
            *sent = true;
        ssize_t r = raw_write(c, c->out + c->out_off, c->out_len - c->out_off);
        if (r < 0)
            return SG_ERROR;
        if (r > 0) {
            *sent = true;
            c->out_off += (size_t)r;
        } else if (!wait_ready(c, c->want, deadline)) {
            return SG_ERROR;
        }
    }
    c->want = 0;
    return SG_OK;
}

/* The next reply before the deadline. A timeout on a connection that has a
 * partial reply, or had anything queued, leaves it broken. */
static sg_status next_reply(sg_redis_conn *c, int64_t deadline, redisReply **out)
{
    char buf[16384];
    for (;;) {
        void *r = NULL;
        if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
            fail_set(c, F_PROTOCOL, c->reader->errstr);
            return SG_ERROR;
        }
        if (r) {
            *out = r;
            c->answered = true;
            c->mid_reply = c->reader->pos < c->reader->len;
            return SG_OK;
        }
        /* The first wait of a request on a plain socket is recv itself
         * (SO_RCVTIMEO is the time left); otherwise poll first: the reply is
         * rarely there already, and a read that would block costs a system
         * call. Over TLS OpenSSL may hold decrypted bytes. */
        bool block = false;
        if (c->timed_recv && deadline >= 0) {
            int64_t left = deadline - sg_monotonic_ms() - c->cfg->command_timeout_ms;
            block = left >= -1 && left <= 1;
        }
        if (!block && !sg_redis_pending(c) &&
            !wait_ready(c, c->want ? c->want : POLLIN, deadline))
            return SG_ERROR;
        c->want = 0;
        ssize_t n = raw_read(c, buf, sizeof buf, block);
        if (n < 0)
            return SG_ERROR;
        if (n > 0 && redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
            fail_set(c, F_OOM, "out of memory reading a reply");
            return SG_ERROR;
        }
        c->mid_reply = c->mid_reply || n > 0;
    }
}

redisReply *sg_redis_command(sg_redis_conn *c, int argc, const char **argv, bool *sent,
                             sg_error *err)
{
    *sent = false;
    int64_t deadline = sg_monotonic_ms() + c->cfg->command_timeout_ms;
    redisReply *r = NULL;
    if (queue(c, argc, argv) != SG_OK || flush(c, deadline, sent) != SG_OK ||
        next_reply(c, deadline, &r) != SG_OK) {
        sg_redis_error(c, err);
        return NULL;
    }
    return r;
}

sg_status sg_redis_send(sg_redis_conn *c, int argc, const char **argv, int64_t deadline_ms,
                        sg_error *err)
{
    bool sent = false;
    if (queue(c, argc, argv) != SG_OK || flush(c, deadline_ms, &sent) != SG_OK)
        return sg_redis_error(c, err);
    return SG_OK;
}

sg_status sg_redis_write(sg_redis_conn *c, const char *cmds, size_t len, int64_t deadline_ms,
                         bool *sent, sg_error *err)
{
    *sent = false;
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    char *p = realloc(c->out, c->out_len + len);
    if (!p) {
        fail_set(c, F_OOM, "out of memory queueing commands");
        return sg_redis_error(c, err);
    }
    memcpy(p + c->out_len, cmds, len);
    c->out = p;
    c->out_len += len;
    if (flush(c, deadline_ms, sent) != SG_OK)
        return sg_redis_error(c, err);
    return SG_OK;
}

sg_status sg_redis_read(sg_redis_conn *c, int64_t deadline_ms, redisReply **out, sg_error *err)
{
    *out = NULL;
    if (next_reply(c, deadline_ms, out) == SG_OK)
        return SG_OK;
    sg_status st = sg_redis_error(c, err);
    /* nothing at all arrived: the caller only asked "anything yet?", and
     * the connection stays usable — its next failure (EOF after a server
     * restart) must be reported as what it is, not as this timeout. (The
     * reader's own ridx is no guide: hiredis 0.14 leaves it at 0 between
     * replies once its buffer holds consumed bytes.) */
    if (c->fail == F_TIMEOUT && !c->mid_reply && c->out_off == c->out_len)
        c->fail = F_NONE;
    return st;
}

redisReply *sg_redis_buffered(sg_redis_conn *c)
{
    void *r = NULL;
    if (c->fail != F_NONE || redisReaderGetReply(c->reader, &r) != REDIS_OK || !r)
        return NULL; /* a protocol error stays in the reader: the next read reports it */
    c->mid_reply = c->reader->pos < c->reader->len;
    return r;
}

bool sg_redis_idle_alive(sg_redis_conn *c)
{
    if (c->fail != F_NONE)
        return false;
    for (int i = 0; i < 4; i++) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
        int n = poll(&p, 1, 0);
        if (n == 0)
            return true;
        if (n < 0 || (p.revents & ~POLLIN) || !c->ssl)
            return false; /* hung up, or a plain socket with bytes nobody asked for */
        /* TLS 1.3 servers may send session tickets after the handshake */
        char b[256];
        ssize_t r = raw_read(c, b, sizeof b, false);
        if (r != 0)
            return false; /* application data or a failure: not ours to keep */
    }
    return false;
}

/* ---- connecting ---- */
/* Non-blocking connect of fd to addr before the deadline. */
static bool connect_fd(sg_redis_conn *c, const struct sockaddr *addr, socklen_t len,
                       int64_t deadline)
{
    if (connect(c->fd, addr, len) == 0)
        return true;
    if (errno != EINPROGRESS && errno != EAGAIN && errno != EINTR) {
        fail_errno(c, errno);
        return false;
    }
    if (!wait_ready(c, POLLOUT, deadline))
        return false;
    int e = 0;
    socklen_t el = sizeof e;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
        e = errno;
    if (e) {
        fail_errno(c, e);
        return false;
    }
    return true;
}

static bool connect_tcp(sg_redis_conn *c, int64_t deadline)
{
    const sg_redis_config *cfg = c->cfg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->port);
    int rc = getaddrinfo(cfg->host, port, &hints, &res);
    if (rc != 0) {
        fail_set(c, rc == EAI_MEMORY ? F_OOM : F_RESOLVE, gai_strerror(rc));
        return false;
    }
    bool ok = false;
    for (struct addrinfo *a = res; a && !ok; a = a->ai_next) {
        c->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            fail_errno(c, errno);
            continue;
        }
        c->fail = F_NONE; /* the next address gets its chance */
        ok = connect_fd(c, a->ai_addr, a->ai_addrlen, deadline);
        if (!ok) {
            close(c->fd);
            c->fd = -1;
            if (c->fail == F_TIMEOUT)
                break;
        }
    }
    freeaddrinfo(res);
    if (ok) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    return ok;
}

static bool connect_unix(sg_redis_conn *c, int64_t deadline)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", c->cfg->socket_path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail_errno(c, errno);
        return false;
    }
    return connect_fd(c, (const struct sockaddr *)&sa, sizeof sa, deadline);
}

/* A plain socket turns blocking, its reads bounded by SO_RCVTIMEO. */
static bool timed_recv(sg_redis_conn *c)
{
    int ms = c->cfg->command_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
        fail_errno(c, errno);
        return false;
    }
    c->timed_recv = true;
    return true;
}

/* The socket under OpenSSL, written with MSG_NOSIGNAL: OpenSSL's own socket
 * BIO uses write(), and a server gone away would raise SIGPIPE in a process
 * that never asked for Redis to be able to kill it. */
static int nosig_write(BIO *b, const char *buf, int n)
{
    BIO_clear_retry_flags(b);
    ssize_t r = send((int)(intptr_t)BIO_get_data(b), buf, (size_t)n, MSG_NOSIGNAL);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)r;
}

static int nosig_read(BIO *b, char *buf, int n)
{
    BIO_clear_retry_flags(b);
    ssize_t r = recv((int)(intptr_t)BIO_get_data(b), buf, (size_t)n, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)r;
}

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int nosig_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *nosig_method;
static void nosig_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sg-socket");
    if (m && BIO_meth_set_write(m, nosig_write) && BIO_meth_set_read(m, nosig_read) &&
        BIO_meth_set_ctrl(m, nosig_ctrl) && BIO_meth_set_create(m, nosig_create))
        nosig_method = m;
}

static BIO *nosig_bio(int fd)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, nosig_method_init);
    BIO *b = nosig_method ? BIO_new(nosig_method) : NULL;
    if (b)
        BIO_set_data(b, (void *)(intptr_t)fd);
    return b;
}

static bool is_ip_literal(const char *h)
{
    unsigned char b[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

/* TLS handshake: SNI for names, the name or IP checked against the
 * certificate (unless tls_insecure), all before the deadline. */
static bool handshake(sg_redis_conn *c, int64_t deadline)
{
    const sg_redis_config *cfg = c->cfg;
    c->ssl = SSL_new(cfg->ssl_ctx);
    BIO *bio = c->ssl ? nosig_bio(c->fd) : NULL;
    if (!bio) {
        fail_set(c, F_OOM, "out of memory creating a TLS session");
        return false;
    }
    SSL_set_bio(c->ssl, bio, bio); /* the SSL owns it */
    bool ip = is_ip_literal(cfg->host);
    if (!ip && !SSL_set_tlsext_host_name(c->ssl, cfg->host)) {
        fail_set(c, F_TLS, "cannot set the TLS server name");
        return false;
    }
    if (!cfg->tls_insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, cfg->host)
                    : X509_VERIFY_PARAM_set1_host(vp, cfg->host, 0);
        if (!ok) {
            fail_set(c, F_TLS, "cannot set the name to verify");
            return false;
        }
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return true;
        int e = SSL_get_error(c->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            fail_tls(c, e);
            return false;
        }
        if (!wait_ready(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
            if (c->fail == F_TIMEOUT) /* a plain Redis waits for a newline forever */
                snprintf(c->cause, sizeof c->cause,
                         "no TLS handshake before the connect timeout: is this a TLS port?");
            return false;
        }
    }
}

/* A TLS 1.3 server checks our certificate after our side of the handshake
 * is done, so its refusal — an alert, then close — meets our first command,
 * often as a reset. Read the alert if it is still there; a connection closed
 * between the handshake and the first reply is a refusal either way (a
 * restarting server refuses the TCP connection instead), so it fails as
 * AuthFailed rather than being retried as an outage. */
static void refused_after_handshake(sg_redis_conn *c)
{
    char b[256];
    c->fail = F_NONE;
    c->cause[0] = '\0';
    ERR_clear_error();
    int r = SSL_read(c->ssl, b, sizeof b);
    if (r <= 0)
        fail_tls(c, SSL_get_error(c->ssl, r));
    if (c->fail != F_TLS_REFUSED) {
        c->fail = F_NONE;
        fail_set(c, F_TLS_REFUSED, "the server closed the connection right after the TLS "
                                   "handshake");
    }
}

/* One setup command on a new connection (AUTH, SELECT, PING) before the
 * deadline; a refusal is mapped (AUTH's as AuthFailed). */
static sg_status setup_command(sg_redis_conn *c, int argc, const char **argv, int64_t deadline,
                               sg_error *err)
{
    bool sent = false;
    redisReply *r = NULL;
    bool auth = !strcmp(argv[0], "AUTH");
    sg_status st = queue(c, argc, argv);
    if (st == SG_OK)
        st = flush(c, deadline, &sent);
    if (auth && c->out) /* it held the password */
        explicit_bzero(c->out, c->out_len);
    if (st != SG_OK || next_reply(c, deadline, &r) != SG_OK) {
        if (c->ssl && !c->answered && (c->fail == F_DROPPED || c->fail == F_IO))
            refused_after_handshake(c);
        return sg_redis_error(c, err);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        st = sg_redis_reply_error(r, err);
        if (auth)
            st = sg_error_set(err, SG_E_AUTH_FAILED, "Redis refused the password");
    }
    freeReplyObject(r);
    return st;
}

sg_redis_conn *sg_redis_connect(const sg_redis_config *cfg, sg_error *err)
{
    return sg_redis_connect_by(cfg, -1, err);
}

sg_redis_conn *sg_redis_connect_by(const sg_redis_config *cfg, int64_t deadline_ms,
                                   sg_error *err)
{
    sg_redis_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->reader = redisReaderCreate())) {
        free(c);
        sg_error_set(err, SG_E_INTERNAL, "out of memory creating a Redis connection");
        return NULL;
    }
    c->cfg = cfg;
    c->fd = -1;
    int64_t deadline = sg_monotonic_ms() + cfg->connect_timeout_ms;
    if (deadline_ms >= 0 && deadline_ms < deadline)
        deadline = deadline_ms;
    bool ok = cfg->socket_path[0] ? connect_unix(c, deadline) : connect_tcp(c, deadline);
    if (ok && cfg->tls)
        ok = handshake(c, deadline);
    else if (ok)
        ok = timed_recv(c);
    if (!ok) {
        sg_redis_error(c, err);
        sg_redis_close(c);
        return NULL;
    }
    /* hiredis never redid AUTH/SELECT after a reconnect; here every new
     * connection does them. Over TLS 1.3 a refused client certificate
     * shows only at the first read: PING when nothing else is sent. */
    sg_status st = SG_OK;
    if (cfg->password) {
        const char *argv[3] = {"AUTH", cfg->user ? cfg->user : cfg->password, cfg->password};
        st = setup_command(c, cfg->user ? 3 : 2, argv, deadline, err);
    }
    if (st == SG_OK && cfg->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", cfg->db);
        const char *argv[2] = {"SELECT", db};
        st = setup_command(c, 2, argv, deadline, err);
    }
    if (st == SG_OK && cfg->tls && !cfg->password && !cfg->db) {
        const char *argv[1] = {"PING"};
        st = setup_command(c, 1, argv, deadline, err);
    }
    if (st != SG_OK) {
        sg_redis_close(c);
        return NULL;
    }
    return c;
}

void sg_redis_close(sg_redis_conn *c)
{
    if (!c)
        return;
    if (c->ssl) {
        if (c->fail == F_NONE) {
            ERR_clear_error();
            SSL_shutdown(c->ssl); /* non-blocking: sends close_notify, waits for nothing */
        }
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    if (c->fd >= 0)
        close(c->fd);
    redisReaderFree(c->reader);
    free(c->out);
    free(c);
}
