/* secret.c — reading secrets (passwords, tokens, credentials JSON) from files,
 * and wiping them from memory afterwards. */
#include "backends.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *sg_secret_read(const char *path, size_t max, sg_code code, sg_error *err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        sg_error_set(err, code, "cannot read secret file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    /* fstat of the opened file: no window between the check and the read */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
        sg_log(SG_LOG_WARN,
               "secret file %s is readable by %s (mode %03o): anyone who can read it can take "
               "and break locks; chmod 600 it",
               path, (st.st_mode & 007) ? "others" : "its group",
               (unsigned)(st.st_mode & 0777));
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

void sg_secret_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}
