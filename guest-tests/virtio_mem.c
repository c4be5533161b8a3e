/* virtio_mem: a virtio-mem PCI device (VIRTIO 1.2, 5.15) through the
 * runtime's virtio-pci driver: its config (block size, a block-aligned
 * region above 4 GiB of region_mib MiB, requested_size req_mib, nothing
 * plugged), PLUG up to requested_size (one more block is NACKed), requests
 * the device must answer ERROR (misaligned, no blocks, past the usable
 * region, a block already plugged or not plugged), STATE of plugged,
 * unplugged and mixed ranges, a pattern written to and read back from the
 * plugged memory (mapped here: the runtime maps 0..4 GiB only). Then it says
 * "# vmem: ready for resize" and waits for the config interrupt of the
 * host raising requested_size to next_mib (over QMP, by the harness), plugs
 * up to it, checks the pattern, unplugs a block, UNPLUG_ALL, and a device
 * reset keeps the blocks. With reset_check=1 it then resets the machine
 * (ACPI): the second boot, which knows itself by requested_size already being
 * next_mib, must find nothing plugged and the host's last requested_size,
 * and plugs it again. vmm: --memory ...,hotplug_size=; QEMU: -device
 * virtio-mem-pci on q35. */
#include "virtio_pci.h"

#define VIRTIO_TYPE_MEM     24
#define F_UNPLUGGED_INACC   1
#define VEC_CFG             0x61

#define REQ_PLUG        0
#define REQ_UNPLUG      1
#define REQ_UNPLUG_ALL  2
#define REQ_STATE       3
#define ACK     0
#define NACK    1
#define ERROR   3
#define ST_PLUGGED      0
#define ST_UNPLUGGED    1
#define ST_MIXED        2

#define MIB (1ull << 20)
#define GIB (1ull << 30)

static uint8_t ring[8192] __attribute__((aligned(4096)));
static uint64_t pd_hi[2][512] __attribute__((aligned(4096)));
static struct {
    uint16_t type, pad[3];
    uint64_t addr;
    uint16_t nb_blocks, pad2[3];
} req __attribute__((aligned(64)));
static struct {
    uint16_t type, pad[3];
    uint16_t state;
} resp __attribute__((aligned(64)));
static volatile unsigned hits_cfg;
static struct virtio_dev d;
static struct virtq q;

static void on_cfg(struct irq_frame *f)
{
    hits_cfg++;
    apic_eoi();
}

static uint64_t cfg64(unsigned off)
{
    uint64_t v = 0;
    virtio_config_read(&d, off, &v, 8);
    return v;
}
#define CFG_BLOCK_SIZE  cfg64(0)
#define CFG_ADDR        cfg64(16)
#define CFG_REGION      cfg64(24)
#define CFG_USABLE      cfg64(32)
#define CFG_PLUGGED     cfg64(40)
#define CFG_REQUESTED   cfg64(48)

/* One request; the response type (0xffff when none came), *state for STATE. */
static uint16_t request(uint16_t type, uint64_t addr, uint16_t nb, uint16_t *state)
{
    memset(&req, 0, sizeof(req));
    req.type = type;
    req.addr = addr;
    req.nb_blocks = nb;
    memset(&resp, 0xff, sizeof(resp));
    struct virtq_sg sg[2] = { { &req, 24 }, { &resp, 10 } };
    if (virtq_add(&q, sg, 1, 1) < 0)
        return 0xffff;
    virtq_kick(&q);
    uint16_t head;
    uint32_t len;
    if (!virtq_wait_used(&q, &head, &len) || len < 2)
        return 0xffff;
    if (state)
        *state = resp.state;
    return resp.type;
}

/* Identity-maps [base, base + size) with 2 MiB pages (at most 2 GiB-aligned
 * GiBs, below 512 GiB). */
