/* pcihp: ACPI PCI hotplug of bus 0 as a guest sees it, with the host side
 * driven over QMP by tests/guest/hotplug.sh (vmm only: QEMU's microvm has no
 * ACPI PCI hotplug).
 *
 * The DSDT must describe the controller (PCST at 0xae0, PCNT, slot devices
 * with _EJ0). Then, cycles=N times: the host adds a virtio-blk disk whose
 * sector 0 starts with "VMMHP" and the cycle number in four digits (written
 * by the harness before each blockdev-add); the guest waits for the slot's
 * bit in PCIU (the GED selector shows GED_EVENT_PCI_HOTPLUG), finds 1af4:1042
 * in that slot's config space with BAR0 unassigned, places the BAR, drives
 * a read of sector 0 and checks the marker, resets the device, waits for
 * the slot's bit in PCID (the harness's device_del), writes it to B0EJ
 * (what _EJ0 does) and waits until the slot's config space reads all ones.
 * After each cycle it prints "# cycle N ejected", which the harness waits
 * for; after the last one, with final=1, it waits for one more disk (the
 * harness has measured vmm by then); then it checks PCIU and PCID are empty.
 *
 * reset=1 (with cycles=0): the first boot waits for that one disk and
 * resets the machine through the ACPI reset register; the second boot must
 * find the disk on bus 0 from the start (vmm recorded it in the machine's
 * configuration), in slot 7 where the harness put it, with its marker
 * ("VMMHP0001").
 *
 * devices=K: the disks and NICs a guest has from power-on can be unplugged
 * too, and NICs come and go like disks. The guest drives every virtio disk
 * and NIC on bus 0 (features negotiated, a queue set up, DRIVER_OK; a NIC's
 * MAC read from its config), says "# ready for unplug", then serves the
 * host until K devices have gone: a device that appears in PCIU is taken
 * into use the same way ("# slot S up (net MAC)" / "(blk)"); on a removal
 * request in PCID the guest releases the device (a virtio reset, as Linux's
 * driver does on remove), writes B0EJ and waits until the slot reads all
 * ones ("# slot S ejected (net MAC)" / "(blk)"). The harnesses
 * (tests/guest/hotplug.sh, tests/integration/libvirt.sh) wait for those
 * lines. Polled throughout, as AML would read the same registers from the
 * GED's _EVT. */
#include "virtio_pci.h"

#define PORT_PCIHP      0x0ae0
#define PCIU            0x00
#define PCID            0x04
#define B0EJ            0x08
#define PORT_GED        0x0604
#define GED_PCI         (1u << 1)
#define HOST_WAIT       (1ull << 37)    /* the harness is a host process: be patient */

#define T_IN            0

struct req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static uint8_t ring[8192] __attribute__((aligned(4096)));
static struct req_hdr hdr __attribute__((aligned(16)));
static volatile uint8_t status;
static uint8_t rbuf[512] __attribute__((aligned(512)));
static struct virtq q;
static uint32_t ged_seen;

/* Polls a controller register until one of `mask`'s bits is set; the bits
 * seen (PCIU clears on read, so they are accumulated). 0 on timeout. */
static uint32_t wait_bits(unsigned reg, uint32_t mask)
{
    uint32_t seen = 0;
    uint64_t t0 = rdtsc();
    while (!(seen & mask) && rdtsc() - t0 < HOST_WAIT) {
        ged_seen |= inl(PORT_GED);
        seen |= inl(PORT_PCIHP + reg);
        cpu_relax();
    }
    return seen;
}

static bool dsdt_has(const char *s, unsigned n)
{
    const struct acpi_header *d = acpi_find("DSDT", 0);
    if (!d)
        return false;
    const uint8_t *p = (const uint8_t *)d;
    for (uint32_t i = 0; i + n <= d->length; i++)
        if (memcmp(p + i, s, n) == 0)
            return true;
    return false;
}

static bool read_sector0(unsigned cycle, unsigned devfn, bool reset_after)
{
    struct virtio_dev d;
    if (!virtio_open(&d, VIRTIO_TYPE_BLOCK))
        return false;
    if (d.devfn != devfn) {
        diag("the disk found is at 00:%02x, the hotplugged slot is %02x", d.devfn >> 3, devfn >> 3);
        return false;
    }
    virtio_reset(&d);
    if (!virtio_negotiate(&d, 1ull << VIRTIO_F_VERSION_1) || !virtq_setup(&q, &d, 0, 16, ring, VIRTIO_NO_VECTOR, NULL))
        return false;
    virtio_driver_ok(&d);
    hdr = (struct req_hdr){ .type = T_IN, .sector = 0 };
    status = 0xee;
    memset(rbuf, 0, sizeof(rbuf));
    struct virtq_sg sg[3] = { { &hdr, sizeof(hdr) }, { rbuf, sizeof(rbuf) }, { (void *)&status, 1 } };
    uint16_t head;
    uint32_t len;
    if (virtq_add(&q, sg, 1, 2) < 0)
        return false;
    virtq_kick(&q);
    if (!virtq_wait_used(&q, &head, &len) || status != 0) {
        diag("sector 0: status %u", status);
        return false;
    }
    char want[10] = "VMMHP0000";
    want[5] = (char)('0' + cycle / 1000 % 10);
    want[6] = (char)('0' + cycle / 100 % 10);
    want[7] = (char)('0' + cycle / 10 % 10);
    want[8] = (char)('0' + cycle % 10);
    if (memcmp(rbuf, want, 9) != 0) {
        diag("sector 0 holds \"%.9s\", want \"%s\"", (char *)rbuf, want);
        return false;
    }
    if (reset_after)
        virtio_reset(&d);   /* the driver lets go before the eject, as Linux's does */
    return true;
}

