#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/pci/pci.h"
#include "devices/pci/pci_host.h"
#include "vmm/bus.h"
#include "vmm/state.h"

#define ECAM     0xe0000000ull
#define MMIO32   0xc0000000ull
#define MMIO64   0x400000000ull
#define IO_BASE  0x1000u
#define SLOT     3
#define DEVFN    (SLOT << 3)

struct fixture {
    struct bus pio, mmio;
    struct pci_host *host;
    struct pci_device dev;
    uint64_t map_addr[PCI_NUM_BARS];
    unsigned map_calls;
    unsigned last_bar;
    uint64_t last_off;
    uint32_t last_write;
};

static void dev_bar_read(struct pci_device *d, unsigned bar, uint64_t off, void *data, unsigned size)
{
    struct fixture *f = d->opaque;
    f->last_bar = bar;
    f->last_off = off;
    uint64_t v = 0xab00 + bar;
    memcpy(data, &v, size);
}

static void dev_bar_write(struct pci_device *d, unsigned bar, uint64_t off, const void *data, unsigned size)
{
    struct fixture *f = d->opaque;
    f->last_bar = bar;
    f->last_off = off;
    f->last_write = 0;
    memcpy(&f->last_write, data, size < 4 ? size : 4);
}

static void dev_bar_map(struct pci_device *d, unsigned bar, uint64_t addr)
{
    struct fixture *f = d->opaque;
    f->map_addr[bar] = addr;
    f->map_calls++;
}

static const struct pci_device_ops dev_ops = {
    .bar_read = dev_bar_read, .bar_write = dev_bar_write, .bar_map = dev_bar_map,
};

static struct pci_host *make_host(struct bus *pio, struct bus *mmio)
{
    struct pci_host_config c = {
        .ecam = { ECAM, 1ull << 28 },
        .mmio32 = { MMIO32, 0x20000000 },
        .mmio64 = { MMIO64, 1ull << 32 },
        .io = { IO_BASE, 0xf000 },
    };
    return pci_host_create(pio, mmio, &c);
}