static bool map_region(uint64_t base, uint64_t size)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint64_t *pml4 = (uint64_t *)(uintptr_t)(cr3 & ~0xfffull);
    uint64_t *pdpt = (uint64_t *)(uintptr_t)(pml4[0] & ~0xfffull);
    uint64_t first = base / GIB, last = (base + size - 1) / GIB;
    if (last - first >= 2 || last >= 512)
        return false;
    for (uint64_t g = first; g <= last; g++) {
        uint64_t *pd = pd_hi[g - first];
        for (unsigned i = 0; i < 512; i++)
            pd[i] = (g * GIB + i * 2 * MIB) | 0x83;
        pdpt[g] = (uint64_t)(uintptr_t)pd | 3;
    }
    __asm__ volatile("mov %0, %%cr3" :: "r"(cr3) : "memory");
    return true;
}

/* A word every 64 KiB of [from, to): its address mixed with a seed. */
static void pattern_write(uint64_t from, uint64_t to, uint64_t seed)
{
    for (uint64_t a = from; a < to; a += 64 * 1024)
        *(volatile uint64_t *)(uintptr_t)a = a ^ seed;
}

static uint64_t pattern_bad(uint64_t from, uint64_t to, uint64_t seed)
{
    uint64_t bad = 0;
    for (uint64_t a = from; a < to; a += 64 * 1024)
        bad += *(volatile uint64_t *)(uintptr_t)a != (a ^ seed);
    return bad;
}

/* After the reset of a reset_check run (requested_size already next_mib):
 * true when this is that second boot, which ran its own 3 tests. */
static bool second_boot(uint64_t next_mib)
{
    if (!pci_init() || !virtio_open(&d, VIRTIO_TYPE_MEM) || CFG_REQUESTED != next_mib * MIB)
        return false;
    plan(3);
    uint64_t bs = CFG_BLOCK_SIZE, base = CFG_ADDR, requested = CFG_REQUESTED, usable = CFG_USABLE;
    bool up = virtio_reset(&d) && virtio_negotiate(&d, 1ull << VIRTIO_F_VERSION_1 | 1ull << F_UNPLUGGED_INACC) &&
              virtq_setup(&q, &d, 0, 8, ring, VIRTIO_NO_VECTOR, NULL);
    virtio_driver_ok(&d);
    uint16_t st = 9, r = up ? request(REQ_STATE, base, (uint16_t)(usable / bs), &st) : 0xffff;
    ok(up && CFG_PLUGGED == 0 && r == ACK && st == ST_UNPLUGGED && usable >= requested,
       "after the guest reset: requested_size still the host's %lu MiB, nothing plugged (%lu), the usable %lu MiB "
       "all unplugged (%u)", requested >> 20, CFG_PLUGGED, usable >> 20, st);
    uint16_t p = request(REQ_PLUG, base, (uint16_t)(requested / bs), NULL);
    ok(p == ACK && CFG_PLUGGED == requested, "plugged again: %u, %lu MiB", p, CFG_PLUGGED >> 20);
    bool mapped = map_region(base, CFG_REGION);
    uint64_t bad = ~0ull;
    if (mapped) {
        pattern_write(base, base + requested, 0x11110000);
        bad = pattern_bad(base, base + requested, 0x11110000);
    }
    ok(mapped && bad == 0, "a pattern in the new blocks (%lu words differ)", bad);
    virtio_reset(&d);
    return true;
}

