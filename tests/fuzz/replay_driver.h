/* The driver both replay programs share: corpus files and directories, then
 * a fixed number of inputs from the target's own generator, deterministic
 * for a given seed; -w also writes the generated inputs to a directory
 * (seeds for a libFuzzer corpus).
 *
 *   NAME [-n COUNT] [-s SEED] [-w DIR] [FILE|DIR]... */
#ifndef VMM_TESTS_FUZZ_REPLAY_DRIVER_H
#define VMM_TESTS_FUZZ_REPLAY_DRIVER_H

#include <stddef.h>
#include <stdint.h>

struct replay_target {
    const char *name;           /* for messages: the program's name */
    unsigned long count;        /* generated inputs without -n */
    uint64_t seed;              /* without -s */
    size_t max_len;             /* the generator's output buffer */
    /* Fills out (max_len bytes) from *seed, returns the input's length. */
    size_t (*generate)(uint64_t *seed, uint8_t *out, size_t cap);
};

/* xorshift64: the generators' one source of randomness. */
static inline uint64_t replay_rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Runs LLVMFuzzerTestOneInput over the corpus given in argv and then over
 * the generated inputs; returns main's exit status (2 bad usage, 1 a file or
 * directory that cannot be read or written). */
int replay_main(const struct replay_target *t, int argc, char **argv);

#endif
