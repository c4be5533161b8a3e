/* cpuid: what the guest sees through the CPUID instruction.
 *   cpus=N       leaf 0xB reports N logical processors at the core level and
 *                the BSP's x2APIC ID 0; leaf 1's initial APIC ID is 0
 *   model=host|baseline
 *                baseline: SSE3, SSSE3, CMPXCHG16B, SSE4.1/4.2, XSAVE, OSXSAVE,
 *                AVX (leaf 1 ECX) and AVX2/AVX-512F (leaf 7 EBX) read as 0, unless
 *                hides=0: the host's KVM forces them on (vmm warns), then only
 *                CMPXCHG16B, which KVM does take from vmm's table, is checked
 *   kvm=1        the KVM signature at 0x40000000 with leaf 0x40000001
 *   vmx=0        VMX (leaf 1 ECX bit 5) and SVM (0x80000001 ECX bit 2) read as 0 */
#include "rt.h"

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

#define B(n) (1u << (n))

int main(void)
{
    uint32_t r[4];
    char model[16] = "host";
    cmdline_get("model", model, sizeof(model));
    unsigned cpus = (unsigned)cmdline_get_u64("cpus", 1);
    bool baseline = model[0] == 'b';

    plan(6);
    cpuid(0x40000000, 0, r);
    char sig[13];
    memcpy(sig, &r[1], 4);
    memcpy(sig + 4, &r[2], 4);
    memcpy(sig + 8, &r[3], 4);
    sig[12] = 0;
    ok(!memcmp(sig, "KVMKVMKVM\0\0\0", 12) && r[0] >= 0x40000001, "hypervisor leaf: \"%s\", max 0x%x", sig, r[0]);

    cpuid(1, 0, r);
    ok(r[1] >> 24 == 0, "leaf 1: initial APIC ID %u", r[1] >> 24);
    uint32_t ecx1 = r[2];

    cpuid(0, 0, r);
    uint32_t max = r[0];
    unsigned logical = 0, x2id = ~0u;
    if (max >= 0xb) {
        cpuid(0xb, 1, r);
        logical = r[1] & 0xffff;
        x2id = r[3];
    }
    ok(logical == cpus && x2id == 0, "leaf 0xB: %u logical processors (want %u), x2APIC ID %u", logical, cpus,
       x2id);

    const uint32_t hidden1 = B(0) | B(9) | B(13) | B(19) | B(20) | B(26) | B(27) | B(28);
    uint32_t ebx7 = 0;
    if (max >= 7) {
        cpuid(7, 0, r);
        ebx7 = r[1];
    }
    if (baseline && cmdline_get_u64("hides", 1))
        ok(!(ecx1 & hidden1) && !(ebx7 & (B(5) | B(16))),
           "baseline hides SSE3+/CX16/XSAVE/AVX: leaf 1 ECX 0x%08x, leaf 7 EBX 0x%08x", ecx1, ebx7);
    else if (baseline)
        ok(!(ecx1 & B(13)), "baseline hides CMPXCHG16B (host KVM forces the rest on: leaf 1 ECX 0x%08x)", ecx1);
    else
        ok(true, "host model: leaf 1 ECX 0x%08x, leaf 7 EBX 0x%08x", ecx1, ebx7);

    cpuid(0x80000000, 0, r);
    uint32_t ecx81 = 0;
    if (r[0] >= 0x80000001) {
        cpuid(0x80000001, 0, r);
        ecx81 = r[2];
    }
    bool want_virt = cmdline_get_u64("vmx", 0) != 0;
    bool virt = (ecx1 & B(5)) || (ecx81 & B(2));
    ok(virt == want_virt, "VMX/SVM %s (want %s)", virt ? "exposed" : "hidden", want_virt ? "exposed" : "hidden");

    cpuid(0x80000008, 0, r);
    ok((r[0] & 0xff) >= 36 && (r[0] & 0xff) <= 52, "physical address bits %u", r[0] & 0xff);
    done();
}