int main(void)
{
    printf("\n");   /* QEMU runs this on q35, whose SeaBIOS leaves no newline before the plan */
    uint64_t region_mib = cmdline_get_u64("region_mib", 0), req_mib = cmdline_get_u64("req_mib", 0),
             next_mib = cmdline_get_u64("next_mib", 0);
    bool reset_check = cmdline_has("reset_check");
    if (reset_check && second_boot(next_mib))
        done();
    /* The runner takes the first plan and counts every "ok" of both boots. */
    plan(reset_check ? 17 + 3 : 17);
    bool have_ecam = pci_init();
    if (!ok(have_ecam, "MCFG (or _CBA) gives the ECAM window (0x%lx)", pci_ecam()))
        done();
    bool found = virtio_open(&d, VIRTIO_TYPE_MEM);
    if (!ok(found, "virtio-mem found at 00:%02x.%u", d.devfn >> 3, d.devfn & 7))
        done();
    ok(virtio_reset(&d), "reset: the status reads 0");
    uint64_t offer = virtio_device_features(&d);
    uint64_t want = 1ull << VIRTIO_F_VERSION_1 | 1ull << F_UNPLUGGED_INACC;
    ok((offer & want) == want && virtio_negotiate(&d, want),
       "VERSION_1 and UNPLUGGED_INACCESSIBLE offered (features 0x%lx) and accepted", offer);

    uint64_t bs = CFG_BLOCK_SIZE, base = CFG_ADDR, region = CFG_REGION, usable = CFG_USABLE;
    ok(bs >= 4096 && !(bs & (bs - 1)) && base >= 4 * GIB && base % bs == 0 && region == region_mib * MIB &&
       CFG_REQUESTED == req_mib * MIB && CFG_PLUGGED == 0 && usable >= req_mib * MIB && usable <= region &&
       usable % bs == 0,
       "config: block %lu KiB, region 0x%lx + %lu MiB, usable %lu MiB, requested %lu MiB, plugged %lu", bs >> 10,
       base, region >> 20, usable >> 20, CFG_REQUESTED >> 20, CFG_PLUGGED);

    /* Config changes by MSI-X where the function has it (vmm), else by
     * polling the ISR's config bit (QEMU 7.2's virtio-mem-pci has no MSI-X). */
    uint16_t cvec = VIRTIO_NO_VECTOR;
    if (d.msix_cap) {
        apic_enable();
        irq_set_handler(VEC_CFG, on_cfg);
        virtio_msix_route(&d, 0, VEC_CFG);
        virtio_msix_enable(&d, true);
        cvec = virtio_set_config_vector(&d, 0);
    }
    bool qok = virtq_setup(&q, &d, 0, 8, ring, VIRTIO_NO_VECTOR, NULL);
    virtio_driver_ok(&d);
    (void)virtio_isr(&d);
    if (!ok(qok && (!d.msix_cap || cvec == 0) && virtio_num_queues(&d) == 1,
            "one queue (%u), polled; config changes by %s (vector %u)", virtio_num_queues(&d),
            d.msix_cap ? "MSI-X" : "the ISR", cvec))
        done();

    uint16_t nb = (uint16_t)(req_mib * MIB / bs);
    uint16_t r1 = request(REQ_PLUG, base, nb, NULL);
    uint64_t plugged = CFG_PLUGGED;
    uint16_t r2 = request(REQ_PLUG, base + nb * bs, 1, NULL);
    ok(r1 == ACK && plugged == req_mib * MIB && r2 == NACK && CFG_PLUGGED == plugged,
       "PLUG of %u blocks: %u (ACK), plugged %lu MiB; one more: %u (NACK)", nb, r1, plugged >> 20, r2);

    uint16_t e1 = request(REQ_PLUG, base + 4096, 1, NULL), e2 = request(REQ_STATE, base, 0, NULL),
             e3 = request(REQ_STATE, base + usable, 1, NULL), e4 = request(REQ_UNPLUG, base + usable - bs, 1, NULL),
             e5 = request(REQ_STATE, base - bs, 1, NULL);
    ok(e1 == ERROR && e2 == ERROR && e3 == ERROR && e4 == ERROR && e5 == ERROR,
       "ERROR for a misaligned PLUG (%u), no blocks (%u), past the usable region (%u), UNPLUG of an unplugged "
       "block (%u), below the region (%u)", e1, e2, e3, e4, e5);

    uint16_t s1 = 9, s2 = 9, s3 = 9;
    uint16_t a1 = request(REQ_STATE, base, nb, &s1), a2 = request(REQ_STATE, base + nb * bs, 2, &s2),
             a3 = request(REQ_STATE, base + (nb - 1) * bs, 2, &s3);
    ok(a1 == ACK && a2 == ACK && a3 == ACK && s1 == ST_PLUGGED && s2 == ST_UNPLUGGED && s3 == ST_MIXED,
       "STATE: plugged %u, unplugged %u, mixed %u", s1, s2, s3);

    bool mapped = map_region(base, region);
    uint64_t bad = ~0ull;
    if (mapped) {
        pattern_write(base, base + plugged, 0x5a5a0000);
        bad = pattern_bad(base, base + plugged, 0x5a5a0000);
    }
    ok(mapped && bad == 0, "the plugged %lu MiB hold a pattern (%lu words differ)", plugged >> 20, bad);

    /* The host raises requested_size now (the harness waits for this line). */
    printf("# vmem: ready for resize\n");
    uint64_t t0 = rdtsc();
    if (d.msix_cap) {
        irq_enable();
        while (!hits_cfg && rdtsc() - t0 < (1ull << 36))
            cpu_relax();
        irq_disable();
    } else {
        while (!hits_cfg && rdtsc() - t0 < (1ull << 36))
            hits_cfg += (virtio_isr(&d) & 2) != 0;
    }
    uint64_t requested = CFG_REQUESTED;
    usable = CFG_USABLE;
    ok(hits_cfg >= 1 && requested == next_mib * MIB && usable >= requested,
       "config change seen (%u): requested_size now %lu MiB, usable %lu MiB", hits_cfg, requested >> 20,
       usable >> 20);

    uint16_t more = (uint16_t)((requested - plugged) / bs);
    uint16_t r3 = more ? request(REQ_PLUG, base + plugged, more, NULL) : ACK;
    uint64_t now = CFG_PLUGGED;
    bad = ~0ull;
    if (mapped && r3 == ACK) {
        pattern_write(base + plugged, base + now, 0x3c3c0000);
        bad = pattern_bad(base, base + plugged, 0x5a5a0000) + pattern_bad(base + plugged, base + now, 0x3c3c0000);
    }
    ok(r3 == ACK && now == requested && bad == 0,
       "PLUG of %u more blocks: %u, plugged %lu MiB; patterns intact (%lu words differ)", more, r3, now >> 20, bad);

    uint16_t u1 = request(REQ_UNPLUG, base, 1, NULL);
    uint64_t after = CFG_PLUGGED;
    uint16_t st = 9, u2 = request(REQ_STATE, base, 1, &st), u3 = request(REQ_UNPLUG, base, 1, NULL);
    ok(u1 == ACK && after == now - bs && u2 == ACK && st == ST_UNPLUGGED && u3 == ERROR,
       "UNPLUG of block 0: %u, plugged %lu MiB, its STATE %u; unplugged again: %u (ERROR)", u1, after >> 20, st, u3);

    uint16_t p1 = request(REQ_PLUG, base + bs, 1, NULL), p2 = request(REQ_PLUG, base, 1, NULL);
    ok(p1 == ERROR && p2 == ACK && CFG_PLUGGED == now, "PLUG of a plugged block: %u (ERROR); of block 0 again: %u",
       p1, p2);

    uint16_t ua = request(REQ_UNPLUG_ALL, 0, 0, NULL);
    uint16_t sa = 9, ra = request(REQ_STATE, base, (uint16_t)(now / bs), &sa);
    ok(ua == ACK && CFG_PLUGGED == 0 && ra == ACK && sa == ST_UNPLUGGED,
       "UNPLUG_ALL: %u, plugged %lu, STATE of what was plugged %u", ua, CFG_PLUGGED, sa);

    /* Plug one block, then reset the device: a device reset changes no block (5.15.5). */
    uint16_t pb = request(REQ_PLUG, base + bs, 1, NULL);
    bool reset = virtio_reset(&d);
    ok(pb == ACK && reset && CFG_PLUGGED == bs, "after a device reset the plugged block is still plugged (%lu KiB)",
       CFG_PLUGGED >> 10);
    bool again = virtio_negotiate(&d, want) && virtq_setup(&q, &d, 0, 8, ring, VIRTIO_NO_VECTOR, NULL);
    virtio_driver_ok(&d);
    uint16_t fin = again ? request(REQ_UNPLUG_ALL, 0, 0, NULL) : 0xffff;
    ok(again && fin == ACK && CFG_PLUGGED == 0, "re-initialised, UNPLUG_ALL: %u, plugged %lu", fin, CFG_PLUGGED);
    if (reset_check) {
        /* Leave blocks plugged for the reset to drop. */
        request(REQ_PLUG, base, (uint16_t)(requested / bs), NULL);
        printf("# vmem: resetting with %lu MiB plugged\n", CFG_PLUGGED >> 20);
        reset_acpi();
        ok(false, "the machine did not reset");
    }
    virtio_reset(&d);
    done();
}
