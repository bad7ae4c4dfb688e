/* redis.c — the Redis backend: one Lua script per mutation, SyncGuard's
 * storage layout, a few pipelined connections shared by every thread
 * (redis_mux.c). The connections — plain, unix or TLS — are
 * redis_transport.c's.
 *
 * Layout (SPEC section 4): lock  storage_key(prefix, key)            JSON, PX ttl
 *                          index storage_key(prefix, "id:" + lockId) lock key, PX ttl
 *                          fence storage_key(prefix, "fence:" + lock key)  INCR, no TTL */
#include "backends.h"
#include "redis_mux.h"
#include "redis_transport.h"
#include "redis_wake.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REDIS_LIMIT 1000
#define REDIS_RESERVE 26
#define SKEY_MAX 1100 /* > REDIS_LIMIT */

/* ---- scripts: time from TIME, the liveness predicate, lockId checks ---- */
#define LUA_NOW                                                                        \
    "local t = redis.call('TIME')\n"                                                   \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* KEYS lock, index, fence; ARGV lockId, ttl, tolerance, userKey
 * → {0, holder's expiresAtMs, now} (held) | {1, fence, expiresAtMs, acquiredAtMs}. Idempotent per lockId:
 * run again (a retry after a dropped connection) it answers what the first
 * run did instead of "held" by its own ghost. */
static const char ACQUIRE_LUA[] =
    LUA_NOW
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  local d = cjson.decode(cur)\n"
    "  if d.expiresAtMs > now - tonumber(ARGV[3]) then\n"
    "    if d.lockId == ARGV[1] then\n" /* a retry of this very acquire */
    "      return {1, d.fence, d.expiresAtMs, d.acquiredAtMs}\n"
    "    end\n"
    "    return {0, d.expiresAtMs, now}\n"
    "  end\n"
    "end\n"
    "local fence = string.format('%015d', redis.call('INCR', KEYS[3]))\n"
    "local ttl = tonumber(ARGV[2])\n"
    "local exp = now + ttl\n"
    "redis.call('SET', KEYS[1], cjson.encode({lockId=ARGV[1], expiresAtMs=exp,\n"
    "  acquiredAtMs=now, key=ARGV[4], fence=fence}), 'PX', ttl)\n"
    "redis.call('SET', KEYS[2], KEYS[1], 'PX', ttl)\n"
    "return {1, fence, exp, now}\n";

/* KEYS index; ARGV lockId, tolerance → 1 released | 0 absent. Whenever it
 * deletes the lock it wakes the key's waiters: PUBLISH on "<lock key>:wake"
 * (redis_wake.c), in the same script, so no extra round trip. pcall: a user
 * whose ACL denies channels still releases (its waiters poll). */
static const char RELEASE_LUA[] =
    LUA_NOW
    "local lk = redis.call('GET', KEYS[1])\n"
    "if not lk then return 0 end\n"
    "local cur = redis.call('GET', lk)\n"
    "if not cur then redis.call('DEL', KEYS[1]) return 0 end\n"
    "local d = cjson.decode(cur)\n"
    "if d.lockId ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', lk, KEYS[1])\n"
    "redis.pcall('PUBLISH', lk .. '" SG_REDIS_WAKE_SUFFIX "', '')\n"
    "if d.expiresAtMs <= now - tonumber(ARGV[2]) then return 0 end\n"
    "return 1\n";

/* One extend (the single one and every key of a batch): index key, lockId,
 * tolerance, ttl → the new expiresAtMs | 0 absent. Unknown JSON fields
 * survive (decode/encode of the whole object). */
#define LUA_EXTEND_FN                                                                  \
    "local function extend(ik, id, tol, ttl)\n"                                       \
    "  local lk = redis.call('GET', ik)\n"                                            \
    "  if not lk then return 0 end\n"                                                 \
    "  local cur = redis.call('GET', lk)\n"                                           \
    "  if not cur then return 0 end\n"                                                \
    "  local d = cjson.decode(cur)\n"                                                 \
    "  if d.lockId ~= id then return 0 end\n"                                         \
    "  if d.expiresAtMs <= now - tol then return 0 end\n"                             \
    "  d.expiresAtMs = now + ttl\n"                                                   \
    "  redis.call('SET', lk, cjson.encode(d), 'PX', ttl)\n"                           \
    "  redis.call('SET', ik, lk, 'PX', ttl)\n"                                        \
    "  return d.expiresAtMs\n"                                                        \
    "end\n"

/* KEYS index; ARGV lockId, tolerance, ttl → {1, expiresAtMs} | 0 absent. */
static const char EXTEND_LUA[] =
    LUA_NOW LUA_EXTEND_FN
    "local e = extend(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))\n"
    "if e == 0 then return 0 end\n"
    "return {1, e}\n";

/* EXTEND_LUA for many locks in one call (the renewer's batches): KEYS index
 * keys; ARGV tolerance, then lockId and ttl for each key → per key
 * expiresAtMs (> 0: extended) | 0 (absent) | an error reply. Each key runs
 * the same extend (one TIME for all: as if they ran at one instant) under
 * pcall, so one key's failure (a corrupt record, a wrong type) is its own
 * error reply, as its single extend would have been, and the others go on. */
static const char EXTEND_MANY_LUA[] =
    LUA_NOW LUA_EXTEND_FN
    "local tol = tonumber(ARGV[1])\n"
    "local out = {}\n"
    "for i = 1, #KEYS do\n"
    "  local ok, r = pcall(extend, KEYS[i], ARGV[2 * i], tol, tonumber(ARGV[2 * i + 1]))\n"
    "  if ok then out[i] = r\n"
    "  elseif type(r) == 'table' and r.err then out[i] = r\n"
    "  else out[i] = {err = 'ERR ' .. tostring(r)} end\n"
    "end\n"
    "return out\n";

/* KEYS lock; ARGV tolerance → {lockId, expiresAtMs, acquiredAtMs, key, fence} | nil */
static const char LOOKUP_KEY_LUA[] =
    LUA_NOW
    "local cur = redis.call('GET', KEYS[1])\n"
    "if not cur then return nil end\n"
    "local d = cjson.decode(cur)\n"
    "if d.expiresAtMs <= now - tonumber(ARGV[1]) then return nil end\n"
    "return {d.lockId, d.expiresAtMs, d.acquiredAtMs, d.key, d.fence}\n";

/* KEYS index; ARGV lockId, tolerance → as LOOKUP_KEY | nil */
static const char LOOKUP_ID_LUA[] =
    LUA_NOW
    "local lk = redis.call('GET', KEYS[1])\n"
    "if not lk then return nil end\n"
    "local cur = redis.call('GET', lk)\n"
    "if not cur then return nil end\n"
    "local d = cjson.decode(cur)\n"
    "if d.lockId ~= ARGV[1] then return nil end\n"
    "if d.expiresAtMs <= now - tonumber(ARGV[2]) then return nil end\n"
    "return {d.lockId, d.expiresAtMs, d.acquiredAtMs, d.key, d.fence}\n";

/* ARGV cursor, match pattern, count, "prefix:" (or ""), tolerance
 * → {next cursor, user keys of live locks...}. Skips exactly the reserved
 * keys (SPEC section 4): index entries "prefix:id:" + 22 base64url chars and
 * counters "prefix:fence:prefix:" (any "fence:" when the prefix is empty) —
 * a user's "id:42" or "fence:x" is an ordinary lock — and anything that is
 * not a lock record. */
static const char LIST_LUA[] =
    LUA_NOW
    "local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])\n"
    "local out = {r[1]}\n"
    "local idp, fp = ARGV[4] .. 'id:', ARGV[4] .. 'fence:' .. ARGV[4]\n"
    "for _, k in ipairs(r[2]) do\n"
    "  local id = string.sub(k, 1, #idp) == idp and string.sub(k, #idp + 1)\n"
    "  local index = id and #id == 22 and string.find(id, '^[A-Za-z0-9_-]+$') ~= nil\n"
    "  if not index and string.sub(k, 1, #fp) ~= fp then\n"
    "    local v = redis.pcall('GET', k)\n"
    "    if type(v) == 'string' then\n"
    "      local ok, d = pcall(cjson.decode, v)\n"
    "      if ok and type(d) == 'table' and type(d.key) == 'string' and\n"
    "         type(d.lockId) == 'string' and type(d.expiresAtMs) == 'number' and\n"
    "         d.expiresAtMs > now - tonumber(ARGV[5]) then\n"
    "        out[#out + 1] = d.key\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

enum { S_ACQUIRE, S_RELEASE, S_EXTEND, S_LOOKUP_KEY, S_LOOKUP_ID, S_LIST, S_EXTEND_MANY,
       S_COUNT };
static const char *const scripts[S_COUNT] = {ACQUIRE_LUA,    RELEASE_LUA,   EXTEND_LUA,
                                             LOOKUP_KEY_LUA, LOOKUP_ID_LUA, LIST_LUA,
                                             EXTEND_MANY_LUA};

typedef struct redis_backend {
    sg_redis_config cfg; /* address, credentials, timeouts, TLS; fixed after open */
    char prefix[256];
    char fence_prefix[300]; /* "fence:<prefix>:" or "fence:", reserved in keys */
    char sha[S_COUNT][41];
    sg_redis_mux *mux; /* the shared connections */
    sg_wake *wake; /* the subscriber (redis_wake.c); NULL: no memory for it */
} redis_backend;

static sg_status bad_reply(sg_error *err, const char *what)
{
    return sg_error_set(err, SG_E_INTERNAL, "unexpected reply from Redis to %s", what);
}

/* ---- connections (redis_transport.c) ---- */
static void *connect_one(void *ud, sg_error *err)
{
    return sg_redis_connect(&((redis_backend *)ud)->cfg, err);
}

static void close_one(void *c)
{
    sg_redis_close(c);
}

/* Every call is retried once on a fresh connection when its connection was
 * dropped (closed or reset, not timed out): reads, extend (expiry = now +
 * ttl again) and acquire (idempotent per lockId, see ACQUIRE_LUA) are safe
 * to run twice; a release is lockId-checked, so at worst a release that did
 * run before the drop reports "absent" on the retry. op_kind says what an
 * error means for the outcome. */
typedef enum op_kind { OP_READ, OP_WRITE } op_kind;

/* Run script `s` with keys and args (all NUL-terminated strings).
 * EVALSHA; on NOSCRIPT, SCRIPT LOAD and once more. A connection found
 * dropped is replaced and the call retried once (see op_kind).
 * Returns the reply (caller frees) or NULL with err set. An error reply is
 * mapped and freed. */
static redisReply *run_argv(redis_backend *rb, int s, int argc, const char **argv, op_kind kind,
                            sg_error *err);

static redisReply *run_script(redis_backend *rb, int s, int nkeys, const char **keys,
                              int nargs, const char **args, op_kind kind, sg_error *err)
{
    static const char *const digits[] = {"0", "1", "2", "3"};
    const char *argv[16];
    int argc = 0;
    argv[argc++] = "EVALSHA";
    argv[argc++] = rb->sha[s];
    argv[argc++] = digits[nkeys]; /* 0..3 keys */
    for (int i = 0; i < nkeys; i++)
        argv[argc++] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[argc++] = args[i];
    return run_argv(rb, s, argc, argv, kind, err);
}

/* run_script with its EVALSHA command line built by the caller. */
static redisReply *run_argv(redis_backend *rb, int s, int argc, const char **argv, op_kind kind,
                            sg_error *err)
{
    const char *load[3] = {"SCRIPT", "LOAD", scripts[s]};

    for (int conn_try = 0;; conn_try++) {
        redisReply *r = NULL;
        bool retry = false;
        for (int attempt = 0; attempt < 2; attempt++) {
            bool sent, dropped;
            r = sg_redis_mux_command(rb->mux, argc, argv, &sent, &dropped, err);
            if (!r) {
                retry = conn_try == 0 && dropped;
                if (err)
                    err->unknown_outcome = sent && kind != OP_READ;
                break;
            }
            if (r->type == REDIS_REPLY_ERROR && r->str && !strncmp(r->str, "NOSCRIPT", 8) &&
                attempt == 0) {
                freeReplyObject(r); /* not run: load it (after a restart) and run it */
                r = sg_redis_mux_command(rb->mux, 3, load, &sent, &dropped, err);
                if (!r) {
                    retry = conn_try == 0 && dropped;
                    break;
                }
                bool ok = r->type == REDIS_REPLY_STRING;
                if (!ok)
                    sg_redis_reply_error(r, err);
                freeReplyObject(r);
                r = NULL;
                if (!ok)
                    break;
                continue;
            }
            if (r->type == REDIS_REPLY_ERROR) {
                sg_redis_reply_error(r, err);
                freeReplyObject(r);
                r = NULL;
            }
            break;
        }
        if (!retry)
            return r;
        sg_log(SG_LOG_DEBUG, "redis: connection dropped; retrying on a fresh one");
    }
}

/* ---- keys ---- */
/* Keys that would land on another lock's index or counter (SPEC section 4). */
static sg_status check_reserved(const redis_backend *rb, const char *key, sg_error *err)
{
    if (!strncmp(key, "id:", 3) && sg_lock_id_valid(key + 3))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "key 'id:<22 base64url chars>' is reserved for the lockId index");
    const char *fp = rb->fence_prefix;
    if (!strncmp(key, fp, strlen(fp)))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "key '%s...' is reserved for fence counters", fp);
    return SG_OK;
}

