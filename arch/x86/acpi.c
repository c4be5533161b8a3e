/* ACPI tables (ACPI 6.3 layout; hardware-reduced). Every table carries OEM ID
 * "VMMVMM", OEM table ID "VMM" + its signature, creator ID "VMMB" (the vmm
 * table builder) and creator revision ACPI_CREATOR_REV, which is bumped when
 * the generated tables change in a way a guest could notice. */
#include "arch/x86/acpi.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "devices/acpi_pcihp.h"
#include "devices/cpu_hotplug.h"
#include "vmm/memory.h"

#define ACPI_OEM_ID         "VMMVMM"
#define ACPI_CREATOR_ID     "VMMB"
#define ACPI_CREATOR_REV    2
#define ACPI_HYPERVISOR_ID  "VMMVMM  "  /* FADT Hypervisor Vendor Identity, 8 bytes */

#define HDR_LEN             36
#define HDR_CHECKSUM        9
#define RSDP_LEN            36
#define TABLE_ALIGN         16

/* FADT (ACPI 6.3 table 5-34): offsets of the fields we set */
#define FADT_REVISION       6
#define FADT_MINOR          3
#define FADT_LEN            276
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS          112
#define FADT_RESET_REG      116
#define FADT_RESET_VALUE    128
#define FADT_MINOR_VERSION  131
#define FADT_X_DSDT         140
#define FADT_SLEEP_CTL      244
#define FADT_SLEEP_STS      256
#define FADT_HYPERVISOR_ID  268

#define BOOT_ARCH_NO_VGA    (1u << 2)

#define FADT_F_PWR_BUTTON   (1u << 4)   /* 1: power button is a control-method device */
#define FADT_F_SLP_BUTTON   (1u << 5)   /* 1: no fixed-feature sleep button */
#define FADT_F_RESET_REG    (1u << 10)
#define FADT_F_HW_REDUCED   (1u << 20)

#define GAS_SYSTEM_IO       1
#define GAS_ACCESS_BYTE     1

/* MADT (ACPI 6.3 section 5.2.12): revision 5 has the online-capable flag */
#define MADT_REVISION       5
#define MADT_LAPIC          0
#define MADT_IOAPIC         1
#define MADT_SRC_OVERRIDE   2
#define MADT_LAPIC_NMI      4
#define MADT_LAPIC_ENABLED  (1u << 0)
#define MADT_LAPIC_ONLINE_CAPABLE (1u << 1)
#define MPS_INTI_EDGE_HIGH  0x0005      /* polarity 01 active high, trigger 01 edge */
#define MADT_ALL_PROCESSORS 0xff

/* MCFG (PCI Firmware 3.0 section 4.1.2): 8 reserved bytes, then one
 * 16-byte allocation per ECAM range. */
#define MCFG_REVISION       1
#define MCFG_ECAM_BUSES     (LAYOUT_PCIE_ECAM_SIZE >> 20)

/* _OSC for PCI host bridges (PCI Firmware 3.0 section 4.5): control bits
 * 0 native hotplug, 1 SHPC hotplug, 2 PME, 3 AER, 4 PCIe capability
 * structure. Hotplug stays with ACPI (the GED), everything else is the OS's. */
#define OSC_GRANTED         0x1c
#define OSC_ERR_UUID        0x04
#define OSC_ERR_REVISION    0x08
#define OSC_ERR_MASKED      0x10

#define DSDT_REVISION       2           /* 64-bit AML integers */
#define XSDT_REVISION       1
#define RSDP_REVISION       2

static void put_at(GByteArray *b, size_t off, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        b->data[off + i] = (uint8_t)(v >> (8 * i));
}

static void put_le(GByteArray *b, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint8_t byte = (uint8_t)(v >> (8 * i));
        g_byte_array_append(b, &byte, 1);
    }
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)(0 - sum);
}

/* A table begins with its header (length and checksum filled by table_finish). */
static GByteArray *table_new(const char sig[4], uint8_t revision)
{
    GByteArray *t = g_byte_array_new();
    g_byte_array_set_size(t, HDR_LEN);
    memset(t->data, 0, HDR_LEN);
    memcpy(t->data, sig, 4);
    t->data[8] = revision;
    memcpy(t->data + 10, ACPI_OEM_ID, 6);
    memcpy(t->data + 16, "VMM", 3);
    memcpy(t->data + 19, sig, 4);
    t->data[23] = ' ';
    put_at(t, 24, 1, 4);                        /* OEM revision */
    memcpy(t->data + 28, ACPI_CREATOR_ID, 4);
    put_at(t, 32, ACPI_CREATOR_REV, 4);
    return t;
}

