/* Runs the virtqueue fuzz target without libFuzzer, so the default suite
 * (gcc, no clang) exercises it on every run: first the given corpus files
 * (crashers found by libFuzzer stay there as regressions), then a fixed
 * number of generated inputs: well-formed rings of random shape (direct and
 * indirect chains, indexes near 2^16) with a few random bytes flipped, which
 * reaches deeper than random bytes would. Deterministic for a given seed.
 *
 *   fuzz_virtqueue_replay [-n COUNT] [-s SEED] [-w DIR] [FILE|DIR]...
 *
 * -w writes the generated inputs into DIR (seeds for a libFuzzer corpus). */
#include <stdbool.h>
#include <string.h>

#include <glib.h>

#include "tests/fuzz/replay_driver.h"

#include "tests/fuzz/fuzz_virtqueue.h"

#define INPUT_MAX (sizeof(struct fuzz_hdr) + FUZZ_RAM)

static void put16(uint8_t *mem, uint64_t gpa, uint16_t v)
{
    if (gpa + 2 <= FUZZ_RAM)
        memcpy(mem + gpa, &v, 2);
}

static void put_desc(uint8_t *mem, uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    if (gpa + 16 > FUZZ_RAM)
        return;
    memcpy(mem + gpa, &addr, 8);
    memcpy(mem + gpa + 8, &len, 4);
    memcpy(mem + gpa + 12, &flags, 2);
    memcpy(mem + gpa + 14, &next, 2);
}

/* Set while generating for virtio-console's transmitq: readable chains only. */
static bool readable_only;

/* One chain of 1..4 buffers in the table at `table`, slots from `first`. */
static unsigned put_chain(uint64_t *s, uint8_t *mem, uint64_t table, unsigned first, unsigned room,
                          bool device)
{
    unsigned n = 1 + replay_rnd(s) % 4;
    if (n > room)
        n = room;
    unsigned n_out = device ? 0 : readable_only ? n : replay_rnd(s) % (n + 1);
    for (unsigned i = 0; i < n; i++) {
        uint16_t flags = (i >= n_out ? 2 : 0) | (i + 1 < n ? 1 : 0);
        uint64_t addr = 0x8000 + replay_rnd(s) % 0x7000;
        uint32_t len = 1 + replay_rnd(s) % 0x800;
        put_desc(mem, table + 16ULL * (first + i), addr, len, flags, (uint16_t)(first + i + 1));
    }
    return n;
}

/* A virtio-blk request as a driver would write it (header, data, status),
 * with a type, sector and length that are usually valid. Returns its
 * descriptor count. */
static unsigned put_blk_request(uint64_t *s, uint8_t *mem, uint64_t table, unsigned first, unsigned room)
{
    static const uint32_t types[] = { 0, 1, 4, 8, 11, 13, 0, 1, 99 };
    uint32_t type = types[replay_rnd(s) % 9];
    uint64_t sector = replay_rnd(s) % 4 ? replay_rnd(s) % FUZZ_BLK_SECTORS : replay_rnd(s);
    uint64_t hdr = 0x8000 + 32 * (replay_rnd(s) % 64), data = 0x9000 + 512 * (replay_rnd(s) % 32), status = 0xf000 + replay_rnd(s) % 256;
    uint32_t len = replay_rnd(s) % 4 ? 512 * (1 + replay_rnd(s) % 8) : 1 + replay_rnd(s) % 0x1000;
    memcpy(mem + hdr, &type, 4);
    memset(mem + hdr + 4, 0, 4);
    memcpy(mem + hdr + 8, &sector, 8);
    if (type == 11 || type == 13) {
        uint32_t n = replay_rnd(s) % 16, flags = replay_rnd(s) % 4 ? 0 : replay_rnd(s) % 3;
        memcpy(mem + data, &sector, 8);
        memcpy(mem + data + 8, &n, 4);
        memcpy(mem + data + 12, &flags, 4);
        len = 16;
    }
    bool dev_writes = type == 0 || type == 8;
    unsigned n = room >= 3 && type != 4 ? 3 : 2;
    put_desc(mem, table + 16ULL * first, hdr, 16, 1, (uint16_t)(first + 1));
    if (n == 3)
        put_desc(mem, table + 16ULL * (first + 1), data, len, (uint16_t)((dev_writes ? 2 : 0) | 1),
                 (uint16_t)(first + 2));
    put_desc(mem, table + 16ULL * (first + n - 1), status, 1, 2, 0);
    return n;
}

/* A virtio-mem request (24 bytes, readable) and room for its response (10,
 * writable), usually about blocks of the region, now and then malformed. */
