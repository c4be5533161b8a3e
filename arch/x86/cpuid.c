#include "arch/x86/cpuid.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define BIT(n) (1u << (n))

/* Leaf 1 */
#define L1_EBX_APIC_ID_SHIFT    24
#define L1_EBX_LOGICAL_SHIFT    16
#define L1_ECX_SSE3             BIT(0)
#define L1_ECX_PCLMULQDQ        BIT(1)
#define L1_ECX_DTES64           BIT(2)
#define L1_ECX_MONITOR          BIT(3)
#define L1_ECX_DSCPL            BIT(4)
#define L1_ECX_VMX              BIT(5)
#define L1_ECX_SMX              BIT(6)
#define L1_ECX_EST              BIT(7)
#define L1_ECX_TM2              BIT(8)
#define L1_ECX_SSSE3            BIT(9)
#define L1_ECX_FMA              BIT(12)
#define L1_ECX_CX16             BIT(13)
#define L1_ECX_XTPR             BIT(14)
#define L1_ECX_PDCM             BIT(15)
#define L1_ECX_SSE41            BIT(19)
#define L1_ECX_SSE42            BIT(20)
#define L1_ECX_MOVBE            BIT(22)
#define L1_ECX_POPCNT           BIT(23)
#define L1_ECX_AES              BIT(25)
#define L1_ECX_XSAVE            BIT(26)
#define L1_ECX_OSXSAVE          BIT(27)
#define L1_ECX_AVX              BIT(28)
#define L1_ECX_F16C             BIT(29)
#define L1_ECX_RDRAND           BIT(30)
#define L1_ECX_HYPERVISOR       BIT(31)
#define L1_EDX_HTT              BIT(28)

/* Leaf 7 subleaf 0 */
#define L7_EBX_FSGSBASE         BIT(0)
#define L7_EBX_SGX              BIT(2)
#define L7_EBX_SMEP             BIT(7)
#define L7_EBX_ERMS             BIT(9)
#define L7_EBX_SMAP             BIT(20)
#define L7_EBX_INTEL_PT         BIT(25)
#define L7_ECX_SGX_LC           BIT(30)
#define L7_EDX_MD_CLEAR         BIT(10)
#define L7_EDX_AMX_BF16         BIT(22)
#define L7_EDX_AMX_TILE         BIT(24)
#define L7_EDX_AMX_INT8         BIT(25)
#define L7_EDX_SPEC_CTRL        BIT(26)
#define L7_EDX_STIBP            BIT(27)
#define L7_EDX_FLUSH_L1D        BIT(28)
#define L7_EDX_ARCH_CAP         BIT(29)
#define L7_EDX_SSBD             BIT(31)

/* Leaf 0x8000_0001 ECX */
#define E1_ECX_CMP_LEGACY       BIT(1)
#define E1_ECX_SVM              BIT(2)
#define E1_ECX_ABM              BIT(5)
#define E1_ECX_SSE4A            BIT(6)
#define E1_ECX_MISALIGNSSE      BIT(7)
#define E1_ECX_IBS              BIT(10)
#define E1_ECX_XOP              BIT(11)
#define E1_ECX_SKINIT           BIT(12)
#define E1_ECX_WDT              BIT(13)
#define E1_ECX_LWP              BIT(15)
#define E1_ECX_FMA4             BIT(16)
#define E1_ECX_TBM              BIT(21)
#define E1_ECX_PERFCTR_CORE     BIT(23)
#define E1_ECX_PERFCTR_NB       BIT(24)
#define E1_ECX_MWAITX           BIT(29)

/* Leaf 0x8000_0008 EBX: the speculation-control bits (AMD) */
#define E8_EBX_SPEC_MASK        (BIT(12) | BIT(14) | BIT(15) | BIT(16) | BIT(17) | BIT(18) | BIT(24) | \
                                 BIT(25) | BIT(26))