static sg_status lock_keys(const redis_backend *rb, const char *key, char *lock_key,
                           char *fence_key, sg_error *err)
{
    if (check_reserved(rb, key, err) != SG_OK)
        return SG_ERROR;
    if (sg_storage_key(rb->prefix, key, REDIS_LIMIT, REDIS_RESERVE, lock_key, SKEY_MAX, err) !=
        SG_OK)
        return SG_ERROR;
    if (fence_key && sg_fence_key(rb->prefix, lock_key, REDIS_LIMIT, REDIS_RESERVE, fence_key,
                                  SKEY_MAX, err) != SG_OK)
        return SG_ERROR;
    return SG_OK;
}

static sg_status index_key(const redis_backend *rb, const char *lock_id, char *out,
                           sg_error *err)
{
    char k[3 + SG_LOCK_ID_LEN + 1] = "id:";
    memcpy(k + 3, lock_id, SG_LOCK_ID_LEN + 1); /* a valid lockId: the core checked it */
    return sg_storage_key(rb->prefix, k, REDIS_LIMIT, REDIS_RESERVE, out, SKEY_MAX, err);
}

static bool reply_int(const redisReply *r, long long *out)
{
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return false;
    *out = r->integer;
    return true;
}

/* ---- operations ---- */
#define TOLERANCE_STR "1000"

