/* Runs the QMP fuzz target without libFuzzer (the default suite, gcc): the
 * given corpus files, then a fixed number of generated inputs: streams of
 * QMP-like pieces (commands, ids of every JSON type, strings with braces and
 * escapes, bare words, stray brackets, deep nesting, long strings, raw
 * bytes) cut into reads of random size, with a few bytes flipped.
 * Deterministic for a given seed.
 *
 *   fuzz_qmp_replay [-n COUNT] [-s SEED] [-w DIR] [FILE|DIR]...
 *
 * -w writes the generated inputs into DIR (seeds for a libFuzzer corpus). */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "tests/fuzz/fuzz_qmp.h"

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static const char *const pieces[] = {
    "{\"execute\": \"qmp_capabilities\"}",
    "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}",
    "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [1]}}",
    "{\"execute\": \"query-version\", \"id\": 1}",
    "{\"execute\": \"query-commands\", \"id\": \"libvirt-1\"}",
    "{\"execute\": \"x-args\", \"arguments\": {\"s\": \"a}b{\\\"c\", \"i\": -3, \"b\": false}}",
    "{\"execute\": \"x-args\", \"arguments\": {\"s\": \"x\", \"i\": 2, \"b\": true}, \"id\": [null]}",
    "{\"execute\": \"x-args\", \"arguments\": {\"s\": 1}}",
    "{\"execute\": \"x-args\", \"arguments\": {\"s\": \"e\", \"emit\": true}}",
    "{\"execute\": \"x-pre\", \"arguments\": {\"t\": 0}}",
    "{\"exec-oob\": \"query-version\"}",
    "{\"execute\": \"nope\", \"id\": {\"a\": {\"b\": [1.5e300, -0, true]}}}",
    "{\"execute\": 5}", "{\"id\": \"\\ud83d\\ude00\"}", "{\"execute\": \"query-version\", \"arguments\": []}",
    "{\"execute\": \"query-version\", \"extra\": 1}", "[1, {\"execute\": \"x\"}]", "\"str{ing\"", "'sq{'",
    "123", "-1.5e3", "true", "null", "nul", "tru", "foo", "}", "]", ",", ":", "{", "[", "\"",
    "\\", "{\"a\": \"\\u00e9\\n\\t\\\"\"}", "{\"a\":1,}", "{\"a\" 1}", "{\"\\uDC00\": 1}",
    "\n", "\r\n", " ", "\t", "\xff", "\xc3", "\x00", "{\"execute\": \"query-version\"}\r\n",
};

static size_t generate(uint64_t *s, uint8_t *out, size_t cap)
{
    size_t len = 0;
    out[len++] = (uint8_t)(rnd(s) % 4 ? rnd(s) : 0);     /* how it is cut into reads */
    unsigned n = 1 + rnd(s) % 24;
    for (unsigned i = 0; i < n && len < cap; i++) {
        unsigned kind = rnd(s) % 16;
        if (kind == 0) {            /* deep nesting */
            unsigned d = rnd(s) % 1200;
            for (unsigned k = 0; k < d && len < cap; k++)
                out[len++] = rnd(s) % 2 ? '[' : '{';
        } else if (kind == 1) {     /* a long string (past the 1 KiB bound or not) */
            unsigned l = rnd(s) % 1500;
            if (len < cap)
                out[len++] = '"';
            for (unsigned k = 0; k < l && len < cap; k++)
                out[len++] = 'a' + rnd(s) % 26;
        } else if (kind == 2) {     /* raw bytes */
            unsigned l = rnd(s) % 16;
            for (unsigned k = 0; k < l && len < cap; k++)
                out[len++] = (uint8_t)rnd(s);
        } else {
            const char *p = pieces[rnd(s) % G_N_ELEMENTS(pieces)];
            size_t l = strlen(p);
            if (p[0] == 0)
                l = 1;
            for (size_t k = 0; k < l && len < cap; k++)
                out[len++] = (uint8_t)p[k];
        }
    }
    unsigned flips = rnd(s) % 4 == 0 ? 1 + rnd(s) % 3 : 0;
    for (unsigned i = 0; i < flips && len > 1; i++)
        out[1 + rnd(s) % (len - 1)] ^= (uint8_t)(1u << (rnd(s) % 8));
    return len;
}

static int run_file(const char *path)
{
    gchar *data;
    gsize len;
    if (!g_file_get_contents(path, &data, &len, NULL)) {
        fprintf(stderr, "fuzz_qmp_replay: cannot read %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    g_free(data);
    return 0;
}

static int run_path(const char *path, unsigned *files)
{
    if (!g_file_test(path, G_FILE_TEST_IS_DIR)) {
        (*files)++;
        return run_file(path);
    }
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    int r = 0;
    while ((e = readdir(d)) && r == 0) {
        if (e->d_name[0] == '.')
            continue;
        g_autofree char *p = g_build_filename(path, e->d_name, NULL);
        (*files)++;
        r = run_file(p);
    }
    closedir(d);
    return r;
}

int main(int argc, char **argv)
{
    unsigned long count = 10000;
    uint64_t seed = 1;
    const char *write_dir = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "fuzz_qmp_replay: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "-n"))
            count = strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-s"))
            seed = strtoull(argv[++i], NULL, 0) | 1;
        else if (!strcmp(argv[i], "-w"))
            write_dir = argv[++i];
        else {
            fprintf(stderr, "fuzz_qmp_replay: unknown option %s; usage: [-n COUNT] [-s SEED] [-w DIR] [FILE|DIR]...\n",
                    argv[i]);
            return 2;
        }
    }
    unsigned files = 0;
    for (; i < argc; i++)
        if (run_path(argv[i], &files) < 0)
            return 1;
    if (write_dir)
        g_mkdir_with_parents(write_dir, 0755);
    static uint8_t in[32768];
    for (unsigned long k = 0; k < count; k++) {
        size_t len = generate(&seed, in, sizeof(in));
        if (write_dir) {
            g_autofree char *p = g_strdup_printf("%s/gen-%05lu", write_dir, k);
            g_file_set_contents(p, (const char *)in, (gssize)len, NULL);
            continue;
        }
        LLVMFuzzerTestOneInput(in, len);
    }
    printf("fuzz_qmp_replay: %u corpus files and %lu generated inputs, no invariant broken\n", files,
           write_dir ? 0 : count);
    return 0;
}
