/* cpuhp: ACPI CPU hotplug as a guest meets it, with the host's QMP client
 * (the runner's qmp-poke) acting on cue. cmdline: boot=B max=M add=I.
 *   - the MADT has M local APICs, B enabled and the rest online-capable;
 *   - vmm's CPU hotplug controller (0xcd8, devices/cpu_hotplug.h) counts M
 *     and shows the boot CPUs present;
 *   - "# cpuhp: ready for add": the host's device_add of CPU I raises GED
 *     event bit 2 and the controller shows I present with an insert event;
 *     the guest acknowledges it, starts the new CPU with INIT-SIPI-SIPI and
 *     it checks in from long mode;
 *   - "# cpuhp: ready for remove": device_del raises a remove event; the
 *     guest cannot eject a CPU the host did not offer, and ejecting I makes
 *     it absent at once;
 *   - after the insert, the remove request and the eject the guest writes
 *     the OST registers as the DSDT's _OST would (Linux: event 1 status 0;
 *     event 3 status 0x84, ejection in progress; event 0x103 status 0, as
 *     Linux reports an eject it started itself), which
 *     the runner sees as ACPI_DEVICE_OST events and in query-acpi-ospm-status;
 *   - the host plugs I in again (the same KVM vCPU, kept by vmm): the CPU
 *     starts and checks in a second time, in xAPIC mode with its own APIC
 *     ID although it had switched to x2APIC (where the host has it) before
 *     it was ejected.
 *   - with reset=1, the guest then resets: the next boot has CPU I from
 *     power-on (vmm keeps hot-added CPUs across a reset, as QEMU does).
 * Polled: the GED interrupt is not routed (its latch is read instead). */
#include "rt.h"

#define PORT_GED        0x604
#define GED_CPU_HOTPLUG (1u << 2)
#define CPUHP           0xcd8
#define CPUHP_SEL       (CPUHP + 0)
#define CPUHP_STS       (CPUHP + 4)
#define CPUHP_COUNT     (CPUHP + 8)
#define CPUHP_OST_EVENT (CPUHP + 0x0c)
#define CPUHP_OST_STATUS (CPUHP + 0x10)
#define STS_ENABLED     (1u << 0)
#define STS_INSERT      (1u << 1)
#define STS_REMOVE      (1u << 2)
#define CMD_EJECT       (1u << 3)

#define ICR_INIT    0x00004500u
#define ICR_SIPI    0x00004600u
#define MSR_EFER    0xc0000080
#define MSR_APIC_BASE 0x1b
#define APIC_BASE_EXTD (1u << 10)
#define EFER_LMA    (1u << 10)
#define PAGE        0x1000ull
#define WAIT_CYCLES (1ull << 37)    /* for the host, or an AP: fail instead of hanging */

static volatile uint32_t ap_count, ap_long;
static volatile uint8_t seen[256];
static uint32_t ged_seen;

static volatile uint32_t ap_x2apic;

static bool has_x2apic(void)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    return c & (1u << 21);
}

/* An AP checks in, then leaves its LAPIC in x2APIC mode before it halts,
 * as Linux does on an offlined CPU: a CPU plugged in again must come back
 * as a new one would, in xAPIC mode with its APIC ID (else the BSP's
 * INIT/SIPI to that ID reaches nobody). */
void ap_main(void)
{
    uint8_t id = apic_id();
    if (rdmsr(MSR_EFER) & EFER_LMA)
        __atomic_fetch_add(&ap_long, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&seen[id], 1, __ATOMIC_SEQ_CST);
    if (has_x2apic()) {
        wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EXTD);
        if (rdmsr(MSR_APIC_BASE) & APIC_BASE_EXTD)
            __atomic_fetch_add(&ap_x2apic, 1, __ATOMIC_SEQ_CST);
    }
    __atomic_fetch_add(&ap_count, 1, __ATOMIC_SEQ_CST);
    halt_forever();
}

static uint8_t status(uint32_t cpu)
{
    outl(CPUHP_SEL, cpu);
    return inb(CPUHP_STS);
}

/* What the DSDT's _OST (COSM) writes: selector, event, then status. */
static void ost(uint32_t cpu, uint32_t event, uint32_t st)
{
    outl(CPUHP_SEL, cpu);
    outl(CPUHP_OST_EVENT, event);
    outl(CPUHP_OST_STATUS, st);
}

