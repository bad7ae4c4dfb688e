/* duration.c — the one parser of durations: "1500", "1500ms", "30s", "10m",
 * "2h". Used by TTL writes, mount options and the command-line tool. */
#include "syncguard.h"

#include <string.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

sg_status sg_duration_parse(const char *buf, size_t len, int64_t *out_ms, sg_error *err)
{
    size_t i = 0, end = len;
    if (!buf)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "duration: empty");
    while (i < end && is_space(buf[i]))
        i++;
    while (end > i && is_space(buf[end - 1]))
        end--;
    if (i == end || buf[i] < '0' || buf[i] > '9')
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "duration must be digits with an optional unit ms, s, m or h");
    int64_t v = 0;
    while (i < end && buf[i] >= '0' && buf[i] <= '9') {
        v = v * 10 + (buf[i++] - '0');
        if (v > SG_TTL_MAX_MS)
            return sg_error_set(err, SG_E_INVALID_ARGUMENT, "duration over 2^31-1 ms");
    }
    int64_t mult;
    size_t unit = end - i;
    if (unit == 0 || (unit == 2 && !strncmp(buf + i, "ms", 2)))
        mult = 1;
    else if (unit == 1 && buf[i] == 's')
        mult = 1000;
    else if (unit == 1 && buf[i] == 'm')
        mult = 60000;
    else if (unit == 1 && buf[i] == 'h')
        mult = 3600000;
    else
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "duration unit must be ms, s, m or h (bare digits are ms)");
    if (v > SG_TTL_MAX_MS / mult)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "duration over 2^31-1 ms");
    *out_ms = v * mult;
    return SG_OK;
}
