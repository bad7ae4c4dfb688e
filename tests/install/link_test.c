/* link_test.c — a small libsyncguard user, built by check-install.sh against
 * the installed tree with `pkg-config --libs` (shared) and `--static`
 * (libsyncguard.a, dependencies shared). Touches the core (utf8proc, crypto)
 * and the backend registry, so every dependency must resolve. */
#include <stdio.h>
#include <string.h>

#include <syncguard.h>

int main(void)
{
    sg_error err;
    if (strcmp(sg_version(), SG_VERSION) != 0) {
        fprintf(stderr, "sg_version() %s != SG_VERSION %s\n", sg_version(), SG_VERSION);
        return 1;
    }
    char id[SG_LOCK_ID_LEN + 1];
    if (sg_lock_id_generate(id, &err) != SG_OK || !sg_lock_id_valid(id))
        return 1;
    char key[SG_KEY_MAX + 1];
    size_t n;
    if (sg_key_normalize("cafe\xcc\x81", 6, key, &n, &err) != SG_OK || strcmp(key, "caf\xc3\xa9"))
        return 1;
    /* nothing listens on port 1: an error (or a lazy open), never a crash */
    sg_open_opts oo = {.connect_timeout_ms = 200, .command_timeout_ms = 200};
    sg_backend *b = NULL;
    if (sg_backend_open("redis://127.0.0.1:1", &oo, &b, &err) == SG_OK)
        sg_backend_close(b);
    printf("libsyncguard %s schemes=%s\n", sg_version(), sg_backend_schemes());
    return 0;
}
