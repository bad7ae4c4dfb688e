/* test_options.c — syncguardfs's command line (fs/options.c): every option,
 * duration units, typos, missing and extra values, conflicts, the generic
 * mount(8)/fstab words, and that what is passed to FUSE is accepted by
 * libfuse's fuse_session_new (no mount, no server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "options.h"

/* The result of one command line, with what went to err. */
typedef struct run {
    sgfs_parse_result result;
    sgfs_config cfg;
    char msg[4096];
} run;

/* parse("-o", "ttl=30s", NULL): argv0, the given words, then URL and MOUNT
 * unless the words already hold two non-options (pass NOPOS first to add none). */
#define NOPOS "\001"
static run *parse_argv(const char *first, ...)
{
    static run r;
    sgfs_config_free(&r.cfg);
    memset(&r, 0, sizeof r);
    char *argv[64];
    int argc = 0;
    argv[argc++] = "syncguardfs";
    bool positional = true;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        if (!strcmp(a, NOPOS))
            positional = false;
        else
            argv[argc++] = (char *)a;
    }
    va_end(ap);
    if (positional) {
        argv[argc++] = "redis://:secret@127.0.0.1:1";
        argv[argc++] = "/mnt/x";
    }
    argv[argc] = NULL;
    FILE *err = fmemopen(r.msg, sizeof r.msg - 1, "w");
    assert_non_null(err);
    r.result = sgfs_options_parse(argc, argv, &r.cfg, err);
    fclose(err);
    return &r;
}
#define parse(...) parse_argv(__VA_ARGS__, NULL)

static run *ok(run *r)
{
    if (r->result != SGFS_PARSE_MOUNT)
        fail_msg("expected a valid command line, got %d: %s", r->result, r->msg);
    return r;
}

/* The command line is refused (exit 2) with a message containing want. */
static void refused(run *r, const char *want)
{
    if (r->result != SGFS_PARSE_ERROR)
        fail_msg("expected an error containing '%s', got %d (%s)", want, r->result, r->msg);
    if (!strstr(r->msg, want))
        fail_msg("message '%s' lacks '%s'", r->msg, want);
    assert_non_null(strstr(r->msg, "syncguardfs: "));
}

static void defaults_without_options(void **state)
{
    (void)state;
    run *r = ok(parse(NOPOS, "redis://h", "/mnt/x"));
    assert_int_equal(r->cfg.ttl_ms, 30000);
    assert_int_equal(r->cfg.retry_delay_ms, 100);
    assert_int_equal(r->cfg.max_delay_ms, 1000);
    assert_int_equal(r->cfg.shutdown_grace_ms, 30000);
    assert_int_equal(r->cfg.backoff, SG_BACKOFF_EXPONENTIAL);
    assert_int_equal(r->cfg.jitter, SG_JITTER_EQUAL);
    assert_int_equal(r->cfg.dirmode, 0755);
    assert_int_equal(r->cfg.log_level, -1);
    assert_int_equal(r->cfg.loss_signal, 0);
    assert_false(r->cfg.allow_other || r->cfg.allow_break || r->cfg.has_lockgroup ||
                 r->cfg.loss_group || r->cfg.require_durable_fences || r->cfg.foreground ||
                 r->cfg.debug);
    assert_string_equal(r->cfg.url, "redis://h");
    assert_string_equal(r->cfg.mountpoint, "/mnt/x");
    assert_null(r->cfg.password_file);
    assert_null(r->cfg.state_dir);
    assert_null(r->cfg.fuse_opts);
    assert_string_equal(r->msg, "");
}

