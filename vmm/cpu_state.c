#include "vmm/cpu_state.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/log.h"
#include "vmm/state.h"

#define MSR_IA32_TSC_DEADLINE 0x6e0u

enum {
    TAG_END = 0,
    TAG_REGS = 1,
    TAG_SREGS = 2,
    TAG_XSAVE = 3,
    TAG_FPU = 4,
    TAG_XCRS = 5,
    TAG_MSRS = 6,
    TAG_EVENTS = 7,
    TAG_DEBUGREGS = 8,
    TAG_LAPIC = 9,
    TAG_MP_STATE = 10,
    TAG_NESTED = 11,
};

static int fail_errno(GError **err, const char *what)
{
    g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: %s", what, g_strerror(errno));
    return -1;
}

int cpu_caps_probe(int kvm_fd, int vm_fd, struct cpu_caps *c, GError **err)
{
    memset(c, 0, sizeof(*c));
    int x2 = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    if (x2 > 0) {
        c->xsave2 = true;
        c->xsave_size = (uint32_t)MAX(x2, (int)sizeof(struct kvm_xsave));
    } else if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0) {
        c->xsave_size = sizeof(struct kvm_xsave);
    }
    c->xcrs = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
    c->debugregs = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DEBUGREGS) > 0;
    int ns = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NESTED_STATE);
    c->nested_max = ns > 0 ? (uint32_t)MIN(ns, (int)CPU_STATE_MAX_BLOB) : 0;

    struct kvm_msr_list probe = { .nmsrs = 0 };
    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
        return fail_errno(err, "KVM_GET_MSR_INDEX_LIST");
    uint32_t n = MIN(probe.nmsrs, CPU_STATE_MAX_MSRS);
    struct kvm_msr_list *l = g_malloc0(sizeof(*l) + n * sizeof(uint32_t));
    l->nmsrs = n;
    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
        g_free(l);
        return fail_errno(err, "KVM_GET_MSR_INDEX_LIST");
    }
    c->nr_msrs = l->nmsrs;
    c->msrs = g_memdup2(l->indices, l->nmsrs * sizeof(uint32_t));
    g_free(l);
    return 0;
}

void cpu_caps_clear(struct cpu_caps *c)
{
    g_free(c->msrs);
    memset(c, 0, sizeof(*c));
}

void cpu_state_clear(struct cpu_state *s)
{
    g_free(s->xsave);
    g_free(s->msrs);
    g_free(s->nested);
    memset(s, 0, sizeof(*s));
}

/* Reads the listed MSRs in batches. KVM_GET_MSRS returns how many it read,
 * stopping at the first it refuses: that one is left out and the rest of the
 * batch is tried again. */
static int get_msrs(int fd, const struct cpu_caps *c, struct cpu_state *s, GError **err)
{
    s->msrs = g_new0(struct kvm_msr_entry, MAX(c->nr_msrs, 1u));
    s->nr_msrs = 0;
    struct kvm_msrs *m = g_malloc0(sizeof(*m) + c->nr_msrs * sizeof(struct kvm_msr_entry));
    uint32_t next = 0;
    while (next < c->nr_msrs) {
        uint32_t n = c->nr_msrs - next;
        m->nmsrs = n;
        for (uint32_t i = 0; i < n; i++)
            m->entries[i] = (struct kvm_msr_entry){ .index = c->msrs[next + i] };
        int r = ioctl(fd, KVM_GET_MSRS, m);
        if (r < 0) {
            g_free(m);
            return fail_errno(err, "KVM_GET_MSRS");
        }
        memcpy(&s->msrs[s->nr_msrs], m->entries, (size_t)r * sizeof(struct kvm_msr_entry));
        s->nr_msrs += (uint32_t)r;
        if ((uint32_t)r < n)
            log_debug("MSR 0x%x: KVM does not read it on this vCPU; not saved", c->msrs[next + (uint32_t)r]);
        next += (uint32_t)r + ((uint32_t)r < n ? 1 : 0);
    }
    g_free(m);
    return 0;
}