static unsigned put_mem_request(uint64_t *s, uint8_t *mem, uint64_t table, unsigned first, unsigned room)
{
    uint64_t req = 0x8000 + 32 * (replay_rnd(s) % 64), resp = 0xf000 + 16 * (replay_rnd(s) % 64);
    uint16_t type = replay_rnd(s) % 8 ? (uint16_t)(replay_rnd(s) % 4) : (uint16_t)replay_rnd(s);
    uint64_t addr = FUZZ_MEM_BASE + FUZZ_MEM_BLOCK * (replay_rnd(s) % (FUZZ_MEM_BLOCKS + 4));
    if (replay_rnd(s) % 8 == 0)
        addr = replay_rnd(s) % 2 ? addr + replay_rnd(s) % FUZZ_MEM_BLOCK : replay_rnd(s);
    uint16_t nb = replay_rnd(s) % 8 ? (uint16_t)(replay_rnd(s) % 9) : (uint16_t)replay_rnd(s);
    memset(mem + req, 0, 24);
    memcpy(mem + req, &type, 2);
    memcpy(mem + req + 8, &addr, 8);
    memcpy(mem + req + 16, &nb, 2);
    uint32_t req_len = replay_rnd(s) % 16 ? 24 : replay_rnd(s) % 32, resp_len = replay_rnd(s) % 16 ? 10 : replay_rnd(s) % 16;
    if (room < 2 || !req_len || !resp_len)
        return put_chain(s, mem, table, first, room, false);
    put_desc(mem, table + 16ULL * first, req, req_len, 1, (uint16_t)(first + 1));
    put_desc(mem, table + 16ULL * (first + 1), resp, resp_len, 2, 0);
    return 2;
}

static size_t generate(uint64_t *s, uint8_t *in, size_t cap)
{
    (void)cap;                  /* always INPUT_MAX */
    memset(in, 0, INPUT_MAX);
    struct fuzz_hdr h = { 0 };
    uint8_t *mem = in + sizeof(h);
    h.mode = replay_rnd(s) & 127;
    bool blk = h.mode & FUZZ_BLK;
    bool console = !blk && (h.mode & FUZZ_CONSOLE);
    bool net = !blk && !console && (h.mode & FUZZ_NET);
    bool vmem = !blk && !console && !net && (h.mode & FUZZ_MEM);
    bool device = !blk && (h.mode & FUZZ_DEVICE);
    h.size = (uint16_t)(1u << (replay_rnd(s) % 9));
    h.desc = 0x1000;
    h.avail = 0x3000;
    h.used = 0x4000;
    if (replay_rnd(s) % 8 == 0) {
        h.desc = replay_rnd(s) & 0xfff0;
        h.avail = replay_rnd(s) & 0xfffe;
        h.used = replay_rnd(s) & 0xfffc;
    }
    h.last_avail = h.used_idx = device || blk || console || net || vmem ? 0 : (uint16_t)(replay_rnd(s) % 4 ? 0xfff0 + replay_rnd(s) % 32 : replay_rnd(s));
    h.seed = (uint16_t)replay_rnd(s);
    /* The console's receiveq takes writable chains like rng's queue, its
     * transmitq readable ones (seed bit 0 picks, as in the target). */
    if (console)
        device = h.seed & 1;
    readable_only = console && !(h.seed & 1);
    /* virtio-net: writable chains for the receiveq, readable ones for the
     * transmitq (seed % 3 picks, as in the target), mixed for control. */
    if (net) {
        device = h.seed % 3 == 0;
        readable_only = h.seed % 3 == 1;
    }

    unsigned slot = 0, chains = 0, want = 1 + replay_rnd(s) % h.size;
    while (chains < want && slot < h.size) {
        put16(mem, h.avail + 4 + 2ULL * ((h.last_avail + chains) % h.size), (uint16_t)slot);
        if (blk && h.size - slot >= 3 && replay_rnd(s) % 4) {
            slot += put_blk_request(s, mem, h.desc, slot, h.size - slot);
        } else if (vmem && replay_rnd(s) % 8) {
            slot += put_mem_request(s, mem, h.desc, slot, h.size - slot);
        } else if ((h.mode & FUZZ_INDIRECT) && replay_rnd(s) % 3 == 0) {
            uint64_t table = 0x5000 + 0x200 * (chains % 8);
            unsigned n = put_chain(s, mem, table, 0, MIN(h.size, 8u), device);
            put_desc(mem, h.desc + 16ULL * slot, table, 16 * n, 4, 0);
            slot++;
        } else {
            slot += put_chain(s, mem, h.desc, slot, h.size - slot, device);
        }
        chains++;
    }
    put16(mem, h.avail + 2, (uint16_t)(h.last_avail + chains));
    memcpy(in, &h, sizeof(h));

    size_t len = sizeof(h) + 0x8000 + replay_rnd(s) % 0x8000;
    for (unsigned flips = replay_rnd(s) % 5; flips; flips--)
        in[replay_rnd(s) % len] ^= (uint8_t)(1u << (replay_rnd(s) % 8));
    return len;
}

int main(int argc, char **argv)
{
    static const struct replay_target target = {
        .name = "fuzz_virtqueue_replay", .count = 20000, .seed = 0x9e3779b97f4a7c15ULL, .max_len = INPUT_MAX, .generate = generate,
    };
    return replay_main(&target, argc, argv);
}
