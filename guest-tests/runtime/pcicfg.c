#include "rt.h"

#define PCI_COMMAND     0x04
#define PCI_STATUS      0x06
#define PCI_BAR0        0x10
#define PCI_CAP_PTR     0x34
#define CMD_MEM         0x2
#define CMD_MASTER      0x4
#define STATUS_CAPS     0x10
#define GIB4            0x100000000ull

static uint64_t ecam;
static uint64_t win_base, win_next;     /* top-down placement of unassigned BARs */

/* The host bridge's _CBA in the DSDT: Name (_CBA, n) or Method (_CBA) {
 * Return (n) }, n a DWord or QWord constant. QEMU's microvm has no MCFG. */
static uint64_t dsdt_cba(void)
{
    const struct acpi_header *d = acpi_find("DSDT", 0);
    if (!d)
        return 0;
    const uint8_t *p = (const uint8_t *)d + sizeof(*d), *end = (const uint8_t *)d + d->length;
    for (; p + 16 <= end; p++) {
        if (memcmp(p, "_CBA", 4) != 0)
            continue;
        const uint8_t *q = p + 4;
        if (q[0] == 0x00 && q[1] == 0xa4)           /* method flags, ReturnOp */
            q += 2;
        uint64_t v = 0;
        if (q[0] == 0x0c)
            memcpy(&v, q + 1, 4);
        else if (q[0] == 0x0e)
            memcpy(&v, q + 1, 8);
        if (v)
            return v;
    }
    return 0;
}

bool pci_init(void)
{
    const struct acpi_header *mcfg = acpi_find("MCFG", 0);
    if (mcfg && mcfg->length >= 60)
        memcpy(&ecam, (const uint8_t *)mcfg + 44, 8);
    else
        ecam = dsdt_cba();
    return ecam != 0;
}

uint64_t pci_ecam(void)
{
    return ecam;
}

static uint64_t cfg_addr(unsigned devfn, unsigned off)
{
    return ecam + ((uint64_t)devfn << 12) + off;
}

uint32_t pci_read32(unsigned devfn, unsigned off) { return mmio_read32(cfg_addr(devfn, off)); }
uint16_t pci_read16(unsigned devfn, unsigned off) { return *(volatile uint16_t *)(uintptr_t)cfg_addr(devfn, off); }
uint8_t pci_read8(unsigned devfn, unsigned off) { return mmio_read8(cfg_addr(devfn, off)); }
void pci_write32(unsigned devfn, unsigned off, uint32_t v) { mmio_write32(cfg_addr(devfn, off), v); }
void pci_write16(unsigned devfn, unsigned off, uint16_t v) { *(volatile uint16_t *)(uintptr_t)cfg_addr(devfn, off) = v; }
void pci_write8(unsigned devfn, unsigned off, uint8_t v) { mmio_write8(cfg_addr(devfn, off), v); }

int pci_find(uint16_t vendor, uint16_t device)
{
    uint32_t want = (uint32_t)device << 16 | vendor;
    for (unsigned devfn = 0; devfn < 256; devfn++)
        if (pci_read32(devfn, 0) == want)
            return (int)devfn;
    return -1;
}

unsigned pci_find_cap(unsigned devfn, uint8_t id, unsigned after)
{
    if (!(pci_read16(devfn, PCI_STATUS) & STATUS_CAPS))
        return 0;
    unsigned cap = after ? pci_read8(devfn, after + 1) & 0xfc : pci_read8(devfn, PCI_CAP_PTR) & 0xfc;
    for (unsigned n = 0; cap >= 0x40 && n < 48; n++) {
        if (pci_read8(devfn, cap) == id)
            return cap;
        cap = pci_read8(devfn, cap + 1) & 0xfc;
    }
    return 0;
}

/* AML DWordMemory descriptor (ACPI 6.5, 6.4.3.5.2): 0x87, length 0x17, then
 * resource type 0 (memory), flags, granularity, min, max, translation, length. */
bool acpi_pci_window32(uint64_t *base, uint64_t *size)
{
    const struct acpi_header *d = acpi_find("DSDT", 0);
    if (!d)
        return false;
    const uint8_t *p = (const uint8_t *)d + sizeof(*d), *end = (const uint8_t *)d + d->length;
    for (; p + 26 <= end; p++) {
        if (p[0] != 0x87 || p[1] != 0x17 || p[2] != 0 || p[3] != 0)
            continue;
        uint32_t min, len;
        memcpy(&min, p + 10, 4);
        memcpy(&len, p + 22, 4);
        if (len >= 0x100000 && (uint64_t)min + len <= GIB4) {
            *base = min;
            *size = len;
            return true;
        }
    }
    return false;
}

static uint64_t place(uint64_t size)
{
    if (!win_next) {
        uint64_t wsize;
        if (!acpi_pci_window32(&win_base, &wsize))
            return 0;
        win_next = win_base + wsize;
    }
    uint64_t a = (win_next - size) & ~(size - 1);
    if (a < win_base || a > win_next)
        return 0;
    win_next = a;
    return a;
}

/* Sizes memory BAR `bar` (decode off) and gives it an address if it has
 * none we can use. Returns how many BAR slots it takes (1 or 2). */
static unsigned setup_bar(unsigned devfn, unsigned bar)
{
    unsigned reg = PCI_BAR0 + 4 * bar;
    uint32_t lo = pci_read32(devfn, reg);
    if (lo & 1)
        return 1;                                   /* I/O: not used here */
    bool is64 = (lo & 6) == 4;
    uint32_t hi = is64 ? pci_read32(devfn, reg + 4) : 0;
    pci_write32(devfn, reg, 0xffffffffu);
    uint32_t mask = pci_read32(devfn, reg) & ~0xfu;
    pci_write32(devfn, reg, lo);
    if (!mask)
        return is64 ? 2 : 1;                        /* not implemented */
    uint64_t size = (uint64_t)(~mask) + 1;
    uint64_t addr = ((uint64_t)hi << 32 | lo) & ~0xfull;
    if (addr == 0 || addr + size > GIB4) {
        addr = place(size);
        pci_write32(devfn, reg, (uint32_t)addr | (lo & 0xf));
        if (is64)
            pci_write32(devfn, reg + 4, 0);
    }
    return is64 ? 2 : 1;
}

uint64_t pci_bar(unsigned devfn, unsigned bar)
{
    uint16_t cmd = pci_read16(devfn, PCI_COMMAND);
    if (!(cmd & CMD_MEM)) {
        for (unsigned b = 0; b < 6;)
            b += setup_bar(devfn, b);
        pci_write16(devfn, PCI_COMMAND, cmd | CMD_MEM | CMD_MASTER);
    }
    if (bar > 5)
        return 0;
    uint32_t lo = pci_read32(devfn, PCI_BAR0 + 4 * bar);
    if (lo & 1)
        return 0;
    uint64_t addr = lo & ~0xfull;
    if ((lo & 6) == 4 && bar < 5)
        addr |= (uint64_t)pci_read32(devfn, PCI_BAR0 + 4 * bar + 4) << 32;
    return addr;
}