/* BAR0 4 KiB mem32, BAR1 32 bytes I/O, BAR2+3 16 KiB 64-bit prefetchable. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    bus_init(&f->pio, "pio");
    bus_init(&f->mmio, "mmio");
    f->host = make_host(&f->pio, &f->mmio);
    assert_non_null(f->host);
    pci_device_init(&f->dev, "testdev", &dev_ops, f, 0x1af4, 0x1041, 0x020000, 1);
    pci_device_set_subsystem(&f->dev, 0x1af4, 0x0001);
    assert_int_equal(pci_device_add_bar(&f->dev, 0, PCI_BAR_MEM32, false, 0x1000), 0);
    assert_int_equal(pci_device_add_bar(&f->dev, 1, PCI_BAR_IO, false, 32), 0);
    assert_int_equal(pci_device_add_bar(&f->dev, 2, PCI_BAR_MEM64, true, 0x4000), 0);
    assert_int_equal(pci_host_add_device(f->host, &f->dev, SLOT), DEVFN);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct device d = pci_host_device(f->host);
    d.ops->destroy(d.dev);
    bus_destroy(&f->pio);
    bus_destroy(&f->mmio);
    free(f);
    return 0;
}

static uint32_t ecam_rd(struct fixture *f, unsigned bus, unsigned devfn, unsigned off, unsigned size)
{
    uint32_t v = 0;
    assert_true(bus_read(&f->mmio, ECAM + ((uint64_t)bus << 20) + ((uint64_t)devfn << 12) + off, &v, size));
    return v;
}

static void ecam_wr(struct fixture *f, unsigned devfn, unsigned off, uint32_t v, unsigned size)
{
    assert_true(bus_write(&f->mmio, ECAM + ((uint64_t)devfn << 12) + off, &v, size));
}

static void cf8_select(struct fixture *f, unsigned bus, unsigned devfn, unsigned off)
{
    uint32_t a = 0x80000000u | bus << 16 | devfn << 8 | (off & 0xfc);
    assert_true(bus_write(&f->pio, 0xcf8, &a, 4));
}

static uint32_t cf8_rd(struct fixture *f, unsigned bus, unsigned devfn, unsigned off, unsigned size)
{
    cf8_select(f, bus, devfn, off);
    uint32_t v = 0;
    assert_true(bus_read(&f->pio, 0xcfc + (off & 3), &v, size));
    return v;
}

static void cf8_wr(struct fixture *f, unsigned devfn, unsigned off, uint32_t v, unsigned size)
{
    cf8_select(f, 0, devfn, off);
    assert_true(bus_write(&f->pio, 0xcfc + (off & 3), &v, size));
}

static uint32_t mask(unsigned size)
{
    return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

static void test_host_bridge_identity(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ecam_rd(f, 0, 0, 0, 2), PCI_HOST_VENDOR_ID);
    assert_int_equal(ecam_rd(f, 0, 0, 2, 2), PCI_HOST_DEVICE_ID);
    assert_int_equal(ecam_rd(f, 0, 0, 8, 4) >> 8, 0x060000);
    assert_int_equal(ecam_rd(f, 0, 0, PCI_CFG_HEADER_TYPE, 1), 0);
    assert_int_equal(cf8_rd(f, 0, 0, 0, 4), PCI_HOST_DEVICE_ID << 16 | PCI_HOST_VENDOR_ID);
    assert_int_equal(cf8_rd(f, 0, DEVFN, 0, 4), 0x10411af4);
    assert_int_equal(cf8_rd(f, 0, DEVFN, PCI_CFG_SUBSYS_ID, 2), 0x0001);
}

static void test_absent_functions_read_ones(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ecam_rd(f, 0, 1, 0, 4), 0xffffffffu);          /* 00.1 */
    assert_int_equal(ecam_rd(f, 0, 5 << 3, 0, 4), 0xffffffffu);     /* empty slot */
    assert_int_equal(ecam_rd(f, 0, DEVFN | 1, 0, 2), 0xffff);       /* function 1 of a present slot */
    assert_int_equal(ecam_rd(f, 1, 0, 0, 4), 0xffffffffu);          /* bus 1 */
    assert_int_equal(ecam_rd(f, 255, 255, 0xffc, 4), 0xffffffffu);  /* last dword of the window */
    assert_int_equal(cf8_rd(f, 0, 5 << 3, 0, 4), 0xffffffffu);
    assert_int_equal(cf8_rd(f, 2, 0, 0, 2), 0xffff);
    /* CONFIG_ADDRESS without the enable bit: no config cycle. */
    uint32_t a = 0;
    assert_true(bus_write(&f->pio, 0xcf8, &a, 4));
    uint32_t v = 0;
    assert_true(bus_read(&f->pio, 0xcfc, &v, 4));
    assert_int_equal(v, 0xffffffffu);
    /* Writes to nothing are dropped. */
    ecam_wr(f, 5 << 3, PCI_CFG_COMMAND, 0xffff, 2);
    assert_int_equal(ecam_rd(f, 0, 5 << 3, PCI_CFG_COMMAND, 2), 0xffff);
}

/* Every byte, word and dword of the legacy 256 bytes is the same through
 * CF8/CFC (including byte/word accesses at 0xCFD-0xCFF) as through ECAM. */
static void test_cf8_and_ecam_agree(void **state)
{
    struct fixture *f = *state;
    static const unsigned devfns[] = { 0, DEVFN };
    for (unsigned d = 0; d < 2; d++)
        for (unsigned size = 1; size <= 4; size *= 2)
            for (unsigned off = 0; off < 256; off += size)
                assert_int_equal(cf8_rd(f, 0, devfns[d], off, size) & mask(size),
                                 ecam_rd(f, 0, devfns[d], off, size) & mask(size));
    /* A write through CFE lands where ECAM sees it. */
    cf8_wr(f, DEVFN, PCI_CFG_INT_LINE, 0x0b, 1);
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_INT_LINE, 1), 0x0b);
    cf8_wr(f, DEVFN, PCI_CFG_COMMAND + 0, PCI_CMD_BUS_MASTER, 2);
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_COMMAND, 2), PCI_CMD_BUS_MASTER);

    /* CONFIG_ADDRESS reads back; narrower accesses to 0xCF8 leave it alone. */
    cf8_select(f, 0, DEVFN, 0x3c);
    uint8_t b = 0x12;
    assert_true(bus_write(&f->pio, 0xcf9, &b, 1));
    uint32_t a = 0;
    assert_true(bus_read(&f->pio, 0xcf8, &a, 4));
    assert_int_equal(a, 0x80000000u | DEVFN << 8 | 0x3c);
    /* Extended config space is ECAM-only: register bits 0-1 and 24-30 ignored. */
    a = 0x8f000000u | DEVFN << 8 | 0x01;
    assert_true(bus_write(&f->pio, 0xcf8, &a, 4));
    uint32_t v = 0;
    assert_true(bus_read(&f->pio, 0xcfc, &v, 2));
    assert_int_equal(v, 0x1af4);
}