/* Leaf 0x4000_0001 EAX (KVM_FEATURE_*) that need a VMM to implement something */
#define KVM_FEAT_MSI_EXT_DEST_ID    BIT(15)
#define KVM_FEAT_HC_MAP_GPA_RANGE   BIT(16)
#define KVM_FEAT_MIGRATION_CONTROL  BIT(17)
#define KVM_HINTS_REALTIME          BIT(0)

#define LEAF_TOPOLOGY           0xbu
#define LEAF_TOPOLOGY_V2        0x1fu
#define TOPO_LEVEL_SMT          1u
#define TOPO_LEVEL_CORE         2u
#define KVM_LEAF_SIGNATURE      0x40000000u
#define KVM_LEAF_FEATURES       0x40000001u
#define LEAF_EXT_MAX            0x80000000u

struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd, GError **err)
{
    for (uint32_t n = CPUID_MAX_ENTRIES; n <= 16 * CPUID_MAX_ENTRIES; n *= 2) {
        struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + n * sizeof(c->entries[0]));
        c->nent = n;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            const char *hide = getenv("VMM_DEBUG_CPUID_HIDE");
            if (hide && *hide && cpuid_debug_hide(c, hide, err) < 0) {
                g_free(c);
                return NULL;
            }
            return c;
        }
        int e = errno;
        g_free(c);
        if (e != E2BIG) {
            g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e),
                        "KVM_GET_SUPPORTED_CPUID failed: %s; check that /dev/kvm works on this host",
                        g_strerror(e));
            return NULL;
        }
    }
    g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                "KVM_GET_SUPPORTED_CPUID wants more than %u entries; this host kernel is not supported",
                16 * CPUID_MAX_ENTRIES);
    return NULL;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == function &&
            (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index))
            return e;
    }
    return NULL;
}

static bool is_vendor(const struct kvm_cpuid_entry2 *leaf0, const char id[12])
{
    uint32_t r[3];
    memcpy(r, id, 12);
    return leaf0 && leaf0->ebx == r[0] && leaf0->edx == r[1] && leaf0->ecx == r[2];
}

/* Bits needed to number `n` IDs: ceil(log2(n)). */
static unsigned id_bits(unsigned n)
{
    unsigned b = 0;
    while ((1u << b) < n)
        b++;
    return b;
}

/* Leaves that vmm leaves out whatever the host supports:
 * - SGX (0x12) needs EPC sections from the VMM; Intel PT (0x14) needs its
 *   MSRs saved and restored by the VMM; AMX (0x1D, 0x1E) needs the VMM to ask
 *   for the guest XSTATE permission first.
 * - 0x8000_000A describes SVM, kept only when nested virtualization is on;
 *   0x8000_001F describes SEV, which vmm does not do.
 * - Other paravirt leaves than KVM's two: vmm advertises no other hypervisor.
 * CPU_MODEL_BASELINE also drops XSAVE state (0xD), leaf 7's subleaves past 0,
 * and AVX10 (0x24). */
static bool leaf_dropped(uint32_t function, uint32_t index, enum cpu_model model, bool nested)
{
    if (function == 0x8000000a)
        return !nested;
    switch (function) {
    case 0x12: case 0x14: case 0x1d: case 0x1e:
    case 0x8000001f:
    case LEAF_TOPOLOGY: case LEAF_TOPOLOGY_V2:     /* rebuilt below */
        return true;
    }
    if (function >= 0x40000000u && function < LEAF_EXT_MAX)
        return function != KVM_LEAF_FEATURES;      /* the signature leaf is rebuilt */
    if (model == CPU_MODEL_BASELINE)
        return function == 0xd || function == 0x24 || (function == 7 && index != 0);
    return false;
}

static struct kvm_cpuid_entry2 *add(GArray *t, uint32_t function, uint32_t index, uint32_t flags)
{
    struct kvm_cpuid_entry2 e = { .function = function, .index = index, .flags = flags };
    g_array_append_val(t, e);
    return &g_array_index(t, struct kvm_cpuid_entry2, t->len - 1);
}