/* A TTL (1..SG_TTL_MAX_MS, checked by the core) in decimal, without printf. */
static void ttl_text(int64_t ttl, char out[24])
{
    char tmp[24];
    int n = 0;
    uint64_t v = ttl > 0 ? (uint64_t)ttl : 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 23);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
}

/* Run script s on lockId's index key with ARGV lockId, tolerance[, extra]. */
static redisReply *run_by_id(redis_backend *rb, int s, const char *lock_id, const char *extra,
                             op_kind kind, sg_error *err)
{
    char ik[SKEY_MAX];
    if (index_key(rb, lock_id, ik, err) != SG_OK)
        return NULL;
    const char *keys[1] = {ik};
    const char *args[3] = {lock_id, TOLERANCE_STR, extra};
    return run_script(rb, s, 1, keys, extra ? 3 : 2, args, kind, err);
}

static sg_status r_acquire(sg_backend *b, const char *key, const char *lock_id, int64_t ttl,
                           sg_lock *out, sg_holder *holder, sg_error *err)
{
    redis_backend *rb = b->impl;
    char lk[SKEY_MAX], fk[SKEY_MAX], ik[SKEY_MAX], ttl_s[24];
    if (lock_keys(rb, key, lk, fk, err) != SG_OK || index_key(rb, lock_id, ik, err) != SG_OK)
        return SG_ERROR;
    ttl_text(ttl, ttl_s);
    const char *keys[3] = {lk, ik, fk};
    const char *args[4] = {lock_id, ttl_s, TOLERANCE_STR, key};
    redisReply *r = run_script(rb, S_ACQUIRE, 3, keys, 4, args, OP_WRITE, err);
    if (!r)
        return SG_ERROR;
    long long v;
    sg_status st;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && reply_int(r->element[0], &v) &&
        v == 0) {
        st = SG_CONTENDED;
        long long exp, now;
        if (reply_int(r->element[1], &exp) && reply_int(r->element[2], &now) && exp > 0 &&
            now > 0) {
            holder->expires_at_ms = exp;
            holder->now_ms = now;
            /* PX deletes the record once the clock passes expiresAtMs; one
             * kept longer (not written by a PX writer) is live until
             * expiresAtMs + tolerance, as the script says. A record seen a
             * few ms past its expiresAtMs is most likely PX's own: its base
             * is the server's clock at the SET, which may be a millisecond
             * past the script's TIME, so look again at +5 ms before
             * concluding it is kept (a waiter was otherwise served 1 s late:
             * conformance, expiring_lock_wakes_the_waiter_at_its_expiry). */
            holder->free_at_ms = now <= exp          ? exp + 1
                                 : now - exp < 5    ? exp + 5
                                                    : exp + SG_TOLERANCE_MS;
        }
    } else if (reply_int(r, &v) && v == 0) {
        st = SG_CONTENDED; /* a script of an older build still loaded under this SHA */
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 && reply_int(r->element[0], &v) &&
               v == 1 && r->element[1]->type == REDIS_REPLY_STRING &&
               r->element[2]->type == REDIS_REPLY_INTEGER &&
               r->element[3]->type == REDIS_REPLY_INTEGER) {
        uint64_t fence;
        st = sg_fence_parse(r->element[1]->str, &fence, err);
        if (st == SG_OK)
            st = sg_fence_check(fence, key, err);
        if (st == SG_OK) {
            memcpy(out->fence, r->element[1]->str, SG_FENCE_LEN + 1);
            out->expires_at_ms = r->element[2]->integer;
            out->acquired_at_ms = r->element[3]->integer;
        } else if (err) {
            /* We hold it, but must not hand out this fence: give it back. */
            err->unknown_outcome = true;
        }
    } else {
        st = bad_reply(err, "acquire");
        if (err)
            err->unknown_outcome = true;
    }
    freeReplyObject(r);
    return st;
}