static void test_config_masks(void **state)
{
    struct fixture *f = *state;
    /* IDs, class, header type are read-only. */
    ecam_wr(f, DEVFN, 0, 0x12345678, 4);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0, 4), 0x10411af4);
    ecam_wr(f, DEVFN, 8, 0xffffffff, 4);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 8, 4), 0x02000001);
    /* Command: only the defined bits stick. */
    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, 0xffff, 2);
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_COMMAND, 2), 0x0547);
    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, 0, 2);
    /* Status: write-1-to-clear, writing 0 keeps, read-only bits stay. */
    pci_cfg_set(&f->dev, PCI_CFG_STATUS, (1u << 13) | (1u << 15) | (1u << 4), 2);
    ecam_wr(f, DEVFN, PCI_CFG_STATUS, 0, 2);
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_STATUS, 2), (1u << 13) | (1u << 15) | (1u << 4));
    ecam_wr(f, DEVFN, PCI_CFG_STATUS, (1u << 13) | (1u << 4), 2);
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_STATUS, 2), (1u << 15) | (1u << 4));
    /* A dword write to command+status sets command bits and clears status bits at once. */
    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, (1u << 31) | PCI_CMD_BUS_MASTER, 4);
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_COMMAND, 4), (1u << 4) << 16 | PCI_CMD_BUS_MASTER);
    /* Scratch bytes and reserved ones. */
    ecam_wr(f, DEVFN, PCI_CFG_INT_LINE, 0xffff, 2);
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_INT_LINE, 2), 0x00ff);   /* pin is read-only */
    ecam_wr(f, DEVFN, 0x800, 0xdeadbeef, 4);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x800, 4), 0);
    /* A device-opened mask. */
    pci_cfg_set_wmask(&f->dev, 0x900, 0x00ff00ff, 4);
    ecam_wr(f, DEVFN, 0x900, 0xffffffff, 4);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x900, 4), 0x00ff00ff);
}

static void test_bar_sizing(void **state)
{
    struct fixture *f = *state;
    uint32_t bar0 = ecam_rd(f, 0, DEVFN, 0x10, 4), bar1 = ecam_rd(f, 0, DEVFN, 0x14, 4);
    uint32_t lo = ecam_rd(f, 0, DEVFN, 0x18, 4), hi = ecam_rd(f, 0, DEVFN, 0x1c, 4);
    /* Firmware-style assignment: inside the windows, naturally aligned, flags kept. */
    assert_int_equal(bar0, MMIO32);
    assert_int_equal(bar1, IO_BASE | PCI_BAR_F_IO);
    assert_int_equal(lo, (uint32_t)MMIO64 | PCI_BAR_F_MEM64 | PCI_BAR_F_PREFETCH);
    assert_int_equal(hi, (uint32_t)(MMIO64 >> 32));

    for (unsigned r = 0x10; r <= 0x24; r += 4)
        ecam_wr(f, DEVFN, r, 0xffffffff, 4);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x10, 4), 0xfffff000u);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x14, 4), 0xffffffe0u | PCI_BAR_F_IO);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x18, 4), 0xffffc000u | PCI_BAR_F_MEM64 | PCI_BAR_F_PREFETCH);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x1c, 4), 0xffffffffu);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x20, 4), 0);    /* unused BARs size to 0 */
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x24, 4), 0);
    /* Sizing with decode off maps nothing. */
    assert_int_equal(f->map_calls, 0);

    ecam_wr(f, DEVFN, 0x10, bar0, 4);
    ecam_wr(f, DEVFN, 0x18, lo, 4);
    ecam_wr(f, DEVFN, 0x1c, hi, 4);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x10, 4), bar0);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x18, 4), lo);

    /* Invalid declarations are refused. */
    struct pci_device d;
    pci_device_init(&d, "bad", NULL, NULL, 1, 2, 0, 0);
    assert_int_equal(pci_device_add_bar(&d, 0, PCI_BAR_MEM32, false, 0x1800), -EINVAL);
    assert_int_equal(pci_device_add_bar(&d, 0, PCI_BAR_MEM32, false, 8), -EINVAL);
    assert_int_equal(pci_device_add_bar(&d, 5, PCI_BAR_MEM64, false, 0x1000), -EINVAL);
    assert_int_equal(pci_device_add_bar(&d, 0, PCI_BAR_IO, true, 16), -EINVAL);
    assert_int_equal(pci_device_add_bar(&d, 6, PCI_BAR_MEM32, false, 0x1000), -EINVAL);
}