static struct kvm_cpuid_entry2 *find(GArray *t, uint32_t function, uint32_t index)
{
    for (guint i = 0; i < t->len; i++) {
        struct kvm_cpuid_entry2 *e = &g_array_index(t, struct kvm_cpuid_entry2, i);
        if (e->function == function && e->index == index)
            return e;
    }
    return NULL;
}

/* Leaves 0xB and 0x1F: an SMT level of one thread and a core level of
 * nr_cpus_max cores, then the invalid level that ends the enumeration. */
static void add_topology_leaf(GArray *t, uint32_t function, unsigned apic_id, unsigned nr_cpus_max)
{
    const uint32_t f = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    struct kvm_cpuid_entry2 *e = add(t, function, 0, f);
    e->eax = 0;
    e->ebx = 1;
    e->ecx = (TOPO_LEVEL_SMT << 8) | 0;
    e->edx = apic_id;
    e = add(t, function, 1, f);
    e->eax = id_bits(nr_cpus_max);
    e->ebx = nr_cpus_max;
    e->ecx = (TOPO_LEVEL_CORE << 8) | 1;
    e->edx = apic_id;
    e = add(t, function, 2, f);
    e->eax = 0;
    e->ebx = 0;
    e->ecx = 2;
    e->edx = apic_id;
}

static void apply_leaf1(struct kvm_cpuid_entry2 *e, enum cpu_model model, unsigned index, unsigned nr,
                        bool nested)
{
    uint32_t vmx = e->ecx & L1_ECX_VMX;
    e->ebx &= 0x0000ffffu;
    e->ebx |= (uint32_t)index << L1_EBX_APIC_ID_SHIFT;
    e->ebx |= (uint32_t)nr << L1_EBX_LOGICAL_SHIFT;
    if (nr > 1)
        e->edx |= L1_EDX_HTT;
    else
        e->edx &= ~L1_EDX_HTT;
    /* VMX only with nested virtualization on. MONITOR/MWAIT, the
     * debug-store, thermal and SMX bits are not emulated by vmm. */
    e->ecx &= ~(L1_ECX_VMX | L1_ECX_SMX | L1_ECX_MONITOR | L1_ECX_DTES64 | L1_ECX_DSCPL | L1_ECX_EST |
                L1_ECX_TM2 | L1_ECX_XTPR | L1_ECX_PDCM);
    e->ecx |= L1_ECX_HYPERVISOR;
    if (nested)
        e->ecx |= vmx;
    if (model == CPU_MODEL_BASELINE)
        e->ecx &= ~(L1_ECX_SSE3 | L1_ECX_PCLMULQDQ | L1_ECX_SSSE3 | L1_ECX_FMA | L1_ECX_CX16 | L1_ECX_SSE41 |
                    L1_ECX_SSE42 | L1_ECX_MOVBE | L1_ECX_POPCNT | L1_ECX_AES | L1_ECX_XSAVE |
                    L1_ECX_OSXSAVE | L1_ECX_AVX | L1_ECX_F16C | L1_ECX_RDRAND);
}

static void apply_leaf7(struct kvm_cpuid_entry2 *e, enum cpu_model model)
{
    e->ebx &= ~(L7_EBX_SGX | L7_EBX_INTEL_PT);
    e->ecx &= ~L7_ECX_SGX_LC;
    e->edx &= ~(L7_EDX_AMX_BF16 | L7_EDX_AMX_TILE | L7_EDX_AMX_INT8);
    if (model == CPU_MODEL_BASELINE) {
        /* Only system features and the speculation controls, which are MSR
         * interfaces KVM itself handles and guests need for mitigations. */
        e->eax = 0;     /* no subleaves past 0 */
        e->ebx &= L7_EBX_FSGSBASE | L7_EBX_SMEP | L7_EBX_SMAP | L7_EBX_ERMS;
        e->ecx = 0;
        e->edx &= L7_EDX_MD_CLEAR | L7_EDX_SPEC_CTRL | L7_EDX_STIBP | L7_EDX_FLUSH_L1D | L7_EDX_ARCH_CAP |
                  L7_EDX_SSBD;
    }
}