int cpu_state_get(int fd, const struct cpu_caps *c, struct cpu_state *s, GError **err)
{
    memset(s, 0, sizeof(*s));
    if (ioctl(fd, KVM_GET_REGS, &s->regs) < 0)
        return fail_errno(err, "KVM_GET_REGS");
    if (ioctl(fd, KVM_GET_SREGS, &s->sregs) < 0)
        return fail_errno(err, "KVM_GET_SREGS");
    if (c->xsave_size) {
        s->xsave_size = c->xsave_size;
        s->xsave = g_malloc0(c->xsave_size);
        if (ioctl(fd, c->xsave2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, s->xsave) < 0)
            return fail_errno(err, c->xsave2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
    } else if (ioctl(fd, KVM_GET_FPU, &s->fpu) < 0) {
        return fail_errno(err, "KVM_GET_FPU");
    }
    if (c->xcrs) {
        if (ioctl(fd, KVM_GET_XCRS, &s->xcrs) < 0)
            return fail_errno(err, "KVM_GET_XCRS");
        s->has_xcrs = true;
    }
    if (get_msrs(fd, c, s, err) < 0)
        return -1;
    if (ioctl(fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
        return fail_errno(err, "KVM_GET_VCPU_EVENTS");
    if (c->debugregs) {
        if (ioctl(fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0)
            return fail_errno(err, "KVM_GET_DEBUGREGS");
        s->has_debugregs = true;
    }
    if (ioctl(fd, KVM_GET_LAPIC, &s->lapic) < 0)
        return fail_errno(err, "KVM_GET_LAPIC");
    if (ioctl(fd, KVM_GET_MP_STATE, &s->mp) < 0)
        return fail_errno(err, "KVM_GET_MP_STATE");
    if (c->nested_max >= sizeof(struct kvm_nested_state)) {
        struct kvm_nested_state *ns = g_malloc0(c->nested_max);
        ns->size = c->nested_max;
        if (ioctl(fd, KVM_GET_NESTED_STATE, ns) < 0) {
            g_free(ns);
            return fail_errno(err, "KVM_GET_NESTED_STATE");
        }
        if (ns->size > c->nested_max || ns->size < sizeof(*ns)) {
            g_free(ns);
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "KVM_GET_NESTED_STATE: size %u out of range",
                        ns->size);
            return -1;
        }
        s->nested_size = ns->size;
        s->nested = (uint8_t *)ns;
    }
    return 0;
}

/* KVM_SET_MSRS of entries [0, n): one it refuses is read back and compared. */
static int set_msrs(int fd, const struct kvm_msr_entry *e, uint32_t n, unsigned index, GError **err)
{
    if (n == 0)
        return 0;
    struct kvm_msrs *m = g_malloc0(sizeof(*m) + n * sizeof(struct kvm_msr_entry));
    uint32_t next = 0;
    while (next < n) {
        m->nmsrs = n - next;
        memcpy(m->entries, e + next, m->nmsrs * sizeof(struct kvm_msr_entry));
        int r = ioctl(fd, KVM_SET_MSRS, m);
        if (r < 0) {
            g_free(m);
            return fail_errno(err, "KVM_SET_MSRS");
        }
        next += (uint32_t)r;
        if (next < n) {
            struct {
                struct kvm_msrs h;
                struct kvm_msr_entry e;
            } one = { .h.nmsrs = 1, .e.index = e[next].index };
            if (ioctl(fd, KVM_GET_MSRS, &one) != 1 || one.e.data != e[next].data)
                log_warn("vCPU %u: KVM refuses MSR 0x%x = 0x%llx on restore (it reads 0x%llx); left as KVM has it",
                         index, e[next].index, (unsigned long long)e[next].data, (unsigned long long)one.e.data);
            next++;
        }
    }
    g_free(m);
    return 0;
}

int cpu_state_set(int fd, const struct cpu_caps *c, const struct cpu_state *s, unsigned index, GError **err)
{
    if (ioctl(fd, KVM_SET_SREGS, &s->sregs) < 0)
        return fail_errno(err, "KVM_SET_SREGS");
    if (s->nested_size) {
        if (!c->nested_max) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "vCPU %u has nested virtualization state and this host's KVM has no KVM_CAP_NESTED_STATE",
                        index);
            return -1;
        }
        if (ioctl(fd, KVM_SET_NESTED_STATE, s->nested) < 0)
            return fail_errno(err, "KVM_SET_NESTED_STATE");
    }
    if (ioctl(fd, KVM_SET_REGS, &s->regs) < 0)
        return fail_errno(err, "KVM_SET_REGS");
    if (s->xsave_size) {
        if (!c->xsave_size || s->xsave_size > MAX(c->xsave_size, (uint32_t)sizeof(struct kvm_xsave))) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "vCPU %u: saved XSAVE area of %u bytes, this host's KVM takes %u", index, s->xsave_size,
                        c->xsave_size);
            return -1;
        }
        /* KVM_SET_XSAVE reads as much as KVM_CAP_XSAVE2 said (at least 4 KiB). */
        g_autofree uint8_t *buf = g_malloc0(MAX(c->xsave_size, (uint32_t)sizeof(struct kvm_xsave)));
        memcpy(buf, s->xsave, s->xsave_size);
        if (ioctl(fd, KVM_SET_XSAVE, buf) < 0)
            return fail_errno(err, "KVM_SET_XSAVE");
    } else if (ioctl(fd, KVM_SET_FPU, &s->fpu) < 0) {
        return fail_errno(err, "KVM_SET_FPU");
    }
    if (s->has_xcrs && ioctl(fd, KVM_SET_XCRS, &s->xcrs) < 0)
        return fail_errno(err, "KVM_SET_XCRS");
    /* Every MSR but the TSC deadline, which needs the LAPIC in its mode. */
    g_autofree struct kvm_msr_entry *first = g_new0(struct kvm_msr_entry, MAX(s->nr_msrs, 1u));
    uint32_t nfirst = 0;
    const struct kvm_msr_entry *deadline = NULL;
    for (uint32_t i = 0; i < s->nr_msrs; i++) {
        if (s->msrs[i].index == MSR_IA32_TSC_DEADLINE)
            deadline = &s->msrs[i];
        else
            first[nfirst++] = s->msrs[i];
    }
    if (set_msrs(fd, first, nfirst, index, err) < 0)
        return -1;
    struct kvm_vcpu_events ev = s->events;
    ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    if (ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
        return fail_errno(err, "KVM_SET_VCPU_EVENTS");
    if (ioctl(fd, KVM_SET_MP_STATE, &s->mp) < 0)
        return fail_errno(err, "KVM_SET_MP_STATE");
    if (ioctl(fd, KVM_SET_LAPIC, &s->lapic) < 0)
        return fail_errno(err, "KVM_SET_LAPIC");
    if (deadline && set_msrs(fd, deadline, 1, index, err) < 0)
        return -1;
    if (s->has_debugregs && ioctl(fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0)
        return fail_errno(err, "KVM_SET_DEBUGREGS");
    return 0;
}

static void put_rec(struct state_writer *w, uint16_t tag, const void *p, uint32_t len)
{
    state_put_u16(w, tag);
    state_put_u32(w, len);
    state_put_bytes(w, p, len);
}

void cpu_state_save(struct state_writer *w, unsigned index, const struct cpu_state *s)
{
    state_begin_section(w, "vcpu", CPU_STATE_VERSION);
    state_put_u32(w, index);
    put_rec(w, TAG_REGS, &s->regs, sizeof(s->regs));
    put_rec(w, TAG_SREGS, &s->sregs, sizeof(s->sregs));
    if (s->xsave_size)
        put_rec(w, TAG_XSAVE, s->xsave, s->xsave_size);
    else
        put_rec(w, TAG_FPU, &s->fpu, sizeof(s->fpu));
    if (s->has_xcrs)
        put_rec(w, TAG_XCRS, &s->xcrs, sizeof(s->xcrs));
    put_rec(w, TAG_MSRS, s->msrs, s->nr_msrs * (uint32_t)sizeof(struct kvm_msr_entry));
    put_rec(w, TAG_EVENTS, &s->events, sizeof(s->events));
    if (s->has_debugregs)
        put_rec(w, TAG_DEBUGREGS, &s->debugregs, sizeof(s->debugregs));
    put_rec(w, TAG_LAPIC, &s->lapic, sizeof(s->lapic));
    put_rec(w, TAG_MP_STATE, &s->mp, sizeof(s->mp));
    if (s->nested_size)
        put_rec(w, TAG_NESTED, s->nested, s->nested_size);
    state_put_u16(w, TAG_END);
    state_end_section(w);
}

static int bad(GError **err, unsigned index, const char *what, unsigned tag)
{
    g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "state: vCPU %u: %s (record %u)", index, what, tag);
    return -1;
}