static void test_command_decode(void **state)
{
    struct fixture *f = *state;
    uint32_t v = 0;
    assert_false(bus_read(&f->mmio, MMIO32, &v, 4));
    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, PCI_CMD_MEMORY, 2);
    assert_int_equal(f->map_addr[0], MMIO32);
    assert_int_equal(f->map_addr[2], MMIO64);
    assert_int_equal(f->map_calls, 2);          /* the I/O BAR is not decoded */
    assert_true(bus_read(&f->mmio, MMIO32 + 0x10, &v, 4));
    assert_int_equal(v, 0xab00);
    assert_int_equal(f->last_off, 0x10);
    assert_true(bus_read(&f->mmio, MMIO64 + 0x3ffc, &v, 4));
    assert_int_equal(v, 0xab02);
    assert_int_equal(f->last_bar, 2);
    assert_false(bus_read(&f->pio, IO_BASE, &v, 4));

    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, PCI_CMD_MEMORY | PCI_CMD_IO, 2);
    assert_int_equal(f->map_addr[1], IO_BASE);
    uint16_t w = 0x5a5a;
    assert_true(bus_write(&f->pio, IO_BASE + 6, &w, 2));
    assert_int_equal(f->last_bar, 1);
    assert_int_equal(f->last_off, 6);
    assert_int_equal(f->last_write, 0x5a5a);
    assert_int_equal(f->map_calls, 3);          /* BARs that did not move are not re-announced */

    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, 0, 2);
    assert_false(bus_read(&f->mmio, MMIO32, &v, 4));
    assert_false(bus_read(&f->pio, IO_BASE, &v, 4));
    assert_int_equal(f->map_addr[0], PCI_BAR_UNMAPPED);
    assert_int_equal(f->map_addr[1], PCI_BAR_UNMAPPED);
    assert_int_equal(f->map_addr[2], PCI_BAR_UNMAPPED);
    assert_int_equal(pci_device_bar_addr(&f->dev, 0), PCI_BAR_UNMAPPED);
}

static void test_bar_relocation(void **state)
{
    struct fixture *f = *state;
    uint32_t v = 0;
    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, PCI_CMD_MEMORY, 2);
    /* 32-bit BAR moves while decoding. */
    ecam_wr(f, DEVFN, 0x10, 0xc0100000u, 4);
    assert_int_equal(f->map_addr[0], 0xc0100000u);
    assert_false(bus_read(&f->mmio, MMIO32, &v, 4));
    assert_true(bus_read(&f->mmio, 0xc0100000u + 4, &v, 4));
    assert_int_equal(v, 0xab00);
    /* Low bits below the size are ignored. */
    ecam_wr(f, DEVFN, 0x10, 0xc0200fffu, 4);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x10, 4), 0xc0200000u);
    assert_int_equal(pci_device_bar_addr(&f->dev, 0), 0xc0200000u);

    /* 64-bit BAR: low then high dword, as Linux writes it. */
    uint64_t to = MMIO64 + 0x80000000ull + 0x4000;
    ecam_wr(f, DEVFN, 0x18, (uint32_t)to, 4);
    ecam_wr(f, DEVFN, 0x1c, (uint32_t)(to >> 32), 4);
    assert_int_equal(f->map_addr[2], to);
    assert_true(bus_read(&f->mmio, to, &v, 4));
    assert_int_equal(v, 0xab02);
    assert_false(bus_read(&f->mmio, MMIO64, &v, 4));
    /* A 64-bit BAR may also live below 4 GiB. */
    ecam_wr(f, DEVFN, 0x1c, 0, 4);
    ecam_wr(f, DEVFN, 0x18, 0xc0400000u, 4);
    assert_int_equal(f->map_addr[2], 0xc0400000u);
    assert_true(bus_read(&f->mmio, 0xc0400000u, &v, 4));
}

/* A guest placing BARs over RAM, outside the windows or over other devices
 * only breaks its own device: nothing is mapped, nothing else moves. */