static void apply_ext1(struct kvm_cpuid_entry2 *e, enum cpu_model model, bool amd, unsigned nr, bool nested)
{
    /* SVM only with nested virtualization on. The others are profiling,
     * watchdog and MONITORX facilities vmm does not emulate. */
    uint32_t svm = e->ecx & E1_ECX_SVM;
    e->ecx &= ~(E1_ECX_SVM | E1_ECX_SKINIT | E1_ECX_IBS | E1_ECX_WDT | E1_ECX_PERFCTR_CORE | E1_ECX_PERFCTR_NB |
                E1_ECX_MWAITX | E1_ECX_LWP);
    if (nested)
        e->ecx |= svm;
    if (amd && nr > 1)
        e->ecx |= E1_ECX_CMP_LEGACY;
    else
        e->ecx &= ~E1_ECX_CMP_LEGACY;
    if (model == CPU_MODEL_BASELINE)
        e->ecx &= ~(E1_ECX_ABM | E1_ECX_SSE4A | E1_ECX_MISALIGNSSE | E1_ECX_XOP | E1_ECX_FMA4 | E1_ECX_TBM);
}

static int entry_cmp(const void *a, const void *b)
{
    const struct kvm_cpuid_entry2 *x = a, *y = b;
    if (x->function != y->function)
        return x->function < y->function ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

bool cpuid_host_nests(const struct kvm_cpuid2 *supported)
{
    for (uint32_t i = 0; i < supported->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &supported->entries[i];
        if ((e->function == 1 && (e->ecx & L1_ECX_VMX)) || (e->function == 0x80000001 && (e->ecx & E1_ECX_SVM)))
            return true;
    }
    return false;
}

void cpuid_hide_nested(struct kvm_cpuid2 *supported)
{
    for (uint32_t i = 0; i < supported->nent; i++) {
        struct kvm_cpuid_entry2 *e = &supported->entries[i];
        if (e->function == 1)
            e->ecx &= ~L1_ECX_VMX;
        else if (e->function == 0x80000001)
            e->ecx &= ~E1_ECX_SVM;
    }
}

struct kvm_cpuid2 *cpuid_build(const struct kvm_cpuid2 *supported, enum cpu_model model, unsigned index,
                               unsigned nr_cpus_max)
{
    return cpuid_build_nested(supported, model, index, nr_cpus_max, false);
}

struct kvm_cpuid2 *cpuid_build_nested(const struct kvm_cpuid2 *supported, enum cpu_model model, unsigned index,
                                      unsigned nr_cpus_max, bool nested)
{
    g_assert(nr_cpus_max >= 1 && nr_cpus_max <= VMM_MAX_CPUS && index < nr_cpus_max);
    g_autoptr(GArray) t = g_array_new(FALSE, FALSE, sizeof(struct kvm_cpuid_entry2));
    const struct kvm_cpuid_entry2 *leaf0 = NULL;
    for (uint32_t i = 0; i < supported->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &supported->entries[i];
        if (e->function == 0)
            leaf0 = e;
        if (!leaf_dropped(e->function, e->index, model, nested))
            g_array_append_val(t, *e);
    }
    bool amd = is_vendor(leaf0, "AuthenticAMD") || is_vendor(leaf0, "HygonGenuine");
    bool intel = is_vendor(leaf0, "GenuineIntel");
    unsigned nr = nr_cpus_max;
    unsigned core_bits = id_bits(nr);

    add_topology_leaf(t, LEAF_TOPOLOGY, index, nr);
    add_topology_leaf(t, LEAF_TOPOLOGY_V2, index, nr);

    struct kvm_cpuid_entry2 *sig = add(t, KVM_LEAF_SIGNATURE, 0, 0);
    sig->eax = KVM_LEAF_FEATURES;
    memcpy(&sig->ebx, "KVMK", 4);
    memcpy(&sig->ecx, "VMKV", 4);
    memcpy(&sig->edx, "M\0\0\0", 4);
    struct kvm_cpuid_entry2 *pv = find(t, KVM_LEAF_FEATURES, 0);
    if (!pv)
        pv = add(t, KVM_LEAF_FEATURES, 0, 0);
    /* Features whose other half lives in the VMM (extended MSI destination
     * IDs in the IOAPIC, hypercall exits, SEV migration control) and the
     * dedicated-pCPU hint vmm cannot promise. */
    pv->eax &= ~(KVM_FEAT_MSI_EXT_DEST_ID | KVM_FEAT_HC_MAP_GPA_RANGE | KVM_FEAT_MIGRATION_CONTROL);
    pv->edx &= ~KVM_HINTS_REALTIME;

    if (amd && !find(t, 0x8000001e, 0))
        add(t, 0x8000001e, 0, 0);

    for (guint i = 0; i < t->len; i++) {
        struct kvm_cpuid_entry2 *e = &g_array_index(t, struct kvm_cpuid_entry2, i);
        switch (e->function) {
        case 1:
            apply_leaf1(e, model, index, nr, nested);
            break;
        case 4:
            if (!intel)
                break;
            /* Cores per package - 1 has 6 bits: past 64 vCPUs Linux reads the
             * count from leaf 0xB anyway. One thread per core: L1 and L2 are
             * private, L3 is shared by all. */
            e->eax &= ~(0x3fu << 26);
            e->eax |= (MIN(nr, 64u) - 1) << 26;
            e->eax &= ~(0xfffu << 14);
            if (((e->eax >> 5) & 7) >= 3)
                e->eax |= (nr - 1) << 14;
            break;
        case 7:
            if (e->index == 0)
                apply_leaf7(e, model);
            break;
        case 0x80000001:
            apply_ext1(e, model, amd, nr, nested);
            break;
        case 0x80000008:
            if (model == CPU_MODEL_BASELINE)
                e->ebx &= E8_EBX_SPEC_MASK;
            if (amd) {
                e->ecx &= ~0xf0ffu;
                e->ecx |= (core_bits << 12) | (nr - 1);
            }
            break;
        case 0x8000001d:
            if (amd) {
                e->eax &= ~(0xfffu << 14);
                if (((e->eax >> 5) & 7) >= 3)
                    e->eax |= (nr - 1) << 14;
            }
            break;
        case 0x8000001e:
            if (amd) {
                e->eax = index;             /* extended APIC ID */
                e->ebx = index;             /* core ID; one thread per core */
                e->ecx = 0;                 /* node 0, one node per socket */
                e->edx = 0;
            }
            break;
        }
    }

    /* The max-leaf values name the highest leaf actually present, so that
     * dropped leaves shrink them and added ones (0x1F, 0x8000_001E) are
     * reachable. */
    uint32_t max_basic = 0, max_ext = 0;
    for (guint i = 0; i < t->len; i++) {
        uint32_t f = g_array_index(t, struct kvm_cpuid_entry2, i).function;
        if (f < 0x40000000u)
            max_basic = MAX(max_basic, f);
        else if (f >= LEAF_EXT_MAX && f < 0x90000000u)
            max_ext = MAX(max_ext, f);
    }
    struct kvm_cpuid_entry2 *e = find(t, 0, 0);
    if (e)
        e->eax = max_basic;
    e = find(t, LEAF_EXT_MAX, 0);
    if (e)
        e->eax = max_ext;

    qsort(t->data, t->len, sizeof(struct kvm_cpuid_entry2), entry_cmp);
    struct kvm_cpuid2 *out = g_malloc0(sizeof(*out) + t->len * sizeof(out->entries[0]));
    out->nent = t->len;
    memcpy(out->entries, t->data, t->len * sizeof(out->entries[0]));
    return out;
}

char *cpuid_added_features(struct kvm_cpuid2 *set, struct kvm_cpuid2 *kept)
{
    static const struct {
        uint32_t function, index;
        int reg;                /* 0 eax .. 3 edx */
        uint32_t runtime;       /* bits KVM updates from guest state */
        const char *name;
    } regs[] = {
        { 1, 0, 2, 1u << 27, "1.ECX" },     { 1, 0, 3, 1u << 9, "1.EDX" },
        { 7, 0, 1, 0, "7.0.EBX" },          { 7, 0, 2, 0, "7.0.ECX" },        { 7, 0, 3, 0, "7.0.EDX" },
        { 0x80000001, 0, 2, 0, "0x80000001.ECX" }, { 0x80000001, 0, 3, 0, "0x80000001.EDX" },
    };
    GString *out = NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(regs); i++) {
        const struct kvm_cpuid_entry2 *s = cpuid_find(set, regs[i].function, regs[i].index);
        const struct kvm_cpuid_entry2 *k = cpuid_find(kept, regs[i].function, regs[i].index);
        if (!k)
            continue;
        const uint32_t sv[4] = { s ? s->eax : 0, s ? s->ebx : 0, s ? s->ecx : 0, s ? s->edx : 0 };
        const uint32_t kv[4] = { k->eax, k->ebx, k->ecx, k->edx };
        uint32_t added = kv[regs[i].reg] & ~sv[regs[i].reg] & ~regs[i].runtime;
        if (!added)
            continue;
        if (!out)
            out = g_string_new(NULL);
        g_string_append_printf(out, "%s%s 0x%x", out->len ? ", " : "", regs[i].name, added);
    }
    return out ? g_string_free(out, FALSE) : NULL;
}

