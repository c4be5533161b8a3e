/* smp: starts every AP the MADT lists with INIT-SIPI-SIPI. The real-mode
 * trampoline goes to a free page below 1 MiB picked from the memory map;
 * each AP switches to long mode and checks in with its APIC ID. */
#include "rt.h"

#define ICR_INIT    0x00004500u     /* INIT, level assert */
#define ICR_SIPI    0x00004600u     /* start-up, vector = page number */
#define MSR_EFER    0xc0000080
#define EFER_LMA    (1u << 10)
#define PAGE        0x1000ull

static volatile uint32_t ap_count, ap_long;
static volatile uint8_t seen[256];

void ap_main(void)
{
    uint8_t id = apic_id();
    if (rdmsr(MSR_EFER) & EFER_LMA)
        __atomic_fetch_add(&ap_long, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&seen[id], 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&ap_count, 1, __ATOMIC_SEQ_CST);
    halt_forever();
}


int main(void)
{
    unsigned want = (unsigned)cmdline_get_u64("cpus", 0);
    uint8_t ids[AP_MAX];

    plan(6);
    unsigned n = acpi_madt_cpus(ids, AP_MAX);
    ok(want && n == want, "MADT lists %u enabled CPUs, cpus=%u", n, want);
    uint64_t page = boot_free_low_page();
    size_t len = (size_t)(ap_trampoline_end - ap_trampoline_start);
    ok(page && len <= PAGE, "trampoline (%u bytes) at 0x%lx, free RAM by the memory map", (unsigned)len, page);
    if (!page || n > AP_MAX)
        done();
    memcpy((void *)(uintptr_t)page, ap_trampoline_start, len);

    apic_enable();
    uint8_t bsp = apic_id();
    unsigned started = 0;
    for (unsigned i = 0; i < n; i++) {
        if (ids[i] == bsp)
            continue;
        apic_send_ipi(ids[i], ICR_INIT);
        apic_send_ipi(ids[i], ICR_SIPI | (uint32_t)(page >> 12));
        apic_send_ipi(ids[i], ICR_SIPI | (uint32_t)(page >> 12));
        started++;
    }
    /* A missing AP fails the test instead of hanging it: wait ~2^36 cycles. */
    uint64_t t0 = rdtsc();
    while (ap_count < started && rdtsc() - t0 < (1ull << 36))
        cpu_relax();
    ok(ap_count == n - 1, "%u of %u APs checked in", ap_count, n - 1);
    ok(ap_long == ap_count, "%u APs ran in long mode (EFER.LMA)", ap_long);
    bool each = true;
    for (unsigned i = 0; i < n; i++)
        if (ids[i] != bsp && seen[ids[i]] != 1)
            each = false;
    ok(each, "every AP APIC ID from the MADT checked in exactly once");
    ok(seen[bsp] == 0 && ap_count + 1 == want, "BSP (APIC ID %u) + %u APs = cpus=%u", bsp, ap_count, want);
    done();
}