static void test_hostile_bars(void **state)
{
    struct fixture *f = *state;
    uint32_t v = 0;
    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, PCI_CMD_MEMORY | PCI_CMD_IO, 2);
    ecam_wr(f, DEVFN, 0x10, 0x00100000u, 4);        /* RAM */
    assert_int_equal(f->map_addr[0], PCI_BAR_UNMAPPED);
    assert_false(bus_read(&f->mmio, 0x00100000u, &v, 4));
    ecam_wr(f, DEVFN, 0x10, (uint32_t)ECAM, 4);     /* over the ECAM window */
    assert_int_equal(f->map_addr[0], PCI_BAR_UNMAPPED);
    assert_int_equal(ecam_rd(f, 0, 0, 0, 2), PCI_HOST_VENDOR_ID);
    ecam_wr(f, DEVFN, 0x10, 0xdffff000u, 4);        /* last page of the window: fine */
    assert_int_equal(f->map_addr[0], 0xdffff000u);
    ecam_wr(f, DEVFN, 0x14, 0xcf8, 4);              /* I/O BAR over the config ports */
    assert_int_equal(f->map_addr[1], PCI_BAR_UNMAPPED);
    assert_true(bus_read(&f->pio, 0xcf8, &v, 4));

    /* Over another device's BAR inside the window. */
    static const struct bus_ops other_ops = { 0 };
    assert_int_equal(bus_register(&f->mmio, 0xc8000000u, 0x1000, &other_ops, NULL, "other"), 0);
    ecam_wr(f, DEVFN, 0x10, 0xc8000000u, 4);
    assert_int_equal(f->map_addr[0], PCI_BAR_UNMAPPED);
    ecam_wr(f, DEVFN, 0x18, 0xc8000000u, 4);        /* 16 KiB over it, 64-bit high dword 0 */
    ecam_wr(f, DEVFN, 0x1c, 0, 4);
    assert_int_equal(f->map_addr[2], PCI_BAR_UNMAPPED);
    /* Two BARs of the same device on top of each other: the second loses. */
    ecam_wr(f, DEVFN, 0x10, 0xc9000000u, 4);
    assert_int_equal(f->map_addr[0], 0xc9000000u);
    ecam_wr(f, DEVFN, 0x18, 0xc9000000u, 4);
    assert_int_equal(f->map_addr[2], PCI_BAR_UNMAPPED);
    assert_true(bus_read(&f->mmio, 0xc9000000u, &v, 4));
    assert_int_equal(v, 0xab00);
    /* 64-bit address beyond the window's end. */
    ecam_wr(f, DEVFN, 0x18, 0xffffc000u, 4);
    ecam_wr(f, DEVFN, 0x1c, 0xffffffffu, 4);
    assert_int_equal(f->map_addr[2], PCI_BAR_UNMAPPED);
    /* Moving back into free space works again. */
    ecam_wr(f, DEVFN, 0x1c, (uint32_t)(MMIO64 >> 32), 4);
    ecam_wr(f, DEVFN, 0x18, (uint32_t)MMIO64, 4);
    assert_int_equal(f->map_addr[2], MMIO64);
    assert_int_equal(bus_unregister(&f->mmio, 0xc8000000u), 0);
}

static void test_capability_walk(void **state)
{
    struct fixture *f = *state;
    struct pci_device d;
    pci_device_init(&d, "caps", NULL, NULL, 0x1af4, 0x1042, 0x018000, 0);
    assert_int_equal(pci_device_find_cap(&d, PCI_CAP_ID_VENDOR), 0);
    int a = pci_device_add_cap(&d, PCI_CAP_ID_VENDOR, 16);
    int b = pci_device_add_cap(&d, PCI_CAP_ID_PCIE, 0x3c);
    int c = pci_device_add_cap(&d, PCI_CAP_ID_VENDOR, 5);
    assert_int_equal(a, 0x40);
    assert_int_equal(b, 0x50);
    assert_int_equal(c, 0x8c);
    assert_int_equal(pci_device_add_cap(&d, PCI_CAP_ID_VENDOR, 0x80), -ENOSPC);
    assert_int_equal(pci_host_add_device(f->host, &d, 7), 7 << 3);
    assert_int_equal(pci_host_add_device(f->host, &d, 8), -EINVAL);   /* already plugged */

    /* The guest's walk, through config cycles. */
    assert_true(ecam_rd(f, 0, 7 << 3, PCI_CFG_STATUS, 2) & PCI_STATUS_CAP_LIST);
    unsigned off = ecam_rd(f, 0, 7 << 3, PCI_CFG_CAP_PTR, 1), ids[4], n = 0;
    while (off && n < 4) {
        ids[n++] = ecam_rd(f, 0, 7 << 3, off, 1);
        off = ecam_rd(f, 0, 7 << 3, off + 1, 1);
    }
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], PCI_CAP_ID_VENDOR);
    assert_int_equal(ids[1], PCI_CAP_ID_PCIE);
    assert_int_equal(ids[2], PCI_CAP_ID_VENDOR);
    assert_int_equal(pci_device_find_cap(&d, PCI_CAP_ID_PCIE), 0x50);
    assert_int_equal(pci_device_find_cap(&d, PCI_CAP_ID_MSIX), 0);
    /* The list is read-only to the guest. */
    ecam_wr(f, 7 << 3, 0x41, 0x40, 1);
    assert_int_equal(ecam_rd(f, 0, 7 << 3, 0x41, 1), 0x50);
    /* A looping list (a device model bug) does not hang the walk. */
    pci_cfg_set(&d, 0x51, 0x40, 1);
    assert_int_equal(pci_device_find_cap(&d, PCI_CAP_ID_MSIX), 0);
    pci_host_remove_device(f->host, &d);
    assert_int_equal(ecam_rd(f, 0, 7 << 3, 0, 4), 0xffffffffu);
}