void cpuid_set_apic_id(struct kvm_cpuid2 *t, unsigned index)
{
    const struct kvm_cpuid_entry2 *leaf0 = cpuid_find(t, 0, 0);
    bool amd = is_vendor(leaf0, "AuthenticAMD") || is_vendor(leaf0, "HygonGenuine");
    for (uint32_t i = 0; i < t->nent; i++) {
        struct kvm_cpuid_entry2 *e = &t->entries[i];
        switch (e->function) {
        case 1:
            e->ebx = (e->ebx & ~(0xffu << L1_EBX_APIC_ID_SHIFT)) | (uint32_t)index << L1_EBX_APIC_ID_SHIFT;
            break;
        case LEAF_TOPOLOGY:
        case LEAF_TOPOLOGY_V2:
            e->edx = index;
            break;
        case 0x8000001e:
            if (amd) {
                e->eax = index;
                e->ebx = index;
            }
            break;
        }
    }
}

static const struct feature_reg {
    uint32_t function, index;
    int reg;                /* 0 eax .. 3 edx */
    uint32_t ignore;        /* bits KVM updates from guest state, or vmm sets whatever the host */
} feature_regs[] = {
    { 1, 0, 2, L1_ECX_OSXSAVE | L1_ECX_HYPERVISOR },
    { 1, 0, 3, BIT(9) | L1_EDX_HTT },                       /* APIC (the APIC base MSR), HTT (vmm's topology) */
    { 6, 0, 0, 0 },
    { 7, 0, 1, 0 },
    { 7, 0, 2, BIT(4) },                                    /* OSPKE */
    { 7, 0, 3, 0 },
    { 7, 1, 0, 0 },
    { 0xd, 0, 0, 0 },
    { 0xd, 0, 3, 0 },
    { 0xd, 1, 0, 0 },
    { KVM_LEAF_FEATURES, 0, 0, 0 },
    { 0x80000001, 0, 2, E1_ECX_CMP_LEGACY },                /* vmm's topology */
    { 0x80000001, 0, 3, 0 },
    { 0x80000007, 0, 3, 0 },
    { 0x80000008, 0, 1, 0 },
};

