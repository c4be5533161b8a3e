/* The whole architectural state of one x86 vCPU as KVM holds it, for
 * snapshot/restore and migration: regs, sregs, FPU or XSAVE, XCRs, the MSRs
 * KVM lists for save/restore (KVM_GET_MSR_INDEX_LIST) and can read on this
 * vCPU, vCPU events, debug registers, LAPIC, MP state, and nested state when
 * KVM has it. What is optional is feature-detected (cpu_caps_probe).
 *
 * In the stream a vCPU is one section "vcpu" (CPU_STATE_VERSION): u32 index,
 * then records (u16 tag, u32 length, bytes: KVM's own structs, x86
 * little-endian), ended by tag 0. A reader refuses an unknown tag, a length
 * that is not its struct's, and a vCPU without its mandatory records. */
#ifndef VMM_CPU_STATE_H
#define VMM_CPU_STATE_H

#include <glib.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

struct state_writer;
struct state_reader;

#define CPU_STATE_VERSION 1
#define CPU_STATE_MAX_MSRS 1024u
#define CPU_STATE_MAX_BLOB (1u << 20)   /* XSAVE area, nested state */

/* What this KVM offers for vCPU state (one probe per VM). */
struct cpu_caps {
    uint32_t xsave_size;        /* KVM_CAP_XSAVE2 size, or 4096 with KVM_CAP_XSAVE, 0: FPU only */
    bool xsave2;                /* KVM_GET_XSAVE2 exists */
    bool xcrs;                  /* KVM_CAP_XCRS */
    bool debugregs;             /* KVM_CAP_DEBUGREGS */
    uint32_t nested_max;        /* KVM_CAP_NESTED_STATE (max size), 0: none */
    uint32_t nr_msrs;           /* KVM_GET_MSR_INDEX_LIST */
    uint32_t *msrs;
};

struct cpu_state {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    uint32_t xsave_size;        /* 0: fpu holds the FPU state */
    uint8_t *xsave;
    struct kvm_fpu fpu;
    bool has_xcrs;
    struct kvm_xcrs xcrs;
    uint32_t nr_msrs;
    struct kvm_msr_entry *msrs;
    struct kvm_vcpu_events events;
    bool has_debugregs;
    struct kvm_debugregs debugregs;
    struct kvm_lapic_state lapic;
    struct kvm_mp_state mp;
    uint32_t nested_size;       /* 0: none */
    uint8_t *nested;            /* struct kvm_nested_state + data */
};

int cpu_caps_probe(int kvm_fd, int vm_fd, struct cpu_caps *c, GError **err);
void cpu_caps_clear(struct cpu_caps *c);

/* Reads every piece from the vCPU (its thread must be out of KVM_RUN). MSRs
 * of the list that KVM refuses to read on this vCPU are left out. */
int cpu_state_get(int vcpu_fd, const struct cpu_caps *c, struct cpu_state *s, GError **err);
/* Writes it back in the order KVM needs (sregs before nested state, MSRs
 * before events, the LAPIC before the TSC deadline). An MSR KVM will not
 * set is read back: equal is fine, else a warning names it. */
int cpu_state_set(int vcpu_fd, const struct cpu_caps *c, const struct cpu_state *s, unsigned index,
                  GError **err);
void cpu_state_clear(struct cpu_state *s);

void cpu_state_save(struct state_writer *w, unsigned index, const struct cpu_state *s);
/* Opens the next "vcpu" section and fills *s (zeroed first). -1 with *err;
 * cpu_state_clear(s) either way. */
int cpu_state_load(struct state_reader *r, unsigned *index, struct cpu_state *s, GError **err);

#endif
