/* error.c — error codes, their errno, formatting, and the logging hook. */
#include "syncguard.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const code_names[] = {
    [SG_E_NONE] = "None",
    [SG_E_ACQUISITION_TIMEOUT] = "AcquisitionTimeout",
    [SG_E_SERVICE_UNAVAILABLE] = "ServiceUnavailable",
    [SG_E_AUTH_FAILED] = "AuthFailed",
    [SG_E_INVALID_ARGUMENT] = "InvalidArgument",
    [SG_E_RATE_LIMITED] = "RateLimited",
    [SG_E_NETWORK_TIMEOUT] = "NetworkTimeout",
    [SG_E_ABORTED] = "Aborted",
    [SG_E_INTERNAL] = "Internal",
};

const char *sg_code_name(sg_code code)
{
    if ((unsigned)code >= sizeof code_names / sizeof code_names[0])
        return "Unknown";
    return code_names[code];
}

int sg_code_errno(sg_code code)
{
    switch (code) {
    case SG_E_NONE: return 0;
    case SG_E_ACQUISITION_TIMEOUT: return EWOULDBLOCK;
    case SG_E_SERVICE_UNAVAILABLE: return EIO;
    case SG_E_AUTH_FAILED: return EACCES;
    case SG_E_INVALID_ARGUMENT: return EINVAL;
    case SG_E_RATE_LIMITED: return EAGAIN;
    case SG_E_NETWORK_TIMEOUT: return ETIMEDOUT;
    case SG_E_ABORTED: return EINTR;
    case SG_E_INTERNAL: return EIO;
    }
    return EIO;
}

int sg_error_errno(const sg_error *err)
{
    if (err->code == SG_E_INVALID_ARGUMENT && err->too_long)
        return ENAMETOOLONG;
    return sg_code_errno(err->code);
}

sg_status sg_error_set(sg_error *err, sg_code code, const char *fmt, ...)
{
    if (!err)
        return SG_ERROR;
    err->code = code;
    err->too_long = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return SG_ERROR;
}

void sg_error_clear(sg_error *err)
{
    if (!err)
        return;
    err->code = SG_E_NONE;
    err->unknown_outcome = false;
    err->too_long = false;
    err->message[0] = err->key[0] = err->lock_id[0] = err->cause[0] = '\0';
}

const char *sg_error_format(const sg_error *err, char *buf, size_t size)
{
    if (!err) {
        snprintf(buf, size, "(no error)");
        return buf;
    }
    int n = snprintf(buf, size, "%s: %s", sg_code_name(err->code), err->message);
    const char *sep = " (";
    if (err->key[0] && n >= 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, "%skey=%.64s", sep, err->key), sep = ", ";
    if (err->lock_id[0] && n >= 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, "%slockId=%s", sep, err->lock_id), sep = ", ";
    if (err->cause[0] && n >= 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, "%scause=%s", sep, err->cause), sep = ", ";
    if (sep[0] == ',' && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ")");
    return buf;
}

/* ---- logging ---- */
static sg_log_fn log_fn;
static void *log_ud;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void sg_log_set(sg_log_fn fn, void *ud)
{
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_ud = ud;
    pthread_mutex_unlock(&log_lock);
}

void sg_log(sg_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&log_lock);
    sg_log_fn fn = log_fn;
    void *ud = log_ud;
    pthread_mutex_unlock(&log_lock);
    if (fn) {
        fn(level, msg, ud);
        return;
    }
    static const char *const names[] = {"error", "warning", "info", "debug"};
    bool debug = getenv("SYNCGUARD_DEBUG") != NULL;
    if (level <= SG_LOG_WARN || debug)
        fprintf(stderr, "syncguard: %s: %s\n", names[level], msg);
}
