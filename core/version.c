/* version.c — the library's own version, for programs that check at run time
 * which libsyncguard they were loaded with (SG_VERSION is the header's). */
#include "syncguard.h"

const char *sg_version(void)
{
    return SG_VERSION;
}
