/* virtio_blk: a virtio-blk PCI disk through the runtime's virtio-pci driver,
 * polled (no MSI-X). The runner gives a 1 MiB raw image whose first bytes
 * are "VMMDISK0" and checks the image after the guest is gone.
 *
 * Read-write (default): capacity and block size from config space; reads
 * the marker; writes a pattern to sectors 8-15 and reads it back through
 * differently split buffers; flushes; reads the disk's serial (GET_ID);
 * discards sectors 64-71; writes a pattern to sectors 32-39 and then
 * WRITE_ZEROES over them (they read back as zeroes); writes the last sector;
 * a read past the end is IOERR, an unknown request type UNSUPP. The runner
 * then finds the pattern at sectors 8-15, zeroes at 32-39 and "LAST" in the
 * last sector of the host file.
 *
 * ro=1 (the disk is readonly=on): RO is offered; a write completes with IOERR and leaves the disk as it was (the runner
 * checks sectors 8-15 are still zero); reads and flush work.
 *
 * vmm: --disk path=..,serial=vmm-blk-test; QEMU: -device
 * virtio-blk-pci-non-transitional,serial=vmm-blk-test on microvm,pcie=on. */
#include "virtio_pci.h"

#define BLK_F_SEG_MAX       2
#define BLK_F_RO            5
#define BLK_F_BLK_SIZE      6
#define BLK_F_FLUSH         9
#define BLK_F_DISCARD       13
#define BLK_F_WRITE_ZEROES  14

#define T_IN            0
#define T_OUT           1
#define T_FLUSH         4
#define T_GET_ID        8
#define T_DISCARD       11
#define T_WRITE_ZEROES  13
#define S_OK            0
#define S_IOERR         1
#define S_UNSUPP        2

#define SECTORS         2048        /* the runner's 1 MiB image */
#define SERIAL          "vmm-blk-test"
#define PATTERN         "vmm-blk-pattern\n"

struct req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

struct dwz_seg {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
};

static uint8_t ring[8192] __attribute__((aligned(4096)));
static struct req_hdr hdr __attribute__((aligned(16)));
static struct dwz_seg seg __attribute__((aligned(16)));
static volatile uint8_t status;
static uint8_t wbuf[4096] __attribute__((aligned(4096)));
static uint8_t rbuf[4096] __attribute__((aligned(4096)));
static char idbuf[20];

static struct virtq q;

/* One request: header, optional data (written or read by the device),
 * status. Returns the status byte, or 0xff when nothing came back. */
static uint8_t request(uint32_t type, uint64_t sector, void *data, uint32_t len, bool dev_writes)
{
    hdr = (struct req_hdr){ .type = type, .sector = sector };
    status = 0xee;
    struct virtq_sg sg[4];
    unsigned n_out = 0, n_in = 0;
    sg[n_out++] = (struct virtq_sg){ &hdr, sizeof(hdr) };
    if (len && !dev_writes)
        sg[n_out++] = (struct virtq_sg){ data, len };
    if (len && dev_writes) {
        /* Split in two to exercise a multi-buffer chain. */
        uint32_t first = len > 512 ? 512 : len;
        sg[n_out + n_in++] = (struct virtq_sg){ data, first };
        if (len > first)
            sg[n_out + n_in++] = (struct virtq_sg){ (uint8_t *)data + first, len - first };
    }
    sg[n_out + n_in++] = (struct virtq_sg){ (void *)&status, 1 };
    if (virtq_add(&q, sg, n_out, n_in) < 0)
        return 0xff;
    virtq_kick(&q);
    uint16_t head;
    uint32_t used;
    if (!virtq_wait_used(&q, &head, &used))
        return 0xff;
    return status;
}

static uint8_t dwz(uint32_t type, uint64_t sector, uint32_t n)
{
    seg = (struct dwz_seg){ .sector = sector, .num_sectors = n };
    return request(type, 0, &seg, sizeof(seg), false);
}

static void fill_pattern(uint8_t *p, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)PATTERN[i % 16];
}

static bool all_zero(const uint8_t *p, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        if (p[i])
            return false;
    return true;
}