static void durations_take_the_units_of_ttl_writes(void **state)
{
    (void)state;
    run *r = ok(parse("-o", "ttl=30s"));
    assert_int_equal(r->cfg.ttl_ms, 30000);
    assert_int_equal(r->cfg.shutdown_grace_ms, 30000); /* default: the ttl */
    r = ok(parse("-o", "ttl=1500ms"));
    assert_int_equal(r->cfg.ttl_ms, 1500);
    r = ok(parse("-o", "ttl=5000,shutdown_grace=10m"));
    assert_int_equal(r->cfg.ttl_ms, 5000);
    assert_int_equal(r->cfg.shutdown_grace_ms, 600000);
    r = ok(parse("-o", "ttl=2h,retry_delay=50ms,max_delay=2s"));
    assert_int_equal(r->cfg.ttl_ms, 7200000);
    assert_int_equal(r->cfg.retry_delay_ms, 50);
    assert_int_equal(r->cfg.max_delay_ms, 2000);
    r = ok(parse("-o", "shutdown_grace=0"));
    assert_int_equal(r->cfg.shutdown_grace_ms, 0);
    r = ok(parse("-o", "ttl=2147483647"));
    assert_int_equal(r->cfg.ttl_ms, 2147483647LL);
    r = ok(parse("-o", "ttl=1s"));
    assert_int_equal(r->cfg.ttl_ms, 1000);
}

static void bad_durations_are_refused(void **state)
{
    (void)state;
    refused(parse("-o", "ttl=999"), "ttl='999': must be between 1000 ms");
    refused(parse("-o", "ttl=0s"), "ttl='0s'");
    refused(parse("-o", "ttl="), "ttl='': duration must be digits");
    refused(parse("-o", "ttl=30x"), "unit must be ms, s, m or h");
    refused(parse("-o", "ttl=-5"), "ttl='-5'");
    refused(parse("-o", "ttl=abc"), "ttl='abc'");
    refused(parse("-o", "ttl=99999999999999999999999"), "over 2^31-1 ms");
    refused(parse("-o", "ttl=1000h"), "over 2^31-1 ms");
    refused(parse("-o", "retry_delay=0"), "retry_delay='0'");
    refused(parse("-o", "max_delay=0ms"), "max_delay='0ms'");
    refused(parse("-o", "max_delay=2h"), "max_delay='2h'");
    refused(parse("-o", "shutdown_grace=1.5s"), "shutdown_grace='1.5s'");
}

static void max_delay_below_retry_delay(void **state)
{
    (void)state;
    refused(parse("-o", "retry_delay=2s,max_delay=500"),
            "max_delay (500 ms) is below retry_delay (2000 ms)");
    /* only retry_delay given: the default cap rises to it */
    run *r = ok(parse("-o", "retry_delay=2s"));
    assert_int_equal(r->cfg.max_delay_ms, 2000);
    r = ok(parse("-o", "retry_delay=300,max_delay=300"));
    assert_int_equal(r->cfg.max_delay_ms, 300);
}

static void every_option_of_ours(void **state)
{
    (void)state;
    run *r = ok(parse("-o", "backoff=fixed,jitter=full,allow_other,allow_break,"
                            "require_durable_fences,dirmode=1770,on_loss=signal:USR1,"
                            "log_level=debug,password_file=/etc/pw,state_dir=/var/lib/sg"));
    assert_int_equal(r->cfg.backoff, SG_BACKOFF_FIXED);
    assert_int_equal(r->cfg.jitter, SG_JITTER_FULL);
    assert_true(r->cfg.allow_other);
    assert_true(r->cfg.allow_break);
    assert_true(r->cfg.require_durable_fences);
    assert_int_equal(r->cfg.dirmode, 01770);
    assert_int_equal(r->cfg.loss_signal, SIGUSR1);
    assert_false(r->cfg.loss_group);
    assert_int_equal(r->cfg.log_level, SG_LOG_DEBUG);
    assert_string_equal(r->cfg.password_file, "/etc/pw");
    assert_string_equal(r->cfg.state_dir, "/var/lib/sg");
    r = ok(parse("-o", "jitter=none,backoff=exponential,log_level=warn"));
    assert_int_equal(r->cfg.jitter, SG_JITTER_NONE);
    assert_int_equal(r->cfg.backoff, SG_BACKOFF_EXPONENTIAL);
    assert_int_equal(r->cfg.log_level, SG_LOG_WARN);
    r = ok(parse("-o", "allow_other"));
    assert_int_equal(r->cfg.dirmode, 01777); /* sticky by default with allow_other */
    refused(parse("-o", "backoff=linear"), "backoff=exponential|fixed, not 'linear'");
    refused(parse("-o", "jitter=some"), "jitter=equal|full|none, not 'some'");
    refused(parse("-o", "log_level=loud"), "log_level=error|warn|info|debug, not 'loud'");
    refused(parse("-o", "dirmode=0999"), "dirmode='0999'");
    refused(parse("-o", "dirmode=17777"), "dirmode='17777'");
    refused(parse("-o", "dirmode=rwx"), "dirmode='rwx'");
    refused(parse("-o", "state_dir=relative/dir"), "must be an absolute path");
    refused(parse("-o", "password_file="), "password_file= needs a value");
    refused(parse("-o", "state_dir="), "state_dir= needs a value");
}