static void test_slots_and_windows(void **state)
{
    struct fixture *f = *state;
    struct pci_device d[3];
    for (unsigned i = 0; i < 3; i++) {
        pci_device_init(&d[i], "more", NULL, NULL, 0x1af4, 0x1043, 0x078000, 0);
        assert_int_equal(pci_device_add_bar(&d[i], 0, PCI_BAR_MEM32, false, 0x10000000), 0);
    }
    assert_int_equal(pci_host_add_device(f->host, &d[0], SLOT), -EBUSY);
    assert_int_equal(pci_host_add_device(f->host, &d[0], 0), -EINVAL);
    assert_int_equal(pci_host_add_device(f->host, &d[0], -1), 1 << 3);   /* first free slot */
    /* The 512 MiB window held 4 KiB + a 256 MiB BAR: another 256 MiB does not fit. */
    assert_int_equal(pci_host_add_device(f->host, &d[1], -1), -ENOSPC);
    assert_int_equal(ecam_rd(f, 0, 1 << 3, 0x10, 4), 0xd0000000u);
    assert_int_equal(pci_device_add_bar(&d[0], 1, PCI_BAR_MEM32, false, 0x1000), -EINVAL);  /* plugged */
    pci_host_remove_device(f->host, &d[0]);
}

static void test_reset_restores(void **state)
{
    struct fixture *f = *state;
    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER, 2);
    ecam_wr(f, DEVFN, 0x10, 0xc0100000u, 4);
    ecam_wr(f, DEVFN, PCI_CFG_INT_LINE, 9, 1);
    uint32_t a = 0x80000000u;
    assert_true(bus_write(&f->pio, 0xcf8, &a, 4));
    struct device h = pci_host_device(f->host);
    h.ops->reset(h.dev);
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_COMMAND, 2), 0);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0x10, 4), MMIO32);
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_INT_LINE, 1), 0);
    assert_int_equal(f->map_addr[0], PCI_BAR_UNMAPPED);
    uint32_t v = 1;
    assert_true(bus_read(&f->pio, 0xcf8, &v, 4));
    assert_int_equal(v, 0);
    assert_false(bus_read(&f->mmio, 0xc0100000u, &v, 4));
}

/* Accesses the ECAM splits: a qword, and one straddling two dwords. */
static void test_ecam_odd_accesses(void **state)
{
    struct fixture *f = *state;
    uint64_t q = 0;
    assert_true(bus_read(&f->mmio, ECAM + ((uint64_t)DEVFN << 12), &q, 8));
    assert_int_equal(q, (uint64_t)ecam_rd(f, 0, DEVFN, 4, 4) << 32 | 0x10411af4);
    uint32_t v = 0;
    assert_true(bus_read(&f->mmio, ECAM + ((uint64_t)DEVFN << 12) + 1, &v, 4));
    assert_int_equal(v, 0x10411af4u >> 8 | (ecam_rd(f, 0, DEVFN, 4, 1) << 24));
    q = ~0ull;
    assert_true(bus_write(&f->mmio, ECAM + ((uint64_t)DEVFN << 12) + 0x38, &q, 8));
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_INT_LINE, 1), 0xff);
}

static uint32_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 32);
}

/* A guest writing anything anywhere in config space, through either
 * mechanism: BARs only ever decode inside the windows, where the device
 * answers, and the host bridge and its ports stay where they are. */
