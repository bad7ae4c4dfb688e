// cxx_header.cpp — core/syncguard.h from C++ (built with -std=c++11 and the
// project's -Werror): extern "C" linkage, no C11-only types in public structs.
#include <syncguard.h>

#include <csignal>
#include <cstdio>
#include <cstring>

static_assert(SG_VERSION_MAJOR >= 0 && SG_VERSION_MINOR >= 0 && SG_VERSION_PATCH >= 0,
              "version macros are integers");

static volatile std::sig_atomic_t stop_flag = 0;

int main()
{
    if (std::strcmp(sg_version(), SG_VERSION) != 0)
        return 1;
    sg_acquire_opts o = sg_acquire_opts_default();
    o.abort = &stop_flag; // a signal handler's flag is the abort flag
    if (sg_retry_delay_ms(&o, 1, 1000, 0.0) < 0)
        return 1;
    sg_error err;
    sg_error_clear(&err);
    char id[SG_LOCK_ID_LEN + 1];
    if (sg_lock_id_generate(id, &err) != SG_OK || !sg_lock_id_valid(id))
        return 1;
    char fence[SG_FENCE_LEN + 1];
    sg_fence_format(42, fence);
    if (std::strcmp(fence, "000000000000042") != 0)
        return 1;
    std::printf("C++ sees libsyncguard %s, lockId %s\n", sg_version(), id);
    return 0;
}
