#include "devices/acpi_pcihp.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "vmm/bus.h"
#include "vmm/log.h"
#include "vmm/state.h"

#define PCIHP_LEN           PORT_PCI_HOTPLUG_LEN
#define STATE_SECTION       "acpi-pcihp"
#define STATE_VERSION       1

struct acpi_pcihp {
    struct bus *pio;
    uint16_t port;
    struct acpi_pm *pm;
    struct acpi_pcihp_ops ops;
    /* All atomic: vCPU threads read and write them, the main loop sets them. */
    uint32_t up;
    uint32_t down;
    uint32_t removable;
};

/* Mask of the register bits an access of `size` bytes at `byte` (0..3 within
 * the register) covers. */
static uint32_t access_mask(unsigned byte, unsigned size)
{
    uint32_t m = 0;
    for (unsigned i = byte; i < byte + size && i < 4; i++)
        m |= 0xffu << (8 * i);
    return m;
}

static void pcihp_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    struct acpi_pcihp *hp = opaque;
    unsigned reg = (unsigned)offset & ~3u, byte = (unsigned)offset & 3u;
    uint32_t mask = access_mask(byte, size), v = 0;
    switch (reg) {
    case ACPI_PCIHP_UP:
        v = __atomic_fetch_and(&hp->up, ~mask, __ATOMIC_ACQ_REL);
        break;
    case ACPI_PCIHP_DOWN:
        v = __atomic_load_n(&hp->down, __ATOMIC_ACQUIRE);
        break;
    case ACPI_PCIHP_REMOVABLE:
        v = __atomic_load_n(&hp->removable, __ATOMIC_ACQUIRE);
        break;
    }
    v &= mask;
    uint8_t *out = data;
    memset(out, 0, size);
    for (unsigned i = 0; i < size && byte + i < 4; i++)
        out[i] = (uint8_t)(v >> (8 * (byte + i)));
}

static void pcihp_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    struct acpi_pcihp *hp = opaque;
    unsigned reg = (unsigned)offset & ~3u, byte = (unsigned)offset & 3u;
    if (reg != ACPI_PCIHP_EJECT)
        return;
    const uint8_t *in = data;
    uint32_t v = 0;
    for (unsigned i = 0; i < size && byte + i < 4; i++)
        v |= (uint32_t)in[i] << (8 * (byte + i));
    v &= ACPI_PCIHP_ALL_SLOTS;
    /* Claim the slots: of two vCPUs ejecting the same slot, one wins. */
    uint32_t claimed = __atomic_fetch_and(&hp->removable, ~v, __ATOMIC_ACQ_REL) & v;
    if (!claimed)
        return;
    __atomic_fetch_and(&hp->down, ~claimed, __ATOMIC_ACQ_REL);
    __atomic_fetch_and(&hp->up, ~claimed, __ATOMIC_ACQ_REL);
    for (unsigned s = 1; s < 32; s++)
        if ((claimed & (1u << s)) && hp->ops.eject)
            hp->ops.eject(hp->ops.opaque, s);
}

static const struct bus_ops pcihp_ops = { .read = pcihp_read, .write = pcihp_write };

struct acpi_pcihp *acpi_pcihp_create(struct bus *pio, uint16_t port, struct acpi_pm *pm,
                                     const struct acpi_pcihp_ops *ops)
{
    struct acpi_pcihp *hp = g_new0(struct acpi_pcihp, 1);
    hp->pio = pio;
    hp->port = port;
    hp->pm = pm;
    if (ops)
        hp->ops = *ops;
    int r = bus_register(pio, port, PCIHP_LEN, &pcihp_ops, hp, "acpi-pcihp");
    if (r < 0) {
        log_error("cannot register the PCI hotplug controller at port 0x%x: %s", port, g_strerror(-r));
        g_free(hp);
        return NULL;
    }
    return hp;
}

static void raise_event(struct acpi_pcihp *hp)
{
    if (hp->pm)
        acpi_pm_ged_event(hp->pm, GED_EVENT_PCI_HOTPLUG);
}

void acpi_pcihp_plugged(struct acpi_pcihp *hp, unsigned slot, bool notify)
{
    if (slot == 0 || slot >= 32)
        return;
    uint32_t bit = 1u << slot;
    __atomic_fetch_and(&hp->down, ~bit, __ATOMIC_ACQ_REL);
    __atomic_fetch_or(&hp->removable, bit, __ATOMIC_ACQ_REL);
    if (notify) {
        __atomic_fetch_or(&hp->up, bit, __ATOMIC_ACQ_REL);
        raise_event(hp);
    }
}

int acpi_pcihp_request_unplug(struct acpi_pcihp *hp, unsigned slot)
{
    if (slot == 0 || slot >= 32)
        return -ENODEV;
    uint32_t bit = 1u << slot;
    if (!(__atomic_load_n(&hp->removable, __ATOMIC_ACQUIRE) & bit))
        return -ENODEV;
    __atomic_fetch_or(&hp->down, bit, __ATOMIC_ACQ_REL);
    raise_event(hp);
    return 0;
}