static void command(uint32_t cpu, uint8_t v)
{
    outl(CPUHP_SEL, cpu);
    outb(CPUHP_STS, v);
}

/* Waits until CPU `cpu` shows `bit`, collecting GED events meanwhile. */
static bool wait_status(uint32_t cpu, uint8_t bit)
{
    uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < WAIT_CYCLES) {
        ged_seen |= inl(PORT_GED);
        if (status(cpu) & bit)
            return true;
        for (int i = 0; i < 1000; i++)
            cpu_relax();
    }
    return false;
}

/* The MADT's local APIC entries: how many, and how many enabled /
 * online-capable (flags bit 0 / bit 1). */
static void madt_lapics(unsigned *total, unsigned *enabled, unsigned *capable)
{
    *total = *enabled = *capable = 0;
    const struct acpi_header *h = acpi_find("APIC", 0);
    if (!h)
        return;
    const uint8_t *p = (const uint8_t *)h, *end = p + h->length;
    for (const uint8_t *e = p + 44; e + 2 <= end && e[1] >= 2; e += e[1]) {
        if (e[0] != 0 || e[1] != 8)
            continue;
        uint32_t flags = (uint32_t)e[4] | (uint32_t)e[5] << 8;
        (*total)++;
        *enabled += flags & 1;
        *capable += (flags >> 1) & 1;
    }
}


/* INIT-SIPI-SIPI to APIC ID `id`; true once it has checked in `times` times. */
static bool start_ap(uint8_t id, uint64_t page, unsigned times)
{
    uint32_t before = ap_count;
    apic_send_ipi(id, ICR_INIT);
    apic_send_ipi(id, ICR_SIPI | (uint32_t)(page >> 12));
    apic_send_ipi(id, ICR_SIPI | (uint32_t)(page >> 12));
    uint64_t t0 = rdtsc();
    while (ap_count == before && rdtsc() - t0 < WAIT_CYCLES)
        cpu_relax();
    return ap_count == before + 1 && seen[id] == times;
}

/* After the reset (reset=1): CPU I is there from power-on, enabled in the
 * MADT, present in the controller without an event, and starts as any AP. */
static void after_reset(unsigned boot, unsigned max, unsigned add, uint64_t page)
{
    plan(3);
    unsigned total, enabled, capable;
    madt_lapics(&total, &enabled, &capable);
    ok(total == max && enabled == boot + 1 && capable == max - boot - 1,
       "after the reset: MADT has %u local APICs, %u enabled (boot=%u + CPU %u), %u online-capable", total, enabled,
       boot, add, capable);
    ok(status(add) == STS_ENABLED, "after the reset: CPU %u present without an event (0x%x)", add, status(add));
    ok(start_ap((uint8_t)add, page, 1), "after the reset: CPU %u started by INIT/SIPI", add);
    done();
}

/* serve=1 (tests/guest/cpuhp_cycles.sh): forever, start every CPU the host
 * plugs in and eject every CPU it asks to remove, one line for each. */
static void serve(unsigned boot, unsigned max, uint64_t page)
{
    unsigned up = 0, ejected = 0;
    printf("# cpuhp: serving\n");
    for (;;) {
        for (unsigned i = boot; i < max; i++) {
            uint8_t st = status(i);
            if (st & STS_INSERT) {
                command(i, STS_INSERT);
                ap_stack_next = 0;  /* the one AP before it was ejected: its stack is free */
                bool started = start_ap((uint8_t)i, page, seen[i] + 1u);
                printf("# cpuhp: CPU %u %s (%u)\n", i, started ? "up" : "did not start", started ? ++up : up);
            }
            if (st & STS_REMOVE) {
                command(i, STS_REMOVE);
                command(i, CMD_EJECT);
                printf("# cpuhp: CPU %u ejected (%u)\n", i, ++ejected);
            }
        }
        for (int k = 0; k < 1000; k++)
            cpu_relax();
    }
}