int cpu_state_load(struct state_reader *r, unsigned *index_out, struct cpu_state *s, GError **err)
{
    memset(s, 0, sizeof(*s));
    uint32_t index = 0;
    if (state_open_section(r, "vcpu", CPU_STATE_VERSION, NULL, err) < 0)
        return -1;
    if (state_get_u32(r, &index) < 0)
        return bad(err, 0, "section too short", 0);
    uint32_t seen = 0;
    for (;;) {
        uint16_t tag;
        uint32_t len;
        if (state_get_u16(r, &tag) < 0)
            return bad(err, index, "records truncated", 0);
        if (tag == TAG_END)
            break;
        if (state_get_u32(r, &len) < 0)
            return bad(err, index, "records truncated", tag);
        if (tag < 32 && (seen & (1u << tag)))
            return bad(err, index, "a record appears twice", tag);
        void *fixed = NULL;
        uint32_t want = 0;
        switch (tag) {
        case TAG_REGS: fixed = &s->regs; want = sizeof(s->regs); break;
        case TAG_SREGS: fixed = &s->sregs; want = sizeof(s->sregs); break;
        case TAG_FPU: fixed = &s->fpu; want = sizeof(s->fpu); break;
        case TAG_XCRS: fixed = &s->xcrs; want = sizeof(s->xcrs); s->has_xcrs = true; break;
        case TAG_EVENTS: fixed = &s->events; want = sizeof(s->events); break;
        case TAG_DEBUGREGS: fixed = &s->debugregs; want = sizeof(s->debugregs); s->has_debugregs = true; break;
        case TAG_LAPIC: fixed = &s->lapic; want = sizeof(s->lapic); break;
        case TAG_MP_STATE: fixed = &s->mp; want = sizeof(s->mp); break;
        case TAG_XSAVE:
            if (len < sizeof(struct kvm_xsave) || len > CPU_STATE_MAX_BLOB)
                return bad(err, index, "XSAVE area of a size KVM never gives", tag);
            s->xsave = g_malloc(len);
            s->xsave_size = len;
            fixed = s->xsave;
            want = len;
            break;
        case TAG_NESTED:
            if (len < sizeof(struct kvm_nested_state) || len > CPU_STATE_MAX_BLOB)
                return bad(err, index, "nested state of a size KVM never gives", tag);
            s->nested = g_malloc(len);
            s->nested_size = len;
            fixed = s->nested;
            want = len;
            break;
        case TAG_MSRS:
            if (len % sizeof(struct kvm_msr_entry) || len / sizeof(struct kvm_msr_entry) > CPU_STATE_MAX_MSRS)
                return bad(err, index, "MSR record malformed", tag);
            s->nr_msrs = len / (uint32_t)sizeof(struct kvm_msr_entry);
            s->msrs = g_new0(struct kvm_msr_entry, MAX(s->nr_msrs, 1u));
            fixed = s->msrs;
            want = len;
            break;
        default:
            return bad(err, index, "unknown record (a newer vmm's snapshot?)", tag);
        }
        if (len != want)
            return bad(err, index, "record of the wrong size", tag);
        if (state_get_bytes(r, fixed, len) < 0)
            return bad(err, index, "records truncated", tag);
        seen |= 1u << tag;
    }
    uint32_t need = (1u << TAG_REGS) | (1u << TAG_SREGS) | (1u << TAG_MSRS) | (1u << TAG_EVENTS) |
                    (1u << TAG_LAPIC) | (1u << TAG_MP_STATE);
    if ((seen & need) != need || !(seen & ((1u << TAG_XSAVE) | (1u << TAG_FPU))) ||
        ((seen & (1u << TAG_XSAVE)) && (seen & (1u << TAG_FPU))))
        return bad(err, index, "a mandatory record is missing", 0);
    if (state_close_section(r, err) < 0)
        return -1;
    if (s->nested_size && ((struct kvm_nested_state *)s->nested)->size != s->nested_size)
        return bad(err, index, "nested state size disagrees with its header", TAG_NESTED);
    *index_out = index;
    return 0;
}