static void test_random_config_writes(void **state)
{
    struct fixture *f = *state;
    uint64_t seed = 42;
    unsigned mapped_seen = 0;
    static const unsigned sizes[] = { 1, 2, 4 };
    for (unsigned i = 0; i < 20000; i++) {
        uint32_t r = rng_next(&seed), v = rng_next(&seed);
        unsigned size = sizes[r % 3], off = (r >> 2) % 0x40 & ~(size - 1);
        /* Half the writes look plausible: decode on, addresses in (or
         * overlapping) the windows, so that mappings really happen. */
        if (r & (1u << 30)) {
            static const uint32_t plausible[] = { (uint32_t)MMIO32, IO_BASE, (uint32_t)(MMIO64 >> 32), 0 };
            v = plausible[(v >> 8) % 4] + (v & 0x3000);
            if (r & (1u << 29))
                off = PCI_CFG_COMMAND, size = 2, v = PCI_CMD_MEMORY | PCI_CMD_IO;
            else
                off = PCI_CFG_BAR0 + 4 * ((r >> 4) % 4), size = 4;
        }
        if (r & (1u << 31))
            cf8_wr(f, DEVFN, off, v, size);
        else
            ecam_wr(f, DEVFN, off, v, size);
        for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
            const struct pci_bar *bar = &f->dev.bar[b];
            if (bar->mapped == PCI_BAR_UNMAPPED)
                continue;
            mapped_seen++;
            assert_true(pci_host_window_contains(f->host, bar->type, bar->mapped, bar->size));
            assert_int_equal(f->map_addr[b], bar->mapped);
            uint32_t got = 0;
            struct bus *bus = bar->type == PCI_BAR_IO ? &f->pio : &f->mmio;
            assert_true(bus_read(bus, bar->mapped, &got, 1));
            assert_int_equal(got & 0xff, (0xab00 + b) & 0xff);
        }
    }
    assert_true(mapped_seen > 1000);     /* the invariants were checked, not vacuous */
    assert_int_equal(ecam_rd(f, 0, 0, 0, 4), PCI_HOST_DEVICE_ID << 16 | PCI_HOST_VENDOR_ID);
    assert_int_equal(ecam_rd(f, 0, DEVFN, 0, 4), 0x10411af4);
}

struct ioev_log {
    unsigned calls;
    bool pio, assign;
    uint64_t addr;
    unsigned len;
    int fd;
    unsigned live;      /* assigned minus deassigned */
    int fail;           /* next assign fails with this */
};

static int fake_ioeventfd(void *opaque, bool pio, uint64_t addr, unsigned len, int fd, bool assign)
{
    struct ioev_log *l = opaque;
    if (assign && l->fail) {
        int r = l->fail;
        l->fail = 0;
        return r;
    }
    l->calls++;
    l->pio = pio;
    l->assign = assign;
    l->addr = addr;
    l->len = len;
    l->fd = fd;
    l->live = assign ? l->live + 1 : l->live - 1;
    return 0;
}

/* A bound eventfd follows its BAR: assigned where it decodes, moved with
 * it, dropped while decode is off or when unbound. */
static void test_ioeventfd_follows_bar(void **state)
{
    struct fixture *f = *state;
    struct ioev_log l = { 0 };
    assert_int_equal(pci_device_add_ioeventfd(&f->dev, 0, 0x100, 2, 40), 0);    /* before ops: remembered */
    struct pci_ioeventfd_ops ops = { fake_ioeventfd, &l };
    pci_host_set_ioeventfd_ops(f->host, &ops);
    assert_int_equal(l.calls, 0);                                               /* decode is off */

    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, PCI_CMD_MEMORY, 2);
    assert_int_equal(l.calls, 1);
    assert_true(l.assign);
    assert_false(l.pio);
    assert_int_equal(l.addr, MMIO32 + 0x100);
    assert_int_equal(l.len, 2);
    assert_int_equal(l.fd, 40);

    ecam_wr(f, DEVFN, 0x10, 0xc0300000u, 4);
    assert_int_equal(l.calls, 3);                                               /* deassign + assign */
    assert_int_equal(l.addr, 0xc0300100u);
    assert_int_equal(l.live, 1);

    /* Bound while decoding: assigned at once; an I/O BAR's is a PIO one. */
    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, PCI_CMD_MEMORY | PCI_CMD_IO, 2);
    assert_int_equal(pci_device_add_ioeventfd(&f->dev, 1, 4, 0, 41), 0);
    assert_true(l.pio);
    assert_int_equal(l.addr, IO_BASE + 4);
    assert_int_equal(l.live, 2);

    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, 0, 2);
    assert_int_equal(l.live, 0);
    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, PCI_CMD_MEMORY | PCI_CMD_IO, 2);
    assert_int_equal(l.live, 2);

    /* A refused assignment leaves the slow path; the next move tries again. */
    l.fail = -ENOSPC;
    ecam_wr(f, DEVFN, 0x10, 0xc0400000u, 4);
    assert_int_equal(l.live, 1);
    assert_int_equal(f->dev.ioeventfds[0].addr, PCI_BAR_UNMAPPED);
    ecam_wr(f, DEVFN, 0x10, 0xc0500000u, 4);
    assert_int_equal(l.live, 2);
    assert_int_equal(l.addr, 0xc0500100u);

    assert_int_equal(pci_device_remove_ioeventfd(&f->dev, 40), 0);
    assert_false(l.assign);
    assert_int_equal(l.addr, 0xc0500100u);
    assert_int_equal(l.live, 1);
    assert_int_equal(pci_device_remove_ioeventfd(&f->dev, 40), -ENOENT);

    /* Bad bindings. */
    assert_int_equal(pci_device_add_ioeventfd(&f->dev, 1, 8, 2, 41), -EINVAL);      /* fd bound already */
    assert_int_equal(pci_device_add_ioeventfd(&f->dev, 0, 0x1000, 2, 42), -EINVAL); /* past the BAR */
    assert_int_equal(pci_device_add_ioeventfd(&f->dev, 0, 0xfff, 2, 42), -EINVAL);  /* straddles its end */
    assert_int_equal(pci_device_add_ioeventfd(&f->dev, 4, 0, 2, 42), -EINVAL);      /* no BAR 4 */
    assert_int_equal(pci_device_add_ioeventfd(&f->dev, 0, 0, 3, 42), -EINVAL);
    assert_int_equal(pci_device_add_ioeventfd(&f->dev, 0, 0, 4, -1), -EINVAL);

    /* Unplugging unbinds what is left. */
    pci_host_remove_device(f->host, &f->dev);
    assert_int_equal(l.live, 0);
    assert_int_equal(f->dev.nr_ioeventfds, 0);
}