static void acquire_timeout_is_accepted_with_a_warning(void **state)
{
    (void)state;
    run *r = ok(parse("-o", "acquire_timeout=1500"));
    assert_non_null(strstr(r->msg, "acquire_timeout has no effect: opens never wait; use flock -w"));
}

static void on_loss_signals(void **state)
{
    (void)state;
    static const struct { const char *opt; int sig; bool group; } cases[] = {
        {"on_loss=signal:USR1", SIGUSR1, false},
        {"on_loss=signal:SIGUSR2", SIGUSR2, false},
        {"on_loss=signal:term", SIGTERM, false},
        {"on_loss=signal:TERM:group", SIGTERM, true},
        {"on_loss=signal:SIGKILL:group", SIGKILL, true},
        {"on_loss=signal:10", 10, false},
        {"on_loss=signal:15:group", 15, true},
        {"on_loss=signal:HUP", SIGHUP, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run *r = ok(parse("-o", cases[i].opt));
        assert_int_equal(r->cfg.loss_signal, cases[i].sig);
        assert_int_equal(r->cfg.loss_group, cases[i].group);
    }
    refused(parse("-o", "on_loss=signal:FOO"), "unknown signal 'FOO'");
    refused(parse("-o", "on_loss=signal:"), "unknown signal ''");
    refused(parse("-o", "on_loss=signal:0"), "unknown signal '0'");
    refused(parse("-o", "on_loss=signal:65"), "unknown signal '65'");
    refused(parse("-o", "on_loss=signal:99999999999"), "unknown signal");
    refused(parse("-o", "on_loss=signal:TERM:pgrp"), "only ':group' may follow");
    refused(parse("-o", "on_loss=kill"), "expected signal:SIG or signal:SIG:group");
}

static void lockgroup_by_name_or_gid(void **state)
{
    (void)state;
    struct group *g = getgrgid(getgid());
    if (g) {
        char opt[300];
        snprintf(opt, sizeof opt, "lockgroup=%s", g->gr_name);
        run *r = ok(parse("-o", opt));
        assert_true(r->cfg.has_lockgroup);
        assert_int_equal(r->cfg.lockgroup, g->gr_gid);
    }
    run *r = ok(parse("-o", "lockgroup=4242"));
    assert_true(r->cfg.has_lockgroup);
    assert_int_equal(r->cfg.lockgroup, 4242);
    refused(parse("-o", "lockgroup=no-such-group-xyz"), "lockgroup='no-such-group-xyz': no such group");
    refused(parse("-o", "lockgroup=12x"), "no such group");
    refused(parse("-o", "lockgroup="), "no such group");
    refused(parse("-o", "lockgroup=99999999999999999999"), "no such group");
}

static void typos_are_refused_with_a_suggestion(void **state)
{
    (void)state;
    refused(parse("-o", "tll=5000"), "unknown option 'tll' (did you mean 'ttl'?)");
    refused(parse("-o", "shutdown_grac=5s"), "(did you mean 'shutdown_grace'?)");
    refused(parse("-o", "alow_other"), "(did you mean 'allow_other'?)");
    refused(parse("-o", "lockgrup=wheel"), "(did you mean 'lockgroup'?)");
    refused(parse("-o", "retry_dealy=5"), "(did you mean 'retry_delay'?)");
    refused(parse("-o", "nosiud"), "(did you mean 'nosuid'?)");
    /* far from everything: no guess */
    refused(parse("-o", "frobnicate"), "unknown option 'frobnicate' (see syncguardfs --help)");
    refused(parse("-o", "rx"), "unknown option 'rx' (see");
    refused(parse("-o", "kernel_cache"), "unknown option 'kernel_cache'");
    refused(parse("-x"), "unknown option '-x'");
    refused(parse("--ttl=5"), "unknown option '--ttl=5'");
    /* an error anywhere in the list stops everything */
    refused(parse("-o", "ttl=5s,rw,tll=3"), "'tll'");
}

static void missing_and_extra_values(void **state)
{
    (void)state;
    refused(parse("-o", "ttl"), "option 'ttl' needs a value: ttl=");
    refused(parse("-o", "lockgroup"), "option 'lockgroup' needs a value");
    refused(parse("-o", "on_loss"), "option 'on_loss' needs a value");
    refused(parse("-o", "max_read"), "option 'max_read' needs a value");
    refused(parse("-o", "allow_other=1"), "option 'allow_other' takes no value");
    refused(parse("-o", "require_durable_fences=yes"), "takes no value");
    refused(parse("-o", "nosuid=1"), "option 'nosuid' takes no value");
    refused(parse("-o", "defaults=1"), "takes no value");
    refused(parse(NOPOS, "redis://h", "/m", "-o"), "-o needs a list of options");
}

static void positional_arguments(void **state)
{
    (void)state;
    run *r = parse(NOPOS, "-f");
    refused(r, "missing BACKEND_URL and MOUNTPOINT");
    assert_non_null(strstr(r->msg, "usage: syncguardfs"));
    refused(parse(NOPOS, "redis://h"), "missing MOUNTPOINT");
    refused(parse(NOPOS, "redis://h", "/m", "/n"), "too many arguments: '/n'");
    /* options after the positionals (as mount.fuse3 passes them) */
    r = ok(parse(NOPOS, "redis://h", "/m", "-o", "ttl=7s", "-f"));
    assert_int_equal(r->cfg.ttl_ms, 7000);
    assert_true(r->cfg.foreground);
}

static void generic_mount_options_are_accepted(void **state)
{
    (void)state;
    run *r = ok(parse("-o", "defaults,auto,noauto,user,users,nouser,owner,group,_netdev,"
                            "nofail,relatime,norelatime,strictatime,nostrictatime,lazytime,"
                            "nolazytime,diratime,nodiratime,iversion,noiversion,silent,loud,"
                            "comment=systemd.automount,x-systemd.automount,"
                            "x-systemd.mount-timeout=30,x-systemd.requires=redis.service,"
                            "x-mount.mkdir,x-foo,user=alice,fsname=evil,subtype=other"));
    assert_null(r->cfg.fuse_opts); /* none of them reaches FUSE */
    r = ok(parse("-o", "ttl=30s,rw,nosuid,nodev,noatime,_netdev,x-systemd.automount"));
    assert_int_equal(r->cfg.ttl_ms, 30000);
    assert_string_equal(r->cfg.fuse_opts, "rw,nosuid,nodev,noatime");
}

static void fuse_options_pass_through(void **state)
{
    (void)state;
    run *r = ok(parse("-o", "ro,rw,nosuid,suid,nodev,dev,noexec,exec,noatime,atime,sync,async,"
                            "dirsync,allow_root,default_permissions,auto_unmount,max_read=4096,"
                            "context=system_u:object_r:fusefs_t:s0,fscontext=a,defcontext=b,"
                            "rootcontext=c"));
    assert_non_null(strstr(r->cfg.fuse_opts, "max_read=4096"));
    assert_non_null(strstr(r->cfg.fuse_opts, "auto_unmount"));
}

static void repeated_and_joined_o(void **state)
{
    (void)state;
    run *r = ok(parse("-o", "ttl=5s", "-ojitter=none", "-o", "ttl=7s,allow_break", "-f"));
    assert_int_equal(r->cfg.ttl_ms, 7000); /* the last one wins */
    assert_int_equal(r->cfg.jitter, SG_JITTER_NONE);
    assert_true(r->cfg.allow_break);
    assert_true(r->cfg.foreground);
    assert_false(r->cfg.debug);
    r = ok(parse("-d"));
    assert_true(r->cfg.debug && r->cfg.foreground);
    r = ok(parse("-o", "debug"));
    assert_true(r->cfg.debug && r->cfg.foreground);
    r = ok(parse("-o", "password_file=/a", "-o", "password_file=/b"));
    assert_string_equal(r->cfg.password_file, "/b");
}

static void help_and_version(void **state)
{
    (void)state;
    assert_int_equal(parse(NOPOS, "-h")->result, SGFS_PARSE_HELP);
    assert_int_equal(parse(NOPOS, "--help")->result, SGFS_PARSE_HELP);
    assert_int_equal(parse("--help")->result, SGFS_PARSE_HELP);
    assert_int_equal(parse(NOPOS, "-V")->result, SGFS_PARSE_VERSION);
    assert_int_equal(parse(NOPOS, "--version")->result, SGFS_PARSE_VERSION);
    assert_non_null(strstr(sgfs_usage, "ttl=DURATION"));
    assert_non_null(strstr(sgfs_usage, "on_loss=signal:SIG[:group]"));
}

/* What syncguardfs hands to libfuse is accepted by fuse_session_new: the
 * pass-through list cannot fail only after the backend was opened. */
static void fuse_session_accepts_what_is_passed(void **state)
{
    (void)state;
    run *r = ok(parse("-o", "ro,rw,nosuid,suid,nodev,dev,noexec,exec,noatime,atime,sync,async,"
                            "dirsync,allow_root,default_permissions,auto_unmount,max_read=4096,"
                            "context=a,fscontext=b,defcontext=c,rootcontext=d,allow_other,"
                            "_netdev,x-systemd.automount,defaults,relatime,nofail,noauto,"
                            "user=alice,comment=x"));
    struct fuse_args args;
    /* fsname with the characters FUSE's option list treats specially */
    assert_int_equal(sgfs_options_fuse_args(&r->cfg, "syncguardfs", "redis://h,a\\b:1/0", &args),
                     0);
    assert_int_equal(args.argc, 3);
    assert_non_null(strstr(args.argv[2], "fsname=redis://h\\,a\\\\b:1/0,subtype=syncguardfs,"
                                         "allow_other,default_permissions,ro,"));
    static const struct fuse_lowlevel_ops ops;
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    assert_non_null(se);
    fuse_session_destroy(se);
    fuse_opt_free_args(&args);

    r = ok(parse("-d"));
    assert_int_equal(sgfs_options_fuse_args(&r->cfg, "syncguardfs", "redis://h", &args), 0);
    assert_int_equal(args.argc, 4);
    assert_string_equal(args.argv[3], "-d");
    fuse_opt_free_args(&args);
}

static void config_free_is_idempotent(void **state)
{
    (void)state;
    run *r = ok(parse("-o", "password_file=/p,state_dir=/s,rw"));
    sgfs_config_free(&r->cfg);
    assert_null(r->cfg.url);
    assert_null(r->cfg.password_file);
    assert_null(r->cfg.fuse_opts);
    sgfs_config_free(&r->cfg);
    sgfs_config_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_without_options),
        cmocka_unit_test(durations_take_the_units_of_ttl_writes),
        cmocka_unit_test(bad_durations_are_refused),
        cmocka_unit_test(max_delay_below_retry_delay),
        cmocka_unit_test(every_option_of_ours),
        cmocka_unit_test(acquire_timeout_is_accepted_with_a_warning),
        cmocka_unit_test(on_loss_signals),
        cmocka_unit_test(lockgroup_by_name_or_gid),
        cmocka_unit_test(typos_are_refused_with_a_suggestion),
        cmocka_unit_test(missing_and_extra_values),
        cmocka_unit_test(positional_arguments),
        cmocka_unit_test(generic_mount_options_are_accepted),
        cmocka_unit_test(fuse_options_pass_through),
        cmocka_unit_test(repeated_and_joined_o),
        cmocka_unit_test(help_and_version),
        cmocka_unit_test(fuse_session_accepts_what_is_passed),
        cmocka_unit_test(config_free_is_idempotent),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    run *last = parse("-o", "rw"); /* free the last run's strings (LeakSanitizer) */
    sgfs_config_free(&last->cfg);
    return rc;
}