uint32_t acpi_pcihp_pending_down(struct acpi_pcihp *hp)
{
    return __atomic_load_n(&hp->down, __ATOMIC_ACQUIRE);
}

/* A reset forgets the notifications; the devices stay removable. */
static void pcihp_reset(void *dev)
{
    struct acpi_pcihp *hp = dev;
    __atomic_store_n(&hp->up, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&hp->down, 0, __ATOMIC_RELEASE);
}

static int pcihp_save(void *dev, struct state_writer *w)
{
    struct acpi_pcihp *hp = dev;
    state_begin_section(w, STATE_SECTION, STATE_VERSION);
    state_put_u32(w, __atomic_load_n(&hp->up, __ATOMIC_ACQUIRE));
    state_put_u32(w, __atomic_load_n(&hp->down, __ATOMIC_ACQUIRE));
    state_put_u32(w, __atomic_load_n(&hp->removable, __ATOMIC_ACQUIRE));
    state_end_section(w);
    return 0;
}

static int pcihp_load(void *dev, struct state_reader *r)
{
    struct acpi_pcihp *hp = dev;
    uint32_t version, up = 0, down = 0, removable = 0;
    if (state_open_section(r, STATE_SECTION, STATE_VERSION, &version, NULL) < 0 || state_get_u32(r, &up) < 0 ||
        state_get_u32(r, &down) < 0 || state_get_u32(r, &removable) < 0 || state_close_section(r, NULL) < 0)
        return -EINVAL;
    __atomic_store_n(&hp->up, up & ACPI_PCIHP_ALL_SLOTS, __ATOMIC_RELEASE);
    __atomic_store_n(&hp->down, down & ACPI_PCIHP_ALL_SLOTS, __ATOMIC_RELEASE);
    __atomic_store_n(&hp->removable, removable & ACPI_PCIHP_ALL_SLOTS, __ATOMIC_RELEASE);
    return 0;
}

static void pcihp_destroy(void *dev)
{
    struct acpi_pcihp *hp = dev;
    bus_unregister(hp->pio, hp->port);
    g_free(hp);
}

static const struct device_ops pcihp_device_ops = {
    .type = "acpi-pcihp",
    .reset = pcihp_reset,
    .save = pcihp_save,
    .load = pcihp_load,
    .destroy = pcihp_destroy,
};

struct device acpi_pcihp_device(struct acpi_pcihp *hp)
{
    if (!hp)
        return (struct device){ 0 };
    return (struct device){ .id = "acpi-pcihp", .ops = &pcihp_device_ops, .dev = hp };
}

/* ---- AML ---- */

static void slot_name(char out[5], unsigned slot)
{
    g_snprintf(out, 5, "S%02X", slot);
}

void acpi_pcihp_build_aml(struct aml *pci0, uint32_t slots)
{
    slots &= ACPI_PCIHP_ALL_SLOTS;
    if (!slots)
        return;
    aml_append(pci0, aml_opregion("PCST", AML_SYSTEM_IO, PORT_PCI_HOTPLUG, PCIHP_LEN));
    struct aml *f = aml_field("PCST", AML_DWORD_ACC, AML_NOLOCK, AML_WRITE_AS_ZEROS);
    aml_append(f, aml_named_field("PCIU", 32));
    aml_append(f, aml_named_field("PCID", 32));
    aml_append(f, aml_named_field("B0EJ", 32));
    aml_append(pci0, f);

    /* DVNT (slot mask, notify value): notifies each slot in the mask. Notify
     * takes a name, not a computed object, hence one If per slot. */
    struct aml *dvnt = aml_method("DVNT", 2, AML_NOT_SERIALIZED);
    for (unsigned s = 1; s < 32; s++) {
        if (!(slots & (1u << s)))
            continue;
        char name[5];
        slot_name(name, s);
        struct aml *hit = aml_if(aml_and(aml_arg(0), aml_int(1u << s), NULL));
        aml_append(hit, aml_notify(aml_name(name), aml_arg(1)));
        aml_append(dvnt, hit);
    }
    aml_append(pci0, dvnt);

    /* PCNT: the GED's handler. PCIU is read once (reading clears it). */
    struct aml *pcnt = aml_method("PCNT", 0, AML_SERIALIZED);
    aml_append(pcnt, aml_call("DVNT", aml_name("PCIU"), aml_one(), NULL));
    aml_append(pcnt, aml_call("DVNT", aml_name("PCID"), aml_int(3), NULL));
    aml_append(pci0, pcnt);

    for (unsigned s = 1; s < 32; s++) {
        if (!(slots & (1u << s)))
            continue;
        char name[5];
        slot_name(name, s);
        struct aml *d = aml_device(name);
        aml_append(d, aml_name_decl("_ADR", aml_int((uint64_t)s << 16)));
        aml_append(d, aml_name_decl("_SUN", aml_int(s)));
        struct aml *ej = aml_method("_EJ0", 1, AML_NOT_SERIALIZED);
        aml_append(ej, aml_store(aml_int(1u << s), aml_name("\\_SB.PCI0.B0EJ")));
        aml_append(d, ej);
        aml_append(pci0, d);
    }
}