static GBytes *save_host(struct pci_host *h)
{
    struct state_writer *w = state_writer_new();
    struct device d = pci_host_device(h);
    assert_int_equal(d.ops->save(d.dev, w), 0);
    return state_writer_finish(w);
}

static int load_host(struct pci_host *h, GBytes *b)
{
    struct state_reader *r = state_reader_new(b, NULL);
    assert_non_null(r);
    struct device d = pci_host_device(h);
    int ret = d.ops->load(d.dev, r);
    state_reader_free(r);
    return ret;
}

/* Config spaces travel; loading remaps the BARs where the guest had them. */
static void test_save_load(void **state)
{
    struct fixture *f = *state;
    ecam_wr(f, DEVFN, PCI_CFG_COMMAND, PCI_CMD_MEMORY, 2);
    ecam_wr(f, DEVFN, 0x10, 0xc0100000u, 4);
    ecam_wr(f, DEVFN, PCI_CFG_INT_LINE, 5, 1);
    cf8_select(f, 0, DEVFN, 0x10);
    g_autoptr(GBytes) b = save_host(f->host);

    struct device h = pci_host_device(f->host);
    h.ops->reset(h.dev);
    assert_int_equal(f->map_addr[0], PCI_BAR_UNMAPPED);
    assert_int_equal(load_host(f->host, b), 0);
    assert_int_equal(f->map_addr[0], 0xc0100000u);
    assert_int_equal(f->map_addr[2], MMIO64);
    uint32_t v = 0;
    assert_true(bus_read(&f->mmio, 0xc0100000u, &v, 4));
    assert_int_equal(v, 0xab00);
    assert_int_equal(ecam_rd(f, 0, DEVFN, PCI_CFG_INT_LINE, 1), 5);
    assert_true(bus_read(&f->pio, 0xcf8, &v, 4));
    assert_int_equal(v, 0x80000000u | DEVFN << 8 | 0x10);

    /* A machine with other slots filled refuses the stream and keeps its state. */
    struct bus pio2, mmio2;
    bus_init(&pio2, "pio");
    bus_init(&mmio2, "mmio");
    struct pci_host *other = make_host(&pio2, &mmio2);
    assert_int_equal(load_host(other, b), -EINVAL);
    struct device od = pci_host_device(other);
    v = 0;
    assert_true(bus_read(&pio2, 0xcf8, &v, 4));
    assert_int_equal(v, 0);
    od.ops->destroy(od.dev);
    bus_destroy(&pio2);
    bus_destroy(&mmio2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_host_bridge_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_functions_read_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cf8_and_ecam_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_masks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_decode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_relocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_bars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capability_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slots_and_windows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ecam_odd_accesses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_config_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ioeventfd_follows_bar, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