static sg_status r_release(sg_backend *b, const char *lock_id, sg_error *err)
{
    redisReply *r = run_by_id(b->impl, S_RELEASE, lock_id, NULL, OP_WRITE, err);
    if (!r)
        return SG_ERROR;
    long long v;
    sg_status st = !reply_int(r, &v) || (v != 0 && v != 1) ? bad_reply(err, "release")
                   : v == 1                                ? SG_OK
                                                           : SG_ABSENT;
    freeReplyObject(r);
    return st;
}

static sg_status r_extend(sg_backend *b, const char *lock_id, int64_t ttl, int64_t *exp,
                          sg_error *err)
{
    char ttl_s[24];
    ttl_text(ttl, ttl_s);
    redisReply *r = run_by_id(b->impl, S_EXTEND, lock_id, ttl_s, OP_WRITE, err);
    if (!r)
        return SG_ERROR;
    long long v;
    sg_status st;
    if (reply_int(r, &v) && v == 0)
        st = SG_ABSENT;
    else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && reply_int(r->element[0], &v) &&
             v == 1 && r->element[1]->type == REDIS_REPLY_INTEGER) {
        *exp = r->element[1]->integer;
        st = SG_OK;
    } else
        st = bad_reply(err, "extend");
    freeReplyObject(r);
    return st;
}

