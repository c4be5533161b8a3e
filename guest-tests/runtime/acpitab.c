/* ACPI table lookup: RSDP -> XSDT (or RSDT) -> tables. Every length read from
 * a table is bounded before it is used to walk memory. */
#include "rt.h"

#define TABLE_MAX_LEN   (1u << 20)
#define LOW_4G          (1ull << 32)

bool acpi_checksum_ok(const void *p, uint32_t len)
{
    uint8_t sum = 0;
    for (uint32_t i = 0; i < len; i++)
        sum += ((const uint8_t *)p)[i];
    return sum == 0;
}

const uint8_t *acpi_rsdp(void)
{
    const uint8_t *r = (const uint8_t *)(uintptr_t)boot_info.rsdp;
    if (!r || memcmp(r, "RSD PTR ", 8) != 0 || !acpi_checksum_ok(r, 20))
        return NULL;
    if (r[15] >= 2 && !acpi_checksum_ok(r, 36))
        return NULL;
    return r;
}

static const struct acpi_header *table_at(uint64_t pa)
{
    if (!pa || pa >= LOW_4G)
        return NULL;
    const struct acpi_header *h = (const void *)(uintptr_t)pa;
    if (h->length < sizeof(*h) || h->length > TABLE_MAX_LEN || pa + h->length > LOW_4G)
        return NULL;
    return h;
}

static const struct acpi_header *root(bool *is_xsdt)
{
    const uint8_t *r = acpi_rsdp();
    if (!r)
        return NULL;
    if (r[15] >= 2) {
        uint64_t x;
        memcpy(&x, r + 24, 8);
        const struct acpi_header *h = table_at(x);
        if (h && memcmp(h->signature, "XSDT", 4) == 0) {
            *is_xsdt = true;
            return h;
        }
    }
    uint32_t rs;
    memcpy(&rs, r + 16, 4);
    *is_xsdt = false;
    const struct acpi_header *h = table_at(rs);
    return h && memcmp(h->signature, "RSDT", 4) == 0 ? h : NULL;
}

unsigned acpi_root_entries(bool *is_xsdt)
{
    const struct acpi_header *h = root(is_xsdt);
    if (!h)
        return 0;
    return (h->length - sizeof(*h)) / (*is_xsdt ? 8 : 4);
}

const struct acpi_header *acpi_root_entry(unsigned i)
{
    bool x;
    const struct acpi_header *h = root(&x);
    if (!h || i >= (h->length - sizeof(*h)) / (x ? 8 : 4))
        return NULL;
    const uint8_t *e = (const uint8_t *)(h + 1);
    uint64_t pa = 0;
    memcpy(&pa, e + i * (x ? 8 : 4), x ? 8 : 4);
    return table_at(pa);
}

const struct acpi_header *acpi_find(const char *sig, unsigned nth)
{
    if (memcmp(sig, "DSDT", 4) == 0) {
        const struct acpi_header *f = acpi_find("FACP", 0);
        if (!f || nth)
            return NULL;
        const uint8_t *fb = (const uint8_t *)f;
        uint64_t pa = 0;
        if (f->length >= FADT_X_DSDT + 8)
            memcpy(&pa, fb + FADT_X_DSDT, 8);
        if (!pa && f->length >= FADT_DSDT + 4)
            memcpy(&pa, fb + FADT_DSDT, 4);
        return table_at(pa);
    }
    bool x;
    unsigned n = acpi_root_entries(&x);
    for (unsigned i = 0; i < n; i++) {
        const struct acpi_header *t = acpi_root_entry(i);
        if (t && memcmp(t->signature, sig, 4) == 0 && nth-- == 0)
            return t;
    }
    return NULL;
}

/* AML: NameOp "_S5_" PackageOp PkgLength NumElements <SLP_TYPa> ... */
static int aml_byte_const(const uint8_t *p, const uint8_t *end)
{
    if (p >= end)
        return -1;
    switch (p[0]) {
    case 0x00: return 0;                            /* ZeroOp */
    case 0x01: return 1;                            /* OneOp */
    case 0x0a: return p + 1 < end ? p[1] : -1;      /* BytePrefix */
    case 0x0b: return p + 2 < end ? p[1] : -1;      /* WordPrefix: low byte */
    case 0x0c: return p + 4 < end ? p[1] : -1;      /* DWordPrefix: low byte */
    default: return -1;
    }
}

int acpi_s5_slp_typ(void)
{
    const struct acpi_header *d = acpi_find("DSDT", 0);
    if (!d)
        return -1;
    const uint8_t *p = (const uint8_t *)d, *end = p + d->length;
    for (const uint8_t *q = p + sizeof(*d); q + 8 < end; q++) {
        if (memcmp(q, "_S5_", 4) != 0)
            continue;
        if (q[-1] != 0x08 && !(q[-1] == '\\' && q[-2] == 0x08))
            continue;
        const uint8_t *r = q + 4;
        if (*r++ != 0x12)                           /* PackageOp */
            continue;
        r += 1 + (*r >> 6);                         /* PkgLength: lead byte + follow bytes */
        r++;                                        /* NumElements */
        return aml_byte_const(r, end);
    }
    return -1;
}

unsigned acpi_madt_cpus(uint8_t *ids, unsigned max)
{
    const struct acpi_header *m = acpi_find("APIC", 0);
    if (!m)
        return 0;
    const uint8_t *p = (const uint8_t *)m + sizeof(*m) + 8, *end = (const uint8_t *)m + m->length;
    unsigned n = 0;
    while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
        if (p[0] == 0 && p[1] >= 8) {               /* processor local APIC */
            uint32_t flags;
            memcpy(&flags, p + 4, 4);
            if (flags & 1) {
                if (n < max)
                    ids[n] = p[3];
                n++;
            }
        }
        p += p[1];
    }
    return n;
}

uint64_t acpi_gas_read(const struct acpi_gas *g)
{
    if (g->space_id == ACPI_GAS_IO) {
        switch (g->bit_width) {
        case 16: return inw((uint16_t)g->address);
        case 32: return inl((uint16_t)g->address);
        default: return inb((uint16_t)g->address);
        }
    }
    if (g->bit_width == 32)
        return mmio_read32(g->address);
    return mmio_read8(g->address);
}

void acpi_gas_write(const struct acpi_gas *g, uint64_t v)
{
    if (g->space_id == ACPI_GAS_IO) {
        switch (g->bit_width) {
        case 16: outw((uint16_t)g->address, (uint16_t)v); return;
        case 32: outl((uint16_t)g->address, (uint32_t)v); return;
        default: outb((uint16_t)g->address, (uint8_t)v); return;
        }
    }
    if (g->bit_width == 32)
        mmio_write32(g->address, (uint32_t)v);
    else
        mmio_write8(g->address, (uint8_t)v);
}
