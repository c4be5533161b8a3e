/* CPUID policy: what each vCPU sees, built from KVM_GET_SUPPORTED_CPUID.
 *
 * Topology: one socket, one thread per core, `nr_cpus_max` cores; APIC ID of
 * vCPU i is i. Leaves 0x1, 0x4, 0xB, 0x1F, 0x8000_0008, 0x8000_001E agree on it.
 * KVM paravirt leaves 0x4000_0000.. are present ("KVMKVMKVM").
 * CPU_MODEL_BASELINE hides what a migration target may lack and what KVM's
 * instruction emulator cannot run: XSAVE/OSXSAVE and leaf 0xD, AVX*, FMA, F16C,
 * CMPXCHG16B, SSE3 and later SSE, AES/PCLMUL/SHA, MOVBE, RDRAND/RDSEED. */
#ifndef ARCH_X86_CPUID_H
#define ARCH_X86_CPUID_H

#include <glib.h>
#include <stdbool.h>
#include <linux/kvm.h>
#include <stdint.h>

#include "vmm/config.h"

#define CPUID_MAX_ENTRIES 256

/* KVM_GET_SUPPORTED_CPUID (less what $VMM_DEBUG_CPUID_HIDE hides). NULL
 * with *err on failure. g_free the result. */
struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd, GError **err);

/* The table for vCPU `index`. Pure: unit tests feed it a fake `supported`.
 * SVM/VMX and leaf 0x8000_000A stay hidden. */
struct kvm_cpuid2 *cpuid_build(const struct kvm_cpuid2 *supported, enum cpu_model model, unsigned index,
                               unsigned nr_cpus_max);

/* The same; with `nested`, the SVM bit and leaf 0x8000_000A (AMD) or the VMX
 * bit (Intel) pass through as `supported` lists them. */
struct kvm_cpuid2 *cpuid_build_nested(const struct kvm_cpuid2 *supported, enum cpu_model model, unsigned index,
                                      unsigned nr_cpus_max, bool nested);

/* Whether KVM offers SVM or VMX to guests: it does only when its module was
 * loaded with nested=1. */
bool cpuid_host_nests(const struct kvm_cpuid2 *supported);

/* Clears SVM and VMX from a supported table, so that nothing built from it
 * offers nesting. */
void cpuid_hide_nested(struct kvm_cpuid2 *supported);

/* Feature bits the vCPU reports (`kept`, read back with KVM_GET_CPUID2)
 * that the table vmm set (`set`) does not: a KVM may force features on
 * that guests see anyway (a kvm_pvm host shows the CPU's SSE3..AVX, which
 * its guests run natively). Looks at leaf 1 ECX/EDX, 7.0 EBX/ECX/EDX and
 * 0x8000_0001 ECX/EDX; the bits KVM keeps in step with guest state at run
 * time (1.ECX OSXSAVE, 1.EDX APIC) do not count. Returns a description
 * such as "1.ECX 0x14000201, 7.0.EBX 0x20", or NULL when nothing was added.
 * g_free the result. */
char *cpuid_added_features(struct kvm_cpuid2 *set, struct kvm_cpuid2 *kept);

/* The table of vCPU 0 (cpuid_build's) turned into vCPU `index`'s: the
 * APIC ID fields (leaf 1 EBX[31:24], leaves 0xB/0x1F EDX, AMD's
 * 0x8000_001E EAX/EBX) are rewritten, nothing else differs between vCPUs.
 * A restored or migrated machine keeps the table its source gave vCPU 0 and
 * gives every vCPU, hot-added ones too, this from it. */
void cpuid_set_apic_id(struct kvm_cpuid2 *t, unsigned index);

/* The feature bits of `guest` (the table a source gave its vCPU 0) that
 * `host` (the table this host would give it: cpuid_build of this KVM's
 * supported table with the same model, CPU count and nesting) lacks, as one
 * line such as "leaf 0x1 ECX bit 23, leaf 0x7.0 EBX bits 5,8", or a
 * different vendor ("vendor GenuineIntel, this host AuthenticAMD"). Looks at
 * the vendor and at leaf 1 ECX/EDX, 6 EAX, 7.0 EBX/ECX/EDX, 7.1 EAX, 0xD.0
 * EAX/EDX and 0xD.1 EAX (XSAVE components and instructions), 0x4000_0001
 * EAX (KVM's paravirt features), 0x8000_0001 ECX/EDX, 0x8000_0007 EDX and
 * 0x8000_0008 EBX; not at bits KVM keeps in step with guest state (OSXSAVE,
 * OSPKE, APIC) nor at the hypervisor and topology bits vmm sets. NULL when
 * `host` can give everything. g_free the result. */
char *cpuid_missing_features(struct kvm_cpuid2 *guest, struct kvm_cpuid2 *host);

/* A debugging aid that makes this host look older (tests of the check
 * above): `spec` is LEAF[.SUBLEAF].REG=MASK[,...] (REG eax..edx, numbers in
 * C syntax), e.g. "0x80000001.edx=0x8000000": those bits are cleared from
 * `supported`. cpuid_get_supported applies $VMM_DEBUG_CPUID_HIDE this way.
 * -1 with *err (one line) on a malformed spec. */
int cpuid_debug_hide(struct kvm_cpuid2 *supported, const char *spec, GError **err);

/* Looks up (function, index); NULL when absent. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index);

#endif