int main(void)
{
    unsigned boot = (unsigned)cmdline_get_u64("boot", 0), max = (unsigned)cmdline_get_u64("max", 0);
    unsigned add = (unsigned)cmdline_get_u64("add", 0);
    bool reset = cmdline_get_u64("reset", 0) == 1;
    uint64_t page = boot_free_low_page();
    size_t len = (size_t)(ap_trampoline_end - ap_trampoline_start);
    if (cmdline_get_u64("serve", 0) == 1 && page && len <= PAGE) {
        memcpy((void *)(uintptr_t)page, ap_trampoline_start, len);
        apic_enable();
        serve(boot, max, page);
    }
    if (page && len <= PAGE && add < max && status(add) == STS_ENABLED) {
        memcpy((void *)(uintptr_t)page, ap_trampoline_start, len);
        apic_enable();
        after_reset(boot, max, add, page);
    }
    /* With reset=1 the plan counts the tests of both boots (the runner
     * takes the first plan and counts every "ok" line). */
    plan(reset ? 18 + 3 : 18);

    unsigned total, enabled, capable;
    madt_lapics(&total, &enabled, &capable);
    ok(total == max && enabled == boot && capable == max - boot,
       "MADT: %u local APICs, %u enabled, %u online-capable (boot=%u max=%u)", total, enabled, capable, boot, max);
    ok(inl(CPUHP_COUNT) == max, "controller: %u possible CPUs", inl(CPUHP_COUNT));
    bool boot_ok = true;
    for (unsigned i = 0; i < max; i++)
        boot_ok &= status(i) == (i < boot ? STS_ENABLED : 0);
    ok(boot_ok && add >= boot && add < max, "controller: CPUs 0..%u present, none other; CPU %u to come", boot - 1,
       add);
    if (!page || len > PAGE || !boot_ok)
        done();
    memcpy((void *)(uintptr_t)page, ap_trampoline_start, len);
    apic_enable();
    inl(PORT_GED);  /* nothing latched before the host acts */

    printf("# cpuhp: ready for add\n");
    ok(wait_status(add, STS_INSERT), "CPU %u: insert event", add);
    ok(ged_seen & GED_CPU_HOTPLUG, "GED event bit 2 latched (events 0x%x)", ged_seen);
    ok(status(add) == (STS_ENABLED | STS_INSERT), "CPU %u: enabled with an insert event (0x%x)", add, status(add));
    command(add, STS_INSERT);
    ok(status(add) == STS_ENABLED, "CPU %u: event acknowledged, still enabled (0x%x)", add, status(add));
    ok(start_ap((uint8_t)add, page, 1) && ap_long == 1, "CPU %u started by INIT/SIPI and checked in from long mode",
       add);
    ost(add, 0x01, 0x00);   /* device check handled: success */
    diag("CPU %u %s x2APIC mode before it halted", add, ap_x2apic ? "left its LAPIC in" : "has no");

    ged_seen = 0;
    printf("# cpuhp: ready for remove\n");
    ok(wait_status(add, STS_REMOVE), "CPU %u: remove event", add);
    ok(ged_seen & GED_CPU_HOTPLUG, "GED event bit 2 latched again (events 0x%x)", ged_seen);
    command(add, STS_REMOVE);
    ost(add, 0x03, 0x84);   /* eject request: ejection in progress (Linux) */
    ok(status(add) == STS_ENABLED, "CPU %u: remove event acknowledged, still there until ejected (0x%x)", add,
       status(add));
    /* What the host did not offer cannot be ejected: the boot CPU, an absent one. */
    command(0, CMD_EJECT);
    command(add == max - 1 ? boot : max - 1, CMD_EJECT);
    ok(status(0) == STS_ENABLED, "boot CPU 0 refuses to be ejected (0x%x)", status(0));
    /* The AP is in cli; hlt: eject it. */
    command(add, CMD_EJECT);
    uint8_t after = status(add);
    ok(after == 0, "CPU %u: ejected, absent at once (0x%x)", add, after);
    ost(add, 0x103, 0x00);  /* eject processing done: success */
    uint32_t oev = (outl(CPUHP_SEL, add), inl(CPUHP_OST_EVENT));
    ok(oev == 0x103, "OST event register reads back 0x%x", oev);
    printf("# cpuhp: ejected\n");

    ok(wait_status(add, STS_INSERT), "CPU %u: plugged in again", add);
    command(add, STS_INSERT);
    ok(status(add) == STS_ENABLED, "CPU %u: enabled again (0x%x)", add, status(add));
    ok(start_ap((uint8_t)add, page, 2) && ap_long == 2, "CPU %u started again and checked in a second time", add);
    bool others = true;
    for (unsigned i = 0; i < 256; i++)
        if (i != add && seen[i])
            others = false;
    ok(others && ap_count == 2, "no other CPU ran (%u check-ins)", ap_count);
    if (reset && failures() == 0) {
        printf("# cpuhp: resetting\n");
        reset_acpi();
    }
    done();
}