static void vendor_str(const struct kvm_cpuid_entry2 *leaf0, char out[13])
{
    memset(out, 0, 13);
    if (!leaf0) {
        strcpy(out, "(none)");
        return;
    }
    memcpy(out, &leaf0->ebx, 4);
    memcpy(out + 4, &leaf0->edx, 4);
    memcpy(out + 8, &leaf0->ecx, 4);
    for (int i = 0; i < 12; i++)
        if (out[i] < 0x20 || out[i] > 0x7e)
            out[i] = '?';
}

char *cpuid_missing_features(struct kvm_cpuid2 *guest, struct kvm_cpuid2 *host)
{
    static const char *const reg_names[] = { "EAX", "EBX", "ECX", "EDX" };
    const struct kvm_cpuid_entry2 *g0 = cpuid_find(guest, 0, 0), *h0 = cpuid_find(host, 0, 0);
    if (g0 && (!h0 || g0->ebx != h0->ebx || g0->ecx != h0->ecx || g0->edx != h0->edx)) {
        char gv[13], hv[13];
        vendor_str(g0, gv);
        vendor_str(h0, hv);
        return g_strdup_printf("vendor %s, this host %s", gv, hv);
    }
    GString *out = NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(feature_regs); i++) {
        const struct feature_reg *f = &feature_regs[i];
        const struct kvm_cpuid_entry2 *g = cpuid_find(guest, f->function, f->index);
        const struct kvm_cpuid_entry2 *h = cpuid_find(host, f->function, f->index);
        if (!g)
            continue;
        const uint32_t gv[4] = { g->eax, g->ebx, g->ecx, g->edx };
        const uint32_t hv[4] = { h ? h->eax : 0, h ? h->ebx : 0, h ? h->ecx : 0, h ? h->edx : 0 };
        uint32_t missing = gv[f->reg] & ~hv[f->reg] & ~f->ignore;
        if (!missing)
            continue;
        if (!out)
            out = g_string_new(NULL);
        if (out->len)
            g_string_append(out, ", ");
        if (f->function == 7 || f->function == 0xd)
            g_string_append_printf(out, "leaf 0x%x.%u %s bit", f->function, f->index, reg_names[f->reg]);
        else
            g_string_append_printf(out, "leaf 0x%x %s bit", f->function, reg_names[f->reg]);
        if (missing & (missing - 1))
            g_string_append_c(out, 's');
        g_string_append_c(out, ' ');
        bool first = true;
        for (unsigned b = 0; b < 32; b++)
            if (missing & BIT(b)) {
                g_string_append_printf(out, "%s%u", first ? "" : ",", b);
                first = false;
            }
    }
    return out ? g_string_free(out, FALSE) : NULL;
}