/* reset=1: see the top. */
static void after_reset(void)
{
    plan(2);
    bool pci = pci_init();
    if (!ok(pci, "MCFG gives the ECAM window (0x%lx)", pci_ecam()))
        done();
    int devfn = pci_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE(VIRTIO_TYPE_BLOCK));
    if (devfn < 0) {
        /* First boot: wait for the disk, then reset. */
        printf("# ready for hotplug\n");
        if (!wait_bits(PCIU, 0xfffffffeu))
            diag("no disk came");
        printf("# resetting with the hot-added disk in place\n");
        reset_acpi();
        diag("the ACPI reset did not happen");
        done();
    }
    ok(devfn == 7 << 3 && read_sector0(1, (unsigned)devfn, false), "after the reset the hot-added disk is on bus 0 "
       "from the start, in the slot it was added to (00:%02x, want 07), and reads \"VMMHP0001\"", (unsigned)devfn >> 3);
    done();
}

/* devices=K: see the top. One driver state per slot. */
#define VIRTIO_NET_F_MAC 5
static struct virtio_dev devs[32];
static struct virtq vqs[32];
static uint8_t rings[32][8192] __attribute__((aligned(4096)));
static uint8_t dev_type[32];
static uint8_t dev_mac[32][6];

static void describe(unsigned slot, char *buf)
{
    if (dev_type[slot] == VIRTIO_TYPE_NET) {
        const uint8_t *m = dev_mac[slot];
        const char *hex = "0123456789abcdef";
        memcpy(buf, "net ", 4);
        for (unsigned i = 0; i < 6; i++) {
            buf[4 + 3 * i] = hex[m[i] >> 4];
            buf[5 + 3 * i] = hex[m[i] & 15];
            buf[6 + 3 * i] = i < 5 ? ':' : 0;
        }
    } else {
        memcpy(buf, "blk", 4);
    }
}

/* Drives the virtio disk or NIC in `slot`; false when there is none. */
static bool use_device(unsigned slot)
{
    unsigned devfn = slot << 3;
    uint32_t id = pci_read32(devfn, 0);
    uint16_t type = (uint16_t)((id >> 16) - 0x1040);
    if ((id & 0xffff) != VIRTIO_PCI_VENDOR || (type != VIRTIO_TYPE_NET && type != VIRTIO_TYPE_BLOCK))
        return false;
    struct virtio_dev *d = &devs[slot];
    uint64_t want = 1ull << VIRTIO_F_VERSION_1 | (type == VIRTIO_TYPE_NET ? 1ull << VIRTIO_NET_F_MAC : 0);
    if (!virtio_open_at(d, devfn) || !virtio_reset(d) || !virtio_negotiate(d, want) ||
        !virtq_setup(&vqs[slot], d, 0, 16, rings[slot], VIRTIO_NO_VECTOR, NULL)) {
        diag("slot %u: the virtio device (type %u) could not be set up", slot, type);
        return false;
    }
    virtio_driver_ok(d);
    dev_type[slot] = (uint8_t)type;
    if (type == VIRTIO_TYPE_NET)
        virtio_config_read(d, 0, dev_mac[slot], 6);
    return true;
}

static void devices_mode(unsigned want)
{
    plan(4);
    bool pci = pci_init();
    if (!ok(pci, "MCFG gives the ECAM window (0x%lx)", pci_ecam()))
        done();
    uint32_t present = 0;
    unsigned n = 0;
    char what[32];
    for (unsigned slot = 1; slot < 32; slot++)
        if (use_device(slot)) {
            present |= 1u << slot;
            n++;
            describe(slot, what);
            printf("# slot %u: %s in use\n", slot, what);
        }
    ok(n > 0, "%u virtio disks and NICs from power-on driven (DRIVER_OK, a queue each)", n);
    printf("# ready for unplug\n");
    unsigned gone = 0;
    while (gone < want) {
        uint32_t up = 0, down = 0;
        uint64_t t0 = rdtsc();
        while (!up && !(down & present) && rdtsc() - t0 < HOST_WAIT) {
            up |= inl(PORT_PCIHP + PCIU);
            down = inl(PORT_PCIHP + PCID);
            cpu_relax();
        }
        if (!up && !(down & present)) {
            diag("no hotplug event came (%u of %u devices gone)", gone, want);
            break;
        }
        for (unsigned slot = 1; slot < 32; slot++) {
            if (!(up & (1u << slot)) || (present & (1u << slot)))
                continue;
            if (use_device(slot)) {
                present |= 1u << slot;
                describe(slot, what);
                printf("# slot %u up (%s)\n", slot, what);
            }
        }
        for (unsigned slot = 1; slot < 32; slot++) {
            uint32_t bit = 1u << slot;
            if (!(down & present & bit))
                continue;
            describe(slot, what);
            virtio_reset(&devs[slot]);      /* the driver lets go first */
            outl(PORT_PCIHP + B0EJ, bit);
            t0 = rdtsc();
            while (pci_read32(slot << 3, 0) != 0xffffffffu && rdtsc() - t0 < HOST_WAIT)
                cpu_relax();
            if (pci_read32(slot << 3, 0) != 0xffffffffu) {
                diag("slot %u (%s) still answers after the eject", slot, what);
                present &= ~bit;    /* not counted as gone: the test fails */
                continue;
            }
            present &= ~bit;
            dev_type[slot] = 0;
            gone++;
            printf("# slot %u ejected (%s)\n", slot, what);
        }
    }
    ok(gone == want, "%u of %u devices released and ejected on the host's request, each slot empty after", gone,
       want);
    uint32_t up = inl(PORT_PCIHP + PCIU), down = inl(PORT_PCIHP + PCID);
    ok(up == 0 && down == 0, "the controller is idle at the end (PCIU %08x PCID %08x)", up, down);
    done();
}

