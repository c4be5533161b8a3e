#include "arch/x86/cpuid.h"
struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd, GError **err) { return g_malloc0(sizeof(struct kvm_cpuid2)); }
struct kvm_cpuid2 *cpuid_build(const struct kvm_cpuid2 *s, enum cpu_model m, unsigned i, unsigned n) { return g_malloc0(sizeof(struct kvm_cpuid2)); }
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t f, uint32_t i) { return NULL; }