static void table_finish(GByteArray *t)
{
    put_at(t, 4, t->len, 4);
    t->data[HDR_CHECKSUM] = 0;
    t->data[HDR_CHECKSUM] = checksum(t->data, t->len);
}

static size_t align_up(size_t off)
{
    return (off + TABLE_ALIGN - 1) & ~(size_t)(TABLE_ALIGN - 1);
}

/* Moves a finished table into `out` at the offset the layout gave it. */
static void table_place(GByteArray *out, GByteArray *t, size_t off)
{
    g_assert(off >= out->len && off == align_up(out->len));
    static const uint8_t zeros[TABLE_ALIGN];
    g_byte_array_append(out, zeros, (guint)(off - out->len));
    g_byte_array_append(out, t->data, t->len);
    g_byte_array_unref(t);
}

static void put_gas_io8(GByteArray *t, size_t off, uint16_t port)
{
    t->data[off] = GAS_SYSTEM_IO;
    t->data[off + 1] = 8;               /* register bit width */
    t->data[off + 2] = 0;               /* bit offset */
    t->data[off + 3] = GAS_ACCESS_BYTE;
    put_at(t, off + 4, port, 8);
}

static GByteArray *build_fadt(uint64_t dsdt_gpa)
{
    GByteArray *t = table_new("FACP", FADT_REVISION);
    g_byte_array_set_size(t, FADT_LEN);
    memset(t->data + HDR_LEN, 0, FADT_LEN - HDR_LEN);
    /* No 8042 flag and no PNP0303 in the DSDT: the i8042 is there for its
     * reset command only, and without them Linux does not spend a quarter
     * of a second probing a keyboard nobody can type on (README, design
     * notes). */
    put_at(t, FADT_IAPC_BOOT_ARCH, BOOT_ARCH_NO_VGA, 2);
    put_at(t, FADT_FLAGS, FADT_F_HW_REDUCED | FADT_F_RESET_REG | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON, 4);
    put_gas_io8(t, FADT_RESET_REG, PORT_ACPI_RESET);
    t->data[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
    t->data[FADT_MINOR_VERSION] = FADT_MINOR;
    /* Only the 64-bit pointer: the spec has OSPM ignore DSDT when X_DSDT is set,
     * and there is no FACS in hardware-reduced mode. */
    put_at(t, FADT_X_DSDT, dsdt_gpa, 8);
    put_gas_io8(t, FADT_SLEEP_CTL, PORT_ACPI_SLEEP_CTL);
    put_gas_io8(t, FADT_SLEEP_STS, PORT_ACPI_SLEEP_STS);
    memcpy(t->data + FADT_HYPERVISOR_ID, ACPI_HYPERVISOR_ID, 8);
    return t;
}

static unsigned cpus_max(const struct acpi_config *c)
{
    return MAX(c->nr_cpus_max, c->nr_cpus_boot);
}

static bool cpu_present(const struct acpi_config *c, unsigned i)
{
    return c->cpu_present ? c->cpu_present[i] : i < c->nr_cpus_boot;
}

static bool cpu_hotplug(const struct acpi_config *c)
{
    return c->nr_cpus_max > c->nr_cpus_boot;
}

/* The MADT's Processor Local APIC entry of CPU i (APIC ID = ACPI UID = i). */
static void madt_lapic(uint8_t e[8], unsigned i, uint8_t flags)
{
    e[0] = MADT_LAPIC;
    e[1] = 8;
    e[2] = (uint8_t)i;      /* ACPI processor UID */
    e[3] = (uint8_t)i;      /* APIC ID */
    e[4] = flags;
    e[5] = e[6] = e[7] = 0;
}

static GByteArray *build_madt(const struct acpi_config *c)
{
    GByteArray *t = table_new("APIC", MADT_REVISION);
    put_le(t, LAYOUT_LAPIC_ADDR, 4);
    put_le(t, 0, 4);    /* flags: no PCAT_COMPAT, there is no 8259 */
    /* Every possible CPU: present ones enabled, the others online-capable
     * (MADT revision 5), which Linux counts as possible CPUs to hot-add. */
    for (unsigned i = 0; i < cpus_max(c); i++) {
        uint8_t e[8];
        madt_lapic(e, i, cpu_present(c, i) ? MADT_LAPIC_ENABLED : MADT_LAPIC_ONLINE_CAPABLE);
        g_byte_array_append(t, e, sizeof(e));
    }
    put_le(t, MADT_IOAPIC, 1);
    put_le(t, 12, 1);
    put_le(t, IOAPIC_ID, 1);
    put_le(t, 0, 1);
    put_le(t, LAYOUT_IOAPIC_ADDR, 4);
    put_le(t, 0, 4);    /* GSI base */

    /* The PIT's IRQ0 arrives on IOAPIC pin 2, as on every PC. */
    put_le(t, MADT_SRC_OVERRIDE, 1);
    put_le(t, 10, 1);
    put_le(t, 0, 1);    /* bus: ISA */
    put_le(t, 0, 1);    /* source IRQ */
    put_le(t, 2, 4);    /* GSI */
    put_le(t, MPS_INTI_EDGE_HIGH, 2);

    put_le(t, MADT_LAPIC_NMI, 1);
    put_le(t, 6, 1);
    put_le(t, MADT_ALL_PROCESSORS, 1);
    put_le(t, MPS_INTI_EDGE_HIGH, 2);
    put_le(t, 1, 1);    /* LINT1 */
    return t;
}

static struct aml *sta_present(void)
{
    struct aml *m = aml_method("_STA", 0, AML_NOT_SERIALIZED);
    aml_append(m, aml_return(aml_int(0x0f)));  /* present, enabled, shown, functioning */
    return m;
}

static struct aml *isa_device(const char *name, const char *hid, unsigned uid, struct aml *crs)
{
    struct aml *d = aml_device(name);
    aml_append(d, aml_name_decl("_HID", aml_eisaid(hid)));
    aml_append(d, aml_name_decl("_UID", aml_int(uid)));
    aml_append(d, sta_present());
    aml_append(d, aml_name_decl("_CRS", crs));
    return d;
}

static struct aml *build_com1(void)
{
    struct aml *crs = aml_resource_template();
    aml_append(crs, aml_io(PORT_COM1, PORT_COM1, 1, 8));
    aml_append(crs, aml_irq_noflags(IRQ_COM1));
    return isa_device("COM1", "PNP0501", 1, crs);
}

static struct aml *build_rtc(void)
{
    struct aml *crs = aml_resource_template();
    aml_append(crs, aml_io(PORT_RTC, PORT_RTC, 1, 2));
    aml_append(crs, aml_irq_noflags(IRQ_RTC));
    return isa_device("RTC", "PNP0B00", 0, crs);
}

static struct aml *build_pwrb(void)
{
    struct aml *d = aml_device("PWRB");
    aml_append(d, aml_name_decl("_HID", aml_eisaid("PNP0C0C")));
    aml_append(d, aml_name_decl("_UID", aml_zero()));
    return d;
}

/* The Generic Event Device (ACPI 6.3 section 5.6.9): its interrupt runs _EVT,
 * which reads (and so clears) the event selector and notifies the device
 * each set bit stands for. */
static struct aml *build_ged(const struct acpi_config *c)
{
    struct aml *d = aml_device("GED0");
    aml_append(d, aml_name_decl("_HID", aml_string("ACPI0013")));
    aml_append(d, aml_name_decl("_UID", aml_zero()));
    struct aml *crs = aml_resource_template();
    aml_append(crs, aml_ext_irq(IRQ_ACPI_GED, AML_IRQ_EDGE | AML_IRQ_ACTIVE_HIGH | AML_IRQ_EXCLUSIVE));
    aml_append(d, aml_name_decl("_CRS", crs));
    aml_append(d, aml_opregion("GDST", AML_SYSTEM_IO, PORT_ACPI_GED, 4));
    struct aml *f = aml_field("GDST", AML_DWORD_ACC, AML_NOLOCK, AML_PRESERVE);
    aml_append(f, aml_named_field("GDAT", 32));
    aml_append(d, f);

    struct aml *evt = aml_method("_EVT", 1, AML_SERIALIZED);
    aml_append(evt, aml_store(aml_name("GDAT"), aml_local(0)));
    struct aml *pwr = aml_if(aml_and(aml_local(0), aml_int(GED_EVENT_POWER_BUTTON), NULL));
    aml_append(pwr, aml_notify(aml_name("\\_SB.PWRB"), aml_int(0x80)));
    aml_append(evt, pwr);
    if (c->pci && (c->pci_hotplug_slots & ACPI_PCIHP_ALL_SLOTS)) {
        struct aml *pcihp = aml_if(aml_and(aml_local(0), aml_int(GED_EVENT_PCI_HOTPLUG), NULL));
        aml_append(pcihp, aml_call("\\_SB.PCI0.PCNT", NULL));
        aml_append(evt, pcihp);
    }
    if (cpu_hotplug(c)) {
        struct aml *cpu = aml_if(aml_and(aml_local(0), aml_int(GED_EVENT_CPU_HOTPLUG), NULL));
        aml_append(cpu, aml_call("\\_SB.CSCN", NULL));
        aml_append(evt, cpu);
    }
    aml_append(d, evt);
    return d;
}

static void cpu_name(char name[5], unsigned i)
{
    g_snprintf(name, 5, "C%03X", i);
}

/* CPU hotplug (devices/cpu_hotplug.h has the registers): the controller's
 * fields, _STA and _EJ0 helpers behind one mutex (the selector is shared),
 * the scan the GED calls, and an ACPI0007 device per possible CPU. */
static void build_cpus(struct aml *sb, const struct acpi_config *c)
{
    const unsigned max = cpus_max(c);
    aml_append(sb, aml_opregion("CPHR", AML_SYSTEM_IO, PORT_CPU_HOTPLUG, PORT_CPU_HOTPLUG_LEN));
    /* WriteAsZeros: writing one flag must not write back the others it reads. */
    struct aml *f = aml_field("CPHR", AML_BYTE_ACC, AML_NOLOCK, AML_WRITE_AS_ZEROS);
    aml_append(f, aml_named_field("CSEL", 32));
    aml_append(f, aml_named_field("CPEN", 1));
    aml_append(f, aml_named_field("CINS", 1));
    aml_append(f, aml_named_field("CRMV", 1));
    aml_append(f, aml_named_field("CEJ0", 1));
    aml_append(sb, f);
    /* The OST registers (0x0c event, 0x10 status) as whole dwords: the
     * status write that reaches byte 0x13 records the _OST. */
    struct aml *of = aml_field("CPHR", AML_DWORD_ACC, AML_NOLOCK, AML_PRESERVE);
    aml_append(of, aml_reserved_field(8 * CPUHP_REG_OST_EVENT));
    aml_append(of, aml_named_field("COEV", 32));
    aml_append(of, aml_named_field("COST", 32));
    aml_append(sb, of);
    aml_append(sb, aml_mutex("CPLK", 0));

    struct aml *sta = aml_method("CSTA", 1, AML_SERIALIZED);
    aml_append(sta, aml_acquire(aml_name("CPLK"), 0xffff));
    aml_append(sta, aml_store(aml_arg(0), aml_name("CSEL")));
    aml_append(sta, aml_store(aml_zero(), aml_local(0)));
    struct aml *on = aml_if(aml_lequal(aml_name("CPEN"), aml_one()));
    aml_append(on, aml_store(aml_int(0x0f), aml_local(0)));
    aml_append(sta, on);
    aml_append(sta, aml_release(aml_name("CPLK")));
    aml_append(sta, aml_return(aml_local(0)));
    aml_append(sb, sta);

    struct aml *ej = aml_method("CEJM", 1, AML_SERIALIZED);
    aml_append(ej, aml_acquire(aml_name("CPLK"), 0xffff));
    aml_append(ej, aml_store(aml_arg(0), aml_name("CSEL")));
    aml_append(ej, aml_store(aml_one(), aml_name("CEJ0")));
    aml_append(ej, aml_release(aml_name("CPLK")));
    aml_append(sb, ej);

    /* COSM (index, event, status): a CPU's _OST, into the OST registers. */
    struct aml *ost = aml_method("COSM", 3, AML_SERIALIZED);
    aml_append(ost, aml_acquire(aml_name("CPLK"), 0xffff));
    aml_append(ost, aml_store(aml_arg(0), aml_name("CSEL")));
    aml_append(ost, aml_store(aml_arg(1), aml_name("COEV")));
    aml_append(ost, aml_store(aml_arg(2), aml_name("COST")));
    aml_append(ost, aml_release(aml_name("CPLK")));
    aml_append(sb, ost);

    /* CNTF (index, code): Notify the CPU device with that index. */
    struct aml *ntf = aml_method("CNTF", 2, AML_NOT_SERIALIZED);
    for (unsigned i = 0; i < max; i++) {
        char name[5];
        cpu_name(name, i);
        struct aml *hit = aml_if(aml_lequal(aml_arg(0), aml_int(i)));
        aml_append(hit, aml_notify(aml_name(name), aml_arg(1)));
        aml_append(ntf, hit);
    }
    aml_append(sb, ntf);

    /* CSCN: every CPU with an event gets its Notify (1: device check, a CPU
     * to add; 3: eject request), and the event is acknowledged. */
    struct aml *scn = aml_method("CSCN", 0, AML_SERIALIZED);
    aml_append(scn, aml_acquire(aml_name("CPLK"), 0xffff));
    aml_append(scn, aml_store(aml_zero(), aml_local(0)));
    struct aml *loop = aml_while(aml_lless(aml_local(0), aml_int(max)));
    aml_append(loop, aml_store(aml_local(0), aml_name("CSEL")));
    struct aml *ins = aml_if(aml_lequal(aml_name("CINS"), aml_one()));
    aml_append(ins, aml_call("CNTF", aml_local(0), aml_one(), NULL));
    aml_append(ins, aml_store(aml_one(), aml_name("CINS")));
    aml_append(loop, ins);
    struct aml *rmv = aml_if(aml_lequal(aml_name("CRMV"), aml_one()));
    aml_append(rmv, aml_call("CNTF", aml_local(0), aml_int(3), NULL));
    aml_append(rmv, aml_store(aml_one(), aml_name("CRMV")));
    aml_append(loop, rmv);
    aml_append(loop, aml_increment(aml_local(0)));
    aml_append(scn, loop);
    aml_append(scn, aml_release(aml_name("CPLK")));
    aml_append(sb, scn);

    for (unsigned i = 0; i < max; i++) {
        char name[5];
        cpu_name(name, i);
        struct aml *d = aml_device(name);
        aml_append(d, aml_name_decl("_HID", aml_string("ACPI0007")));
        aml_append(d, aml_name_decl("_UID", aml_int(i)));
        struct aml *s = aml_method("_STA", 0, AML_NOT_SERIALIZED);
        aml_append(s, aml_return(aml_call("CSTA", aml_int(i), NULL)));
        aml_append(d, s);
        /* Enabled, whatever the MADT said at boot: Linux maps a CPU it
         * hot-adds from the _MAT entry, and only an enabled one. */
        uint8_t mat[8];
        madt_lapic(mat, i, MADT_LAPIC_ENABLED);
        aml_append(d, aml_name_decl("_MAT", aml_buffer(mat, sizeof(mat))));
        /* _OST (source event, status code, buffer): Linux reports how it
         * handled each Notify (ACPI 6.3.5); the host emits ACPI_DEVICE_OST. */
        struct aml *o = aml_method("_OST", 3, AML_NOT_SERIALIZED);
        aml_append(o, aml_call("COSM", aml_int(i), aml_arg(0), aml_arg(1), NULL));
        aml_append(d, o);
        if (i >= c->nr_cpus_boot) {
            struct aml *e = aml_method("_EJ0", 1, AML_NOT_SERIALIZED);
            aml_append(e, aml_call("CEJM", aml_int(i), NULL));
            aml_append(d, e);
        }
        aml_append(sb, d);
    }
}

static GByteArray *build_mcfg(void)
{
    GByteArray *t = table_new("MCFG", MCFG_REVISION);
    put_le(t, 0, 8);
    put_le(t, LAYOUT_PCIE_ECAM_START, 8);
    put_le(t, 0, 2);                        /* PCI segment group */
    put_le(t, 0, 1);                        /* start bus */
    put_le(t, MCFG_ECAM_BUSES - 1, 1);      /* end bus */
    put_le(t, 0, 4);
    return t;
}

/* Grants OSC_GRANTED of what the OS asks for, and says so when it masked
 * some of it (the OS then asks again for exactly what it was given). */
static struct aml *build_pci_osc(void)
{
    /* ToUUID ("33DB4D5B-1FF7-401C-9657-7441C03DD766"), the PCI host bridge _OSC. */
    static const uint8_t pci_uuid[16] = { 0x5b, 0x4d, 0xdb, 0x33, 0xf7, 0x1f, 0x1c, 0x40,
                                          0x96, 0x57, 0x74, 0x41, 0xc0, 0x3d, 0xd7, 0x66 };
    struct aml *m = aml_method("_OSC", 4, AML_NOT_SERIALIZED);
    aml_append(m, aml_create_dword_field(aml_arg(3), aml_zero(), "CDW1"));
    struct aml *pci = aml_if(aml_lequal(aml_arg(0), aml_buffer(pci_uuid, sizeof(pci_uuid))));
    aml_append(pci, aml_create_dword_field(aml_arg(3), aml_int(8), "CDW3"));
    aml_append(pci, aml_and(aml_name("CDW3"), aml_int(OSC_GRANTED), aml_local(0)));
    struct aml *rev = aml_if(aml_lnot(aml_lequal(aml_arg(1), aml_one())));
    aml_append(rev, aml_or(aml_name("CDW1"), aml_int(OSC_ERR_REVISION), aml_name("CDW1")));
    aml_append(pci, rev);
    struct aml *masked = aml_if(aml_lnot(aml_lequal(aml_name("CDW3"), aml_local(0))));
    aml_append(masked, aml_or(aml_name("CDW1"), aml_int(OSC_ERR_MASKED), aml_name("CDW1")));
    aml_append(pci, masked);
    aml_append(pci, aml_store(aml_local(0), aml_name("CDW3")));
    aml_append(m, pci);
    struct aml *other = aml_else();
    aml_append(other, aml_or(aml_name("CDW1"), aml_int(OSC_ERR_UUID), aml_name("CDW1")));
    aml_append(m, other);
    aml_append(m, aml_return(aml_arg(3)));
    return m;
}

/* The PCIe host bridge (PNP0A08, compatible with PNP0A03): segment 0, the
 * ECAM's bus range, the config ports, and the windows BARs may use. */
static struct aml *build_pci0(const struct acpi_config *c)
{
    struct aml *d = aml_device("PCI0");
    aml_append(d, aml_name_decl("_HID", aml_eisaid("PNP0A08")));
    aml_append(d, aml_name_decl("_CID", aml_eisaid("PNP0A03")));
    aml_append(d, aml_name_decl("_SEG", aml_zero()));
    aml_append(d, aml_name_decl("_BBN", aml_zero()));
    aml_append(d, aml_name_decl("_UID", aml_zero()));
    struct aml *crs = aml_resource_template();
    aml_append(crs, aml_word_bus_number(0, MCFG_ECAM_BUSES - 1));
    aml_append(crs, aml_io(0xcf8, 0xcf8, 1, 8));
    aml_append(crs, aml_word_io(LAYOUT_PCI_IO_START, LAYOUT_PCI_IO_START + LAYOUT_PCI_IO_SIZE - 1));
    aml_append(crs, aml_dword_memory(LAYOUT_PCI_MMIO32_START,
                                     LAYOUT_PCI_MMIO32_START + LAYOUT_PCI_MMIO32_SIZE - 1, false));
    if (c->pci_mmio64_size)
        aml_append(crs, aml_qword_memory(c->pci_mmio64_base, c->pci_mmio64_base + c->pci_mmio64_size - 1, true));
    aml_append(d, aml_name_decl("_CRS", crs));
    aml_append(d, build_pci_osc());
    acpi_pcihp_build_aml(d, c->pci_hotplug_slots);
    return d;
}

static GByteArray *build_dsdt(const struct acpi_config *c)
{
    GByteArray *t = table_new("DSDT", DSDT_REVISION);
    struct aml *top = aml_list();
    /* \_S5 first: guests that look for it by scanning the table (the
     * guest-tests runtime; small firmware) find it at once, not after the
     * hotplug slots and CPU devices (2.7 KiB; 120 ms of scan at kvm_pvm's
     * instruction-emulation speed). The order of a DSDT's objects carries no
     * meaning for an AML interpreter. */
    struct aml *s5 = aml_package();
    aml_append(s5, aml_int(ACPI_S5_SLP_TYP));
    for (int i = 0; i < 3; i++)
        aml_append(s5, aml_zero());
    aml_append(top, aml_name_decl("\\_S5", s5));

    struct aml *sb = aml_scope("\\_SB");
    if (c->serial)
        aml_append(sb, build_com1());
    aml_append(sb, build_rtc());
    aml_append(sb, build_pwrb());
    aml_append(sb, build_ged(c));
    if (cpu_hotplug(c))
        build_cpus(sb, c);
    if (c->pci)
        aml_append(sb, build_pci0(c));
    aml_append(top, sb);
    aml_serialize(t, top);
    return t;
}

GByteArray *acpi_build_tables(const struct acpi_config *c, uint64_t base)
{
    GByteArray *dsdt = build_dsdt(c);
    GByteArray *madt = build_madt(c);
    GByteArray *mcfg = c->pci ? build_mcfg() : NULL;
    table_finish(dsdt);
    table_finish(madt);
    if (mcfg)
        table_finish(mcfg);

    /* Layout: RSDP, XSDT (two or three entries), FADT, MADT, DSDT, MCFG. */
    unsigned nr_entries = mcfg ? 3 : 2;
    size_t xsdt_off = align_up(RSDP_LEN);
    size_t fadt_off = align_up(xsdt_off + HDR_LEN + nr_entries * 8);
    size_t madt_off = align_up(fadt_off + FADT_LEN);
    size_t dsdt_off = align_up(madt_off + madt->len);
    size_t mcfg_off = align_up(dsdt_off + dsdt->len);

    GByteArray *fadt = build_fadt(base + dsdt_off);
    table_finish(fadt);
    GByteArray *xsdt = table_new("XSDT", XSDT_REVISION);
    put_le(xsdt, base + fadt_off, 8);
    put_le(xsdt, base + madt_off, 8);
    if (mcfg)
        put_le(xsdt, base + mcfg_off, 8);
    table_finish(xsdt);

    GByteArray *out = g_byte_array_new();
    g_byte_array_set_size(out, RSDP_LEN);
    uint8_t *r = out->data;
    memset(r, 0, RSDP_LEN);
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, ACPI_OEM_ID, 6);
    r[15] = RSDP_REVISION;
    put_at(out, 16, 0, 4);          /* no RSDT: XSDT only */
    put_at(out, 20, RSDP_LEN, 4);
    put_at(out, 24, base + xsdt_off, 8);
    r[8] = checksum(r, 20);
    r[32] = checksum(r, RSDP_LEN);

    table_place(out, xsdt, xsdt_off);
    table_place(out, fadt, fadt_off);
    table_place(out, madt, madt_off);
    table_place(out, dsdt, dsdt_off);
    if (mcfg)
        table_place(out, mcfg, mcfg_off);
    return out;
}

int acpi_install(struct guest_memory *gm, const struct acpi_config *c, uint64_t *rsdp_gpa, GError **err)
{
    g_autoptr(GByteArray) t = acpi_build_tables(c, LAYOUT_ACPI_START);
    if (t->len > LAYOUT_ACPI_END - LAYOUT_ACPI_START) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOSPC,
                    "ACPI tables (%u bytes) do not fit in the %llu-byte ACPI window at 0x%llx; use fewer vCPUs",
                    t->len, LAYOUT_ACPI_END - LAYOUT_ACPI_START, LAYOUT_ACPI_START);
        return -ENOSPC;
    }
    int r = guest_memory_write(gm, LAYOUT_ACPI_START, t->data, t->len);
    if (r < 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAULT,
                    "cannot write ACPI tables at 0x%llx: guest RAM does not cover it; give the guest more memory",
                    LAYOUT_ACPI_START);
        return r;
    }
    *rsdp_gpa = LAYOUT_ACPI_START;
    return 0;
}
