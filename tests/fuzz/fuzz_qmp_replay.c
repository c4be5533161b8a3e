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
#include <string.h>

#include <glib.h>

#include "tests/fuzz/replay_driver.h"

#include "tests/fuzz/fuzz_qmp.h"

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
    out[len++] = (uint8_t)(replay_rnd(s) % 4 ? replay_rnd(s) : 0);     /* how it is cut into reads */
    unsigned n = 1 + replay_rnd(s) % 24;
    for (unsigned i = 0; i < n && len < cap; i++) {
        unsigned kind = replay_rnd(s) % 16;
        if (kind == 0) {            /* deep nesting */
            unsigned d = replay_rnd(s) % 1200;
            for (unsigned k = 0; k < d && len < cap; k++)
                out[len++] = replay_rnd(s) % 2 ? '[' : '{';
        } else if (kind == 1) {     /* a long string (past the 1 KiB bound or not) */
            unsigned l = replay_rnd(s) % 1500;
            if (len < cap)
                out[len++] = '"';
            for (unsigned k = 0; k < l && len < cap; k++)
                out[len++] = 'a' + replay_rnd(s) % 26;
        } else if (kind == 2) {     /* raw bytes */
            unsigned l = replay_rnd(s) % 16;
            for (unsigned k = 0; k < l && len < cap; k++)
                out[len++] = (uint8_t)replay_rnd(s);
        } else {
            const char *p = pieces[replay_rnd(s) % G_N_ELEMENTS(pieces)];
            size_t l = strlen(p);
            if (p[0] == 0)
                l = 1;
            for (size_t k = 0; k < l && len < cap; k++)
                out[len++] = (uint8_t)p[k];
        }
    }
    unsigned flips = replay_rnd(s) % 4 == 0 ? 1 + replay_rnd(s) % 3 : 0;
    for (unsigned i = 0; i < flips && len > 1; i++)
        out[1 + replay_rnd(s) % (len - 1)] ^= (uint8_t)(1u << (replay_rnd(s) % 8));
    return len;
}

int main(int argc, char **argv)
{
    static const struct replay_target target = {
        .name = "fuzz_qmp_replay", .count = 10000, .seed = 1, .max_len = 32768, .generate = generate,
    };
    return replay_main(&target, argc, argv);
}
