/* /dev/kvm: opening it and checking that it offers what vmm needs. */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <glib.h>
#include <stdbool.h>

#include "vmm/config.h"

struct kvm_caps {
    int max_vcpus;              /* KVM_CAP_MAX_VCPUS (or NR_VCPUS) */
    bool split_irqchip;         /* KVM_CAP_SPLIT_IRQCHIP */
    bool immediate_exit;        /* KVM_CAP_IMMEDIATE_EXIT */
    bool nested_state;          /* KVM_CAP_NESTED_STATE > 0 */
    int vcpu_mmap_size;
};

/* Opens path (normally "/dev/kvm") and checks the API version and the
 * extensions vmm cannot do without. Returns the fd or -1 with *err set to a
 * line saying what is missing and what to do. */
int kvm_open(const char *path, struct kvm_caps *caps, GError **err);

/* Decides whether the guest gets nested virtualization. The host can nest
 * when KVM's supported CPUID lists SVM/VMX (`cpuid_nests`), the kvm_amd or
 * kvm_intel `nested` module parameter is set and KVM_CAP_NESTED_STATE is
 * offered. NESTED_AUTO follows the host; NESTED_ON where the host cannot nest
 * fails with *err (CONFIG_ERROR) saying why. Returns 0 with *out set, or -1. */
int kvm_nested_resolve(enum nested_mode mode, const struct kvm_caps *caps, bool cpuid_nests, bool *out,
                       GError **err);

#endif