static bool cycle(unsigned n)
{
    ged_seen = 0;
    uint32_t up = wait_bits(PCIU, 0xfffffffeu);
    if (!up) {
        diag("cycle %u: no slot came up in PCIU", n);
        return false;
    }
    /* vmm latches PCIU, then the GED event: the poll may see the first alone. */
    uint64_t t0 = rdtsc();
    while (!(ged_seen & GED_PCI) && rdtsc() - t0 < HOST_WAIT)
        ged_seen |= inl(PORT_GED);
    unsigned slot = (unsigned)__builtin_ctz(up), devfn = slot << 3;
    uint32_t id = pci_read32(devfn, 0), bar0 = pci_read32(devfn, 0x10);
    if (id != ((uint32_t)VIRTIO_PCI_DEVICE(VIRTIO_TYPE_BLOCK) << 16 | VIRTIO_PCI_VENDOR) || (bar0 & ~0xfu)) {
        diag("cycle %u: slot %u has id %08x BAR0 %08x", n, slot, id, bar0);
        return false;
    }
    if (!(ged_seen & GED_PCI)) {
        diag("cycle %u: the GED selector never showed the PCI hotplug event", n);
        return false;
    }
    if (!read_sector0(n, devfn, true))
        return false;
    uint32_t down = wait_bits(PCID, 1u << slot);
    if (!(down & (1u << slot))) {
        diag("cycle %u: no removal request for slot %u (PCID %08x)", n, slot, down);
        return false;
    }
    outl(PORT_PCIHP + B0EJ, 1u << slot);
    t0 = rdtsc();
    while (pci_read32(devfn, 0) != 0xffffffffu && rdtsc() - t0 < HOST_WAIT)
        cpu_relax();
    if (pci_read32(devfn, 0) != 0xffffffffu) {
        diag("cycle %u: slot %u still answers after the eject", n, slot);
        return false;
    }
    if (inl(PORT_PCIHP + PCID) & (1u << slot)) {
        diag("cycle %u: PCID still has slot %u", n, slot);
        return false;
    }
    return true;
}

int main(void)
{
    unsigned cycles = (unsigned)cmdline_get_u64("cycles", 1);
    if (cmdline_get_u64("reset", 0))
        after_reset();
    if (cmdline_get_u64("devices", 0))
        devices_mode((unsigned)cmdline_get_u64("devices", 0));
    plan(4);
    bool pci = pci_init();
    if (!ok(pci, "MCFG gives the ECAM window (0x%lx)", pci_ecam()))
        done();
    ok(dsdt_has("PCST", 4) && dsdt_has("PCNT", 4) && dsdt_has("_EJ0", 4) && dsdt_has("B0EJ", 4),
       "the DSDT has the hotplug controller (PCST, PCNT, B0EJ) and slots with _EJ0");
    printf("# ready for hotplug\n");
    unsigned good = 0;
    for (unsigned n = 1; n <= cycles; n++) {
        if (!cycle(n))
            break;
        good++;
        /* The harness adds the next disk only after this line: else the
         * slot could be filled again before this poll saw it empty. */
        printf("# cycle %u ejected\n", n);
    }
    /* final=1: one more disk says the harness has measured vmm (which must
     * still run then): this guest may end. */
    if (cmdline_get_u64("final", 0) && good == cycles && !wait_bits(PCIU, 0xfffffffeu))
        diag("no final disk came");
    ok(good == cycles, "%u of %u cycles: add seen in PCIU and the GED, 1af4:1042 with BAR0 unassigned, sector 0 "
       "read, removal request in PCID, ejected, slot empty", good, cycles);
    uint32_t up = inl(PORT_PCIHP + PCIU), down = inl(PORT_PCIHP + PCID);
    ok(up == 0 && down == 0, "the controller is idle at the end (PCIU %08x PCID %08x)", up, down);
    done();
}
