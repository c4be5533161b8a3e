#include "vmm/iothread.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/log.h"
#include "vmm/loop.h"

struct iothread {
    char *id;
    struct loop *loop;
    pthread_t thread;
    GMutex lock;
    GCond cond;
    bool started;
};

static GMutex registry_lock;
static GPtrArray *registry;

/* Runs inside loop_run, so the loop already knows its thread when
 * iothread_new returns: loop_call_wait from then on goes to the thread. */
static void started_fn(void *opaque)
{
    struct iothread *t = opaque;
    g_mutex_lock(&t->lock);
    t->started = true;
    g_cond_signal(&t->cond);
    g_mutex_unlock(&t->lock);
}

static void *iothread_main(void *opaque)
{
    struct iothread *t = opaque;
    char name[16];
    snprintf(name, sizeof(name), "iothread-%s", t->id);
    pthread_setname_np(pthread_self(), name);
    loop_call(t->loop, started_fn, t);
    int r = loop_run(t->loop);
    if (r < 0)
        log_error("iothread %s: its event loop failed: %s", t->id, g_strerror(-r));
    return NULL;
}

struct iothread *iothread_find(const char *id)
{
    struct iothread *found = NULL;
    g_mutex_lock(&registry_lock);
    for (guint i = 0; registry && i < registry->len && !found; i++) {
        struct iothread *t = registry->pdata[i];
        if (strcmp(t->id, id) == 0)
            found = t;
    }
    g_mutex_unlock(&registry_lock);
    return found;
}

struct iothread *iothread_new(const char *id, GError **err)
{
    if (iothread_find(id)) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST, "iothread '%s' exists already", id);
        return NULL;
    }
    struct iothread *t = g_new0(struct iothread, 1);
    t->id = g_strdup(id);
    t->loop = loop_new(err);
    if (!t->loop) {
        g_free(t->id);
        g_free(t);
        return NULL;
    }
    g_mutex_init(&t->lock);
    g_cond_init(&t->cond);
    int r = pthread_create(&t->thread, NULL, iothread_main, t);
    if (r != 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(r), "cannot start iothread '%s': %s", id,
                    g_strerror(r));
        loop_free(t->loop);
        g_free(t->id);
        g_free(t);
        return NULL;
    }
    g_mutex_lock(&t->lock);
    while (!t->started)
        g_cond_wait(&t->cond, &t->lock);
    g_mutex_unlock(&t->lock);
    g_mutex_lock(&registry_lock);
    if (!registry)
        registry = g_ptr_array_new();
    g_ptr_array_add(registry, t);
    g_mutex_unlock(&registry_lock);
    return t;
}

struct loop *iothread_loop(struct iothread *t)
{
    return t->loop;
}

pthread_t iothread_thread(struct iothread *t)
{
    return t->thread;
}

void iothread_free(struct iothread *t)
{
    if (!t)
        return;
    g_mutex_lock(&registry_lock);
    if (registry)
        g_ptr_array_remove(registry, t);
    g_mutex_unlock(&registry_lock);
    loop_quit(t->loop);
    pthread_join(t->thread, NULL);
    loop_run_calls(t->loop);
    loop_free(t->loop);
    g_mutex_clear(&t->lock);
    g_cond_clear(&t->cond);
    g_free(t->id);
    g_free(t);
}

void iothread_free_all(void)
{
    for (;;) {
        g_mutex_lock(&registry_lock);
        struct iothread *t = registry && registry->len ? registry->pdata[registry->len - 1] : NULL;
        g_mutex_unlock(&registry_lock);
        if (!t)
            break;
        iothread_free(t);
    }
}