int main(void)
{
    bool ro = cmdline_get_u64("ro", 0) != 0;
    plan(ro ? 9 : 14);
    if (!ok(pci_init(), "MCFG (or _CBA) gives the ECAM window (0x%lx)", pci_ecam()))
        done();
    struct virtio_dev d;
    if (!ok(virtio_open(&d, VIRTIO_TYPE_BLOCK), "virtio-blk found at 00:%02x.%u", d.devfn >> 3, d.devfn & 7))
        done();
    virtio_reset(&d);
    uint64_t offer = virtio_device_features(&d);
    uint64_t want = (1ull << VIRTIO_F_VERSION_1) | (1ull << BLK_F_FLUSH) | (1ull << BLK_F_BLK_SIZE) |
                    (offer & ((1ull << BLK_F_RO) | (1ull << BLK_F_SEG_MAX) | (1ull << BLK_F_DISCARD) |
                              (1ull << BLK_F_WRITE_ZEROES)));
    /* QEMU offers DISCARD and WRITE_ZEROES on a read-only disk too (and fails
     * them); vmm does not, which test_virtio_blk checks. */
    bool feats = ro ? (offer >> BLK_F_RO & 1)
                    : !(offer >> BLK_F_RO & 1) && (offer >> BLK_F_DISCARD & 1) && (offer >> BLK_F_WRITE_ZEROES & 1);
    ok(feats && (offer >> BLK_F_FLUSH & 1) && virtio_negotiate(&d, want),
       "features 0x%lx: FLUSH, %s; accepted 0x%lx", offer, ro ? "RO" : "DISCARD and WRITE_ZEROES, not RO", want);
    uint64_t cap = 0;
    uint32_t blk_size = 0;
    virtio_config_read(&d, 0, &cap, 8);
    virtio_config_read(&d, 20, &blk_size, 4);
    ok(cap == SECTORS && blk_size == 512, "config: capacity %lu sectors, blk_size %u", cap, blk_size);
    bool qok = virtq_setup(&q, &d, 0, 16, ring, VIRTIO_NO_VECTOR, NULL);
    if (!ok(qok, "request queue 0 live with %u entries", q.size))
        done();
    virtio_driver_ok(&d);

    memset(rbuf, 0xaa, sizeof(rbuf));
    uint8_t st = request(T_IN, 0, rbuf, 512, true);
    ok(st == S_OK && memcmp(rbuf, "VMMDISK0", 8) == 0, "sector 0 read (status %u): the runner's marker \"%.8s\"",
       st, (char *)rbuf);

    fill_pattern(wbuf, sizeof(wbuf));
    st = request(T_OUT, 8, wbuf, 4096, false);
    if (ro) {
        ok(st == S_IOERR, "a write to the read-only disk completes with IOERR (%u)", st);
        memset(rbuf, 0xaa, sizeof(rbuf));
        uint8_t st2 = request(T_IN, 8, rbuf, 4096, true);
        ok(st2 == S_OK && all_zero(rbuf, 4096), "sectors 8-15 read back (%u) unchanged: still zero", st2);
        st = request(T_FLUSH, 0, NULL, 0, false);
        ok(st == S_OK, "flush on the read-only disk: status %u", st);
        virtio_reset(&d);
        done();
    }
    memset(rbuf, 0, sizeof(rbuf));
    uint8_t st2 = request(T_IN, 8, rbuf, 4096, true);
    ok(st == S_OK && st2 == S_OK && memcmp(rbuf, wbuf, 4096) == 0,
       "4 KiB written to sectors 8-15 (status %u) reads back the same through two buffers (%u)", st, st2);
    st = request(T_FLUSH, 0, NULL, 0, false);
    ok(st == S_OK, "flush: status %u", st);

    memset(idbuf, 0x55, sizeof(idbuf));
    st = request(T_GET_ID, 0, idbuf, sizeof(idbuf), true);
    ok(st == S_OK && memcmp(idbuf, SERIAL, sizeof(SERIAL)) == 0, "GET_ID (status %u): serial \"%.20s\"", st, idbuf);

    st = dwz(T_DISCARD, 64, 8);
    ok(st == S_OK, "discard of sectors 64-71: status %u", st);

    st = request(T_OUT, 32, wbuf, 4096, false);
    st2 = dwz(T_WRITE_ZEROES, 32, 8);
    memset(rbuf, 0xaa, sizeof(rbuf));
    uint8_t st3 = request(T_IN, 32, rbuf, 4096, true);
    ok(st == S_OK && st2 == S_OK && st3 == S_OK && all_zero(rbuf, 4096),
       "sectors 32-39 written (%u), WRITE_ZEROES (%u), read back as zeroes (%u)", st, st2, st3);

    memset(wbuf, 0, 512);
    memcpy(wbuf, "LAST", 4);
    st = request(T_OUT, SECTORS - 1, wbuf, 512, false);
    st2 = request(T_FLUSH, 0, NULL, 0, false);
    ok(st == S_OK && st2 == S_OK, "the last sector written (%u) and flushed (%u)", st, st2);

    st = request(T_IN, SECTORS, rbuf, 512, true);
    st2 = request(T_IN, SECTORS - 1, rbuf, 1024, true);
    ok(st == S_IOERR && st2 == S_IOERR, "reads past the end: IOERR (%u, %u)", st, st2);
    st = request(99, 0, NULL, 0, false);
    ok(st == S_UNSUPP, "an unknown request type: UNSUPP (%u)", st);
    virtio_reset(&d);
    done();
}
