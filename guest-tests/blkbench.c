/* blkbench: not a test but the guest of tools/bench/blk. Drives the first
 * virtio-blk disk with n reads of bs bytes, keeping qd requests in flight
 * (polled, no interrupts), at random bs-aligned offsets (rand=1) or
 * sequentially, and leaves through the debug-exit port: status 1 when every
 * request completed with OK. The host times the whole run against a run
 * with n=0, so boot and teardown cancel out.
 *
 * cmdline: bs=BYTES (512..131072, a multiple of 512) qd=1..32 n=COUNT rand=0|1 */
#include "virtio_pci.h"

#define MAX_QD      32
#define MAX_BS      131072
#define QSIZE       128

struct req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static uint8_t ring[32768] __attribute__((aligned(4096)));
static struct req_hdr hdr[MAX_QD] __attribute__((aligned(16)));
static volatile uint8_t status[MAX_QD];
static uint8_t data[MAX_QD][MAX_BS] __attribute__((aligned(4096)));
static int16_t slot_of_head[QSIZE];
static struct virtq q;

static uint64_t rng_state = 88172645463325252ull;

static uint64_t next_rand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static bool submit(unsigned slot, uint64_t sector, uint32_t bs)
{
    hdr[slot] = (struct req_hdr){ .type = 0, .sector = sector };
    status[slot] = 0xee;
    struct virtq_sg sg[3] = { { &hdr[slot], sizeof(hdr[slot]) }, { data[slot], bs }, { (void *)&status[slot], 1 } };
    int head = virtq_add(&q, sg, 1, 2);
    if (head < 0 || head >= QSIZE)
        return false;
    slot_of_head[head] = (int16_t)slot;
    return true;
}

int main(void)
{
    uint32_t bs = (uint32_t)cmdline_get_u64("bs", 4096);
    unsigned qd = (unsigned)cmdline_get_u64("qd", 1);
    uint64_t n = cmdline_get_u64("n", 1000);
    bool rand = cmdline_get_u64("rand", 1) != 0;
    plan(2);
    if (bs < 512 || bs > MAX_BS || bs % 512 || qd < 1 || qd > MAX_QD) {
        ok(false, "bs=%u qd=%u: bs is 512..%u in sectors, qd 1..%u", bs, qd, MAX_BS, MAX_QD);
        done();
    }
    struct virtio_dev d;
    bool up = pci_init() && virtio_open(&d, VIRTIO_TYPE_BLOCK) && virtio_reset(&d) &&
              virtio_negotiate(&d, 1ull << VIRTIO_F_VERSION_1) &&
              virtq_setup(&q, &d, 0, QSIZE, ring, VIRTIO_NO_VECTOR, NULL);
    uint64_t cap = 0;
    if (up) {
        virtio_config_read(&d, 0, &cap, 8);
        virtio_driver_ok(&d);
    }
    uint64_t blocks = cap / (bs / 512);
    if (!ok(up && blocks > 0, "virtio-blk up: %lu sectors, %u-byte reads at depth %u, %s", cap, bs, qd,
            rand ? "random" : "sequential"))
        done();
    uint64_t issued = 0, completed = 0, errors = 0, seq = 0;
    for (unsigned s = 0; s < qd && issued < n; s++, issued++)
        submit(s, (rand ? next_rand() % blocks : seq++ % blocks) * (bs / 512), bs);
    virtq_kick(&q);
    while (completed < n) {
        uint16_t head;
        uint32_t len;
        if (!virtq_wait_used(&q, &head, &len))
            break;
        bool more = false;
        do {
            unsigned s = (unsigned)slot_of_head[head % QSIZE];
            completed++;
            errors += status[s] != 0;
            if (issued < n) {
                submit(s, (rand ? next_rand() % blocks : seq++ % blocks) * (bs / 512), bs);
                issued++;
                more = true;
            }
        } while (virtq_get_used(&q, &head, &len));
        if (more)
            virtq_kick(&q);
    }
    ok(completed == n && errors == 0, "%lu of %lu reads completed, %lu with an error status", completed, n, errors);
    done();
}
