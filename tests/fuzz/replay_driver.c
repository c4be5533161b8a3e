#include "tests/fuzz/replay_driver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *name, const char *path)
{
    g_autofree gchar *data = NULL;
    gsize len;
    g_autoptr(GError) err = NULL;
    if (!g_file_get_contents(path, &data, &len, &err)) {
        fprintf(stderr, "%s: %s\n", name, err->message);
        return -1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    return 0;
}

static int run_path(const char *name, const char *path, unsigned *files)
{
    if (!g_file_test(path, G_FILE_TEST_IS_DIR)) {
        (*files)++;
        return run_file(name, path);
    }
    g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
    if (!dir) {
        fprintf(stderr, "%s: cannot open corpus directory %s\n", name, path);
        return -1;
    }
    const char *entry;
    while ((entry = g_dir_read_name(dir))) {
        g_autofree gchar *p = g_build_filename(path, entry, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_REGULAR)) {
            (*files)++;
            if (run_file(name, p) < 0)
                return -1;
        }
    }
    return 0;
}

int replay_main(const struct replay_target *t, int argc, char **argv)
{
    unsigned long count = t->count;
    uint64_t seed = t->seed;
    const char *write_dir = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", t->name, argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "-n"))
            count = strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-s"))
            seed = strtoull(argv[++i], NULL, 0) | 1;
        else if (!strcmp(argv[i], "-w"))
            write_dir = argv[++i];
        else {
            fprintf(stderr, "%s: unknown option %s; usage: [-n COUNT] [-s SEED] [-w DIR] [FILE|DIR]...\n", t->name,
                    argv[i]);
            return 2;
        }
    }
    if (write_dir && g_mkdir_with_parents(write_dir, 0755) < 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", t->name, write_dir, g_strerror(errno));
        return 1;
    }
    unsigned files = 0;
    for (; i < argc; i++)
        if (run_path(t->name, argv[i], &files) < 0)
            return 1;

    g_autofree uint8_t *in = g_malloc(t->max_len);
    for (unsigned long k = 0; k < count; k++) {
        size_t len = t->generate(&seed, in, t->max_len);
        if (write_dir) {
            g_autofree gchar *p = g_strdup_printf("%s/gen-%05lu", write_dir, k);
            if (!g_file_set_contents(p, (const gchar *)in, (gssize)len, NULL)) {
                fprintf(stderr, "%s: cannot write %s\n", t->name, p);
                return 1;
            }
        }
        LLVMFuzzerTestOneInput(in, len);
    }
    printf("%s: %u corpus files and %lu generated inputs, no invariant broken\n", t->name, files, count);
    return 0;
}