/* The index keys of a batch: each is storage_key(prefix, "id:" + lockId),
 * which for a lockId (ASCII, NFC as it is) after a prefix of under 256 bytes
 * is never hashed, so all of them are the first one with its last 22
 * characters replaced — checked, else computed one by one. */
static sg_status index_keys(const redis_backend *rb, size_t n, const sg_extend_item *it,
                            char *buf, size_t slot, sg_error *err)
{
    if (index_key(rb, it[0].lock_id, buf, err) != SG_OK)
        return SG_ERROR;
    size_t len = strlen(buf);
    bool shared = len < slot && len >= SG_LOCK_ID_LEN &&
                  !strcmp(buf + len - SG_LOCK_ID_LEN, it[0].lock_id);
    for (size_t i = 1; i < n; i++) {
        char *k = buf + i * slot;
        if (!shared) {
            char one[SKEY_MAX];
            if (index_key(rb, it[i].lock_id, one, err) != SG_OK)
                return SG_ERROR;
            if (strlen(one) >= slot)
                return sg_error_set(err, SG_E_INTERNAL, "index key too long");
            memcpy(k, one, strlen(one) + 1);
            continue;
        }
        memcpy(k, buf, len - SG_LOCK_ID_LEN);
        memcpy(k + len - SG_LOCK_ID_LEN, it[i].lock_id, SG_LOCK_ID_LEN + 1);
    }
    return SG_OK;
}

