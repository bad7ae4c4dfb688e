/* nodes.c — key ↔ inode. An inode number is its node's address; a node
 * lives while the kernel (nlookup) or a descriptor or call (nopen) refers
 * to it. A key whose lock went away while descriptors stayed open keeps
 * that inode for them; the next live LOOKUP of the key gets a fresh one. */
#include "sgfs.h"

#include <stdlib.h>
#include <string.h>

uint64_t sgfs_key_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int sgfs_nodes_init(sgfs *fs)
{
    fs->table_size = 1024;
    fs->table = calloc(fs->table_size, sizeof *fs->table);
    return fs->table ? 0 : -1;
}

static void node_destroy(node *n)
{
    for (handle *h = n->handles, *next; h; h = next) {
        next = h->nnext;
        if (h->ph)
            fuse_pollhandle_destroy(h->ph);
        free(h->snap);
        free(h);
    }
    free(n->key);
    free(n);
}

void sgfs_nodes_free(sgfs *fs)
{
    for (size_t i = 0; i < fs->table_size; i++)
        for (node *n = fs->table[i], *next; n; n = next) {
            next = n->hnext;
            for (node *o = n->older, *on; o; o = on) {
                on = o->older;
                node_destroy(o);
            }
            node_destroy(n);
        }
    free(fs->table);
    fs->table = NULL;
}

node *sgfs_node_find(sgfs *fs, const char *key)
{
    node *n = fs->table[sgfs_key_hash(key) % fs->table_size];
    while (n && strcmp(n->key, key))
        n = n->hnext;
    return n;
}

static void table_grow(sgfs *fs)
{
    size_t size = fs->table_size * 2;
    node **t = calloc(size, sizeof *t);
    if (!t)
        return;
    for (size_t i = 0; i < fs->table_size; i++)
        for (node *n = fs->table[i], *next; n; n = next) {
            next = n->hnext;
            size_t j = sgfs_key_hash(n->key) % size;
            n->hnext = t[j];
            t[j] = n;
        }
    free(fs->table);
    fs->table = t;
    fs->table_size = size;
}

static void table_insert(sgfs *fs, node *n)
{
    if (fs->n_nodes >= fs->table_size)
        table_grow(fs);
    size_t i = sgfs_key_hash(n->key) % fs->table_size;
    n->hnext = fs->table[i];
    fs->table[i] = n;
    n->hashed = true;
    fs->n_nodes++;
}

static void table_remove(sgfs *fs, node *n)
{
    node **pp = &fs->table[sgfs_key_hash(n->key) % fs->table_size];
    while (*pp && *pp != n)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = n->hnext;
    n->hashed = false;
    fs->n_nodes--;
}

static node *node_alloc(const char *key)
{
    node *n = calloc(1, sizeof *n);
    if (!n || !(n->key = strdup(key))) {
        free(n);
        return NULL;
    }
    return n;
}

node *sgfs_node_get(sgfs *fs, const char *key)
{
    node *n = sgfs_node_find(fs, key);
    if (n)
        return n;
    if (!(n = node_alloc(key)))
        return NULL;
    table_insert(fs, n);
    return n;
}

node *sgfs_node_for_live(sgfs *fs, node *n)
{
    if (!n->gone || !n->hashed)
        return n;
    if (!n->nopen && !n->handles) { /* nobody holds the old inode open: reuse it */
        n->gone = false;
        return n;
    }
    node *fresh = node_alloc(n->key);
    if (!fresh)
        return NULL;
    table_remove(fs, n);
    fresh->older = n;
    n->newer = fresh;
    table_insert(fs, fresh);
    return fresh;
}

/* Unlink n from its fresh node's chain of older inodes. */
static void chain_remove(node *n)
{
    node *newer = n->newer;
    if (!newer)
        return;
    newer->older = n->older;
    if (n->older)
        n->older->newer = newer;
}

void sgfs_node_maybe_free(sgfs *fs, node *n)
{
    if (n->nlookup || n->nopen || n->handles)
        return;
    if (n->hashed) {
        if (n->older) { /* older inodes stay reachable from their key */
            node *o = n->older;
            table_remove(fs, n);
            o->newer = NULL;
            table_insert(fs, o);
            o->gone = true;
        } else {
            table_remove(fs, n);
        }
    } else {
        chain_remove(n);
    }
    free(n->key);
    free(n);
}

node *sgfs_ino_node(fuse_ino_t ino)
{
    return ino > METRICS_INO ? (node *)(uintptr_t)ino : NULL;
}

fuse_ino_t sgfs_node_ino(const node *n)
{
    return (fuse_ino_t)(uintptr_t)n;
}

handle *sgfs_key_owner(sgfs *fs, node *n)
{
    node *cur = n->hashed ? n : NULL;
    for (node *x = n; !cur && x; x = x->newer)
        if (x->hashed)
            cur = x;
    if (!cur)
        cur = sgfs_node_find(fs, n->key);
    for (node *x = cur; x; x = x->older)
        for (handle *h = x->handles; h; h = h->nnext)
            if (h->state == H_OWNING)
                return h;
    return NULL;
}