int cpuid_debug_hide(struct kvm_cpuid2 *supported, const char *spec, GError **err)
{
    g_auto(GStrv) items = g_strsplit(*spec ? spec : ",", ",", -1);
    for (char **it = items; *it; it++) {
        const char *item = *it;
        char *end;
        errno = 0;
        unsigned long fn = strtoul(item, &end, 0), sub = 0;
        bool has_sub = false;
        if (end != item && *end == '.' && g_ascii_isdigit(end[1])) {
            const char *p = end + 1;
            sub = strtoul(p, &end, 0);
            has_sub = end != p;
        }
        int reg = -1;
        if (*end == '.' && strlen(end) > 4 && end[1] == 'e' && end[3] == 'x' && end[4] == '=' &&
            strchr("abcd", end[2]) && end[2])
            reg = end[2] - 'a';
        const char *mp = reg >= 0 ? end + 5 : NULL;
        unsigned long long mask = mp && *mp ? strtoull(mp, &end, 0) : 0;
        if (errno || end == item || reg < 0 || !mp || !*mp || *end || fn > UINT32_MAX || sub > UINT32_MAX ||
            mask > UINT32_MAX) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "VMM_DEBUG_CPUID_HIDE: '%s' is not LEAF[.SUBLEAF].REG=MASK (REG eax, ebx, ecx or edx)", item);
            return -1;
        }
        for (uint32_t i = 0; i < supported->nent; i++) {
            struct kvm_cpuid_entry2 *e = &supported->entries[i];
            if (e->function != fn || (has_sub && e->index != sub))
                continue;
            uint32_t *r[4] = { &e->eax, &e->ebx, &e->ecx, &e->edx };
            *r[reg] &= ~(uint32_t)mask;
        }
    }
    return 0;
}