/* One EVALSHA of EXTEND_MANY_LUA for the whole batch (see sg_backend_ops). */
static sg_status r_extend_many(sg_backend *b, size_t n, sg_extend_item *items, sg_error *err)
{
    redis_backend *rb = b->impl;
    if (n == 0)
        return SG_OK;
    /* "prefix:id:" + lockId; the prefix is under 256 bytes */
    enum { SLOT = 288, TTL_LEN = 24 };
    size_t argc = 4 + 3 * n;
    const char **argv = malloc(argc * sizeof *argv);
    char *keys = malloc(n * (SLOT + TTL_LEN));
    if (!argv || !keys) {
        free(argv);
        free(keys);
        return sg_error_set(err, SG_E_INTERNAL, "out of memory");
    }
    char *ttls = keys + n * SLOT, nk[24];
    sg_status st = index_keys(rb, n, items, keys, SLOT, err);
    redisReply *r = NULL;
    if (st == SG_OK) {
        snprintf(nk, sizeof nk, "%zu", n);
        argv[0] = "EVALSHA";
        argv[1] = rb->sha[S_EXTEND_MANY];
        argv[2] = nk;
        argv[3 + n] = TOLERANCE_STR;
        for (size_t i = 0; i < n; i++) {
            char *t = ttls + i * TTL_LEN;
            snprintf(t, TTL_LEN, "%lld", (long long)items[i].ttl_ms);
            argv[3 + i] = keys + i * SLOT;
            argv[4 + n + 2 * i] = items[i].lock_id;
            argv[5 + n + 2 * i] = t;
        }
        r = run_argv(rb, S_EXTEND_MANY, (int)argc, argv, OP_WRITE, err);
        st = r ? SG_OK : SG_ERROR;
    }
    if (r && (r->type != REDIS_REPLY_ARRAY || r->elements != n))
        st = bad_reply(err, "extend");
    bool first_error = true;
    for (size_t i = 0; st == SG_OK && i < n; i++) {
        const redisReply *e = r->element[i];
        sg_extend_item *it = &items[i];
        it->expires_at_ms = 0;
        it->code = SG_E_NONE;
        sg_error one;
        sg_error_clear(&one);
        if (e->type == REDIS_REPLY_INTEGER && e->integer == 0) {
            it->status = SG_ABSENT;
        } else if (e->type == REDIS_REPLY_INTEGER && e->integer > 0) {
            it->status = SG_OK;
            it->expires_at_ms = e->integer;
        } else {
            it->status = e->type == REDIS_REPLY_ERROR ? sg_redis_reply_error(e, &one)
                                                      : bad_reply(&one, "extend");
            it->code = one.code;
            if (first_error && err)
                *err = one;
            first_error = false;
        }
    }
    if (r)
        freeReplyObject(r);
    free(argv);
    free(keys);
    return st;
}

/* {lockId, expiresAtMs, acquiredAtMs, key, fence} → info. */
static sg_status parse_info(const redisReply *r, sg_lock_info *out, sg_error *err)
{
    if (r->type == REDIS_REPLY_NIL)
        return SG_ABSENT;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5)
        return bad_reply(err, "lookup");
    redisReply **e = r->element;
    uint64_t fence;
    if (e[0]->type != REDIS_REPLY_STRING || !sg_lock_id_valid(e[0]->str) ||
        e[1]->type != REDIS_REPLY_INTEGER || e[2]->type != REDIS_REPLY_INTEGER ||
        e[3]->type != REDIS_REPLY_STRING || e[3]->len > SG_KEY_MAX ||
        e[4]->type != REDIS_REPLY_STRING || sg_fence_parse(e[4]->str, &fence, NULL) != SG_OK)
        return sg_error_set(err, SG_E_INTERNAL, "corrupt lock record in Redis");
    memcpy(out->lock_id, e[0]->str, SG_LOCK_ID_LEN + 1);
    out->expires_at_ms = e[1]->integer;
    out->acquired_at_ms = e[2]->integer;
    memcpy(out->key, e[3]->str, e[3]->len);
    out->key[e[3]->len] = '\0';
    memcpy(out->fence, e[4]->str, SG_FENCE_LEN + 1);
    return SG_OK;
}

static sg_status r_lookup_key(sg_backend *b, const char *key, sg_lock_info *out, sg_error *err)
{
    redis_backend *rb = b->impl;
    char lk[SKEY_MAX];
    if (lock_keys(rb, key, lk, NULL, err) != SG_OK)
        return SG_ERROR;
    const char *keys[1] = {lk};
    const char *args[1] = {TOLERANCE_STR};
    redisReply *r = run_script(rb, S_LOOKUP_KEY, 1, keys, 1, args, OP_READ, err);
    if (!r)
        return SG_ERROR;
    sg_status st = parse_info(r, out, err);
    freeReplyObject(r);
    return st;
}

static sg_status r_lookup_id(sg_backend *b, const char *lock_id, sg_lock_info *out,
                             sg_error *err)
{
    redisReply *r = run_by_id(b->impl, S_LOOKUP_ID, lock_id, NULL, OP_READ, err);
    if (!r)
        return SG_ERROR;
    sg_status st = parse_info(r, out, err);
    freeReplyObject(r);
    return st;
}

