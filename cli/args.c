/* args.c — pure parsers of the syncguard command line (see args.h). */
#include "args.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "names.h"

sg_status cli_ttl_parse(const char *s, int64_t *ttl_ms, sg_error *err)
{
    int64_t v;
    if (!s || sg_duration_parse(s, strlen(s), &v, err) != SG_OK)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "TTL must be digits with an optional unit ms, s, m or h "
                            "(bare digits are ms), e.g. 30s");
    if (v < CLI_TTL_MIN_MS)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "TTL must be at least 1s");
    *ttl_ms = v;
    return SG_OK;
}

bool cli_wait_parse(const char *s, int64_t *wait_ms)
{
    if (!s || !*s || strlen(s) > 32)
        return false;
    for (const char *p = s; *p; p++) /* digits and at most one dot: no sign, exponent, inf */
        if (!isdigit((unsigned char)*p) && *p != '.')
            return false;
    if (strchr(s, '.') != strrchr(s, '.') || !strcmp(s, "."))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0 || v * 1000.0 > (double)SG_TTL_MAX_MS)
        return false;
    *wait_ms = (int64_t)(v * 1000.0 + 0.5);
    return true;
}

bool cli_exit_code_parse(const char *s, int *code)
{
    if (!s || !*s || strlen(s) > 3)
        return false;
    int v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v > 255)
        return false;
    *code = v;
    return true;
}

int cli_signal_parse(const char *s)
{
    static const struct { const char *name; int sig; } sigs[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"ALRM", SIGALRM},
        {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"ABRT", SIGABRT},
    };
    if (!s || !*s)
        return -1;
    if (!strncasecmp(s, "SIG", 3))
        s += 3;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (!strcasecmp(s, sigs[i].name))
            return sigs[i].sig;
    if (strlen(s) > 3)
        return -1;
    int n = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        n = n * 10 + (*p - '0');
    }
    return n > 0 && n < NSIG ? n : -1;
}

/* The lockId of a `{"lockId": "..."}` object, or false. */
static bool lock_id_from_json(const char *text, size_t len, char out[SG_LOCK_ID_LEN + 1])
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    const cJSON *v = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "lockId") : NULL;
    bool ok = cJSON_IsString(v) && sg_lock_id_valid(v->valuestring);
    if (ok)
        memcpy(out, v->valuestring, SG_LOCK_ID_LEN + 1);
    cJSON_Delete(j);
    return ok;
}

bool cli_lock_id_from_text(const char *text, size_t len, char out[SG_LOCK_ID_LEN + 1])
{
    if (!text || memchr(text, '\0', len))
        return false;
    size_t i = 0, end = len;
    while (i < end && isspace((unsigned char)text[i]))
        i++;
    while (end > i && isspace((unsigned char)text[end - 1]))
        end--;
    if (i == end)
        return false;
    if (text[i] == '{')
        return lock_id_from_json(text + i, end - i, out);
    if (end - i == SG_LOCK_ID_LEN) { /* a bare lockId */
        char id[SG_LOCK_ID_LEN + 1];
        memcpy(id, text + i, SG_LOCK_ID_LEN);
        id[SG_LOCK_ID_LEN] = '\0';
        if (!sg_lock_id_valid(id))
            return false;
        memcpy(out, id, sizeof id);
        return true;
    }
    /* name=value lines: exactly one lockId= line */
    int found = 0;
    for (size_t p = i; p < end;) {
        const char *nl = memchr(text + p, '\n', end - p);
        size_t line_end = nl ? (size_t)(nl - text) : end;
        size_t n = line_end - p;
        if (n > 0 && text[p + n - 1] == '\r')
            n--;
        if (n == 7 + SG_LOCK_ID_LEN && !strncmp(text + p, "lockId=", 7)) {
            char id[SG_LOCK_ID_LEN + 1];
            memcpy(id, text + p + 7, SG_LOCK_ID_LEN);
            id[SG_LOCK_ID_LEN] = '\0';
            if (!sg_lock_id_valid(id))
                return false;
            memcpy(out, id, sizeof id);
            found++;
        } else if (n >= 7 && !strncmp(text + p, "lockId=", 7)) {
            return false; /* a malformed lockId line */
        }
        p = line_end + 1;
    }
    return found == 1;
}

void cli_scrub_url_arg(char *arg)
{
    if (!arg)
        return;
    size_t n = strlen(arg);
    char *safe = sg_url_redact(arg);
    size_t m = safe ? strlen(safe) : 0;
    if (m > n) /* cannot happen: redaction only removes */
        m = 0;
    if (m)
        memmove(arg, safe, m);
    memset(arg + m, 0, n - m);
    free(safe);
}

void cli_key_text(const char *key, char out[CLI_KEY_TEXT_MAX])
{
    char enc[SGFS_NAME_MAX + 1];
    sgfs_name_encode(key, enc);
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)enc; *p && j + 4 < CLI_KEY_TEXT_MAX; p++) {
        if (*p < 0x20 || *p == 0x7f)
            j += (size_t)snprintf(out + j, CLI_KEY_TEXT_MAX - j, "%%%02X", *p);
        else
            out[j++] = (char)*p;
    }
    out[j] = '\0';
}