static sg_status r_list(sg_backend *b, char cursor[SG_CURSOR_LEN], size_t page, sg_list_fn fn,
                        void *ud, sg_error *err)
{
    redis_backend *rb = b->impl;
    char pattern[2 * sizeof rb->prefix + 4], pfx[sizeof rb->prefix + 2], count[24];
    size_t j = 0;
    for (const char *p = rb->prefix; *p; p++) { /* escape glob characters */
        if (strchr("*?[]\\", *p))
            pattern[j++] = '\\';
        pattern[j++] = *p;
    }
    snprintf(pattern + j, sizeof pattern - j, "%s*", rb->prefix[0] ? ":" : "");
    snprintf(pfx, sizeof pfx, "%s%s", rb->prefix, rb->prefix[0] ? ":" : "");
    snprintf(count, sizeof count, "%zu", page);
    const char *args[5] = {cursor[0] ? cursor : "0", pattern, count, pfx, TOLERANCE_STR};
    redisReply *r = run_script(rb, S_LIST, 0, NULL, 5, args, OP_READ, err);
    if (!r)
        return SG_ERROR;
    sg_status st = SG_OK;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= SG_CURSOR_LEN) {
        st = bad_reply(err, "list");
    } else {
        for (size_t i = 1; i < r->elements; i++) {
            redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > SG_KEY_MAX ||
                strlen(e->str) != e->len)
                continue; /* not a key this project could have written */
            fn(e->str, ud);
        }
        snprintf(cursor, SG_CURSOR_LEN, "%s",
                 strcmp(r->element[0]->str, "0") ? r->element[0]->str : "");
    }
    freeReplyObject(r);
    return st;
}

/* Wake-ups: the key's channel on the process's one subscriber connection. */
static sg_watch *r_watch(sg_backend *b, const char *key, sg_wake_fn fn, void *ud)
{
    redis_backend *rb = b->impl;
    char ch[SKEY_MAX + sizeof SG_REDIS_WAKE_SUFFIX];
    if (!rb->wake || lock_keys(rb, key, ch, NULL, NULL) != SG_OK)
        return NULL;
    strcat(ch, SG_REDIS_WAKE_SUFFIX);
    return sg_wake_watch(rb->wake, ch, fn, ud);
}

static void r_unwatch(sg_backend *b, sg_watch *w)
{
    redis_backend *rb = b->impl;
    if (rb->wake)
        sg_wake_unwatch(rb->wake, w);
}

static void r_close(sg_backend *b)
{
    redis_backend *rb = b->impl;
    sg_wake_free(rb->wake);
    sg_redis_mux_free(rb->mux);
    sg_redis_config_free(&rb->cfg);
    free(rb);
    free(b);
}

static const sg_backend_ops redis_ops = {
    .acquire = r_acquire,
    .release = r_release,
    .extend = r_extend,
    .lookup_key = r_lookup_key,
    .lookup_id = r_lookup_id,
    .list = r_list,
    .close = r_close,
    .watch = r_watch,
    .unwatch = r_unwatch,
    .extend_many = r_extend_many,
};

/* ---- configuration ---- */
/* prefix= is the backend's; everything else is the connection's (transport). */
static sg_status apply_prefix(redis_backend *rb, const sg_url *u, sg_error *err)
{
    const char *v = sg_url_get(u, "prefix");
    if (!v)
        return SG_OK;
    size_t len = strlen(v);
    if (len >= sizeof rb->prefix || strstr(v, "fence:") ||
        (len >= 5 && !strcmp(v + len - 5, "fence")))
        return sg_error_set(err, SG_E_INVALID_ARGUMENT,
                            "prefix must be shorter than 256 bytes, must not contain "
                            "'fence:' nor end with 'fence'");
    snprintf(rb->prefix, sizeof rb->prefix, "%s", v);
    snprintf(rb->fence_prefix, sizeof rb->fence_prefix, "fence:%s%s", rb->prefix,
             rb->prefix[0] ? ":" : "");
    return SG_OK;
}

/* connections=N: how many shared pipelined connections (1..SG_REDIS_MUX_MAX). */
static sg_status apply_connections(const sg_url *u, int *n, sg_error *err)
{
    const char *v = sg_url_get(u, "connections");
    if (!v)
        return SG_OK;
    char *end;
    long k = strtol(v, &end, 10);
    if (!*v || *end || k < 1 || k > SG_REDIS_MUX_MAX)
        return sg_error_set(err, SG_E_INVALID_ARGUMENT, "connections must be 1..%d",
                            SG_REDIS_MUX_MAX);
    *n = (int)k;
    return SG_OK;
}

/* Fences go backwards if INCRs can be lost: warn, or refuse when asked. */
static sg_status check_durability(redis_backend *rb, bool require, sg_error *err)
{
    const char *names[3] = {"appendonly", "appendfsync", "maxmemory-policy"};
    char values[3][64] = {"", "", ""};
    bool readable = true;
    for (int i = 0; i < 3 && readable; i++) {
        const char *argv[3] = {"CONFIG", "GET", names[i]};
        bool sent, dropped;
        redisReply *r = sg_redis_mux_command(rb->mux, 3, argv, &sent, &dropped, err);
        if (!r)
            return SG_ERROR;
        if (r->type == REDIS_REPLY_ERROR && r->str &&
            (!strncmp(r->str, "NOAUTH", 6) || !strncmp(r->str, "WRONGPASS", 9))) {
            sg_status st = sg_redis_reply_error(r, err);
            freeReplyObject(r);
            return st;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING)
            snprintf(values[i], sizeof values[i], "%s", r->element[1]->str);
        else
            readable = false; /* CONFIG renamed or denied */
        freeReplyObject(r);
    }
    if (!readable) {
        if (require)
            return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE,
                                "cannot verify fence durability (CONFIG GET refused) and "
                                "durable fences are required");
        sg_log(SG_LOG_INFO, "redis: CONFIG GET unavailable; fence durability not verified");
        return SG_OK;
    }
    bool durable = !strcasecmp(values[0], "yes") && !strcasecmp(values[1], "always") &&
                   (!strcasecmp(values[2], "noeviction") || !strncasecmp(values[2], "volatile-", 9));
    if (durable)
        return SG_OK;
    if (require)
        return sg_error_set(err, SG_E_SERVICE_UNAVAILABLE,
                            "Redis may lose fence counters (appendonly=%s appendfsync=%s "
                            "maxmemory-policy=%s); durable fences are required",
                            values[0], values[1], values[2]);
    sg_log(SG_LOG_WARN,
           "redis: fencing tokens are not crash-safe on this server (appendonly=%s, "
           "appendfsync=%s, maxmemory-policy=%s): a crash or eviction can make fences go "
           "backwards. Use appendonly yes, appendfsync always, noeviction.",
           values[0], values[1], values[2]);
    return SG_OK;
}

sg_status sg_redis_open(const sg_url *url, const sg_open_opts *opts, sg_backend **out,
                        sg_error *err)
{
    sg_backend *b = sg_backend_alloc(&redis_ops, (sg_capabilities){"redis", true, SG_TIME_SERVER}, sizeof(redis_backend), err);
    if (!b)
        return SG_ERROR;
    redis_backend *rb = b->impl;
    snprintf(rb->prefix, sizeof rb->prefix, "syncguard");
    snprintf(rb->fence_prefix, sizeof rb->fence_prefix, "fence:syncguard:");
    for (int i = 0; i < S_COUNT; i++) {
        unsigned char d[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)scripts[i], strlen(scripts[i]), d);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++)
            snprintf(rb->sha[i] + 2 * j, 3, "%02x", d[j]);
    }
    static const char *const backend_params[] = {"prefix", "connections", NULL};
    sg_status st = sg_redis_config_parse(&rb->cfg, url, opts, backend_params, err);
    if (st == SG_OK)
        st = apply_prefix(rb, url, err);
    int conns = SG_REDIS_MUX_DEFAULT;
    if (st == SG_OK)
        st = apply_connections(url, &conns, err);
    if (st == SG_OK && !(rb->mux = sg_redis_mux_new(&rb->cfg, conns)))
        st = sg_error_set(err, SG_E_INTERNAL, "out of memory opening Redis");
    if (st == SG_OK)
        st = check_durability(rb, opts && opts->require_durable_fences, err);
    if (st == SG_OK && !(rb->wake = sg_redis_wake_new(connect_one, close_one, rb)))
        sg_log(SG_LOG_WARN, "redis: no memory for wake-ups; waiters will poll");
    if (st != SG_OK) {
        r_close(b);
        return SG_ERROR;
    }
    *out = b;
    return SG_OK;
}
