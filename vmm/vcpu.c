#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/regs.h"
#include "devices/ioapic.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define VCPU_KICK_SIGNAL (SIGRTMIN + 0)

static void kick_handler(int sig)
{
    (void)sig;  /* only there to make KVM_RUN return EINTR */
}

void vcpu_init_signals(void)
{
    struct sigaction sa = { .sa_handler = kick_handler };
    sigemptyset(&sa.sa_mask);
    sigaction(VCPU_KICK_SIGNAL, &sa, NULL);     /* no SA_RESTART */
}

/* Says once per process when KVM shows the guest CPU features that the
 * table vmm set leaves out: the guest will see and may use them, and a
 * migration target must then have them too. A warning with --cpu-model baseline, which then
 * cannot hide them on this host; information with host. */
static void warn_forced_cpuid(int fd, struct kvm_cpuid2 *set, enum cpu_model model)
{
    /* The host's answer does not change when a guest reset rebuilds the VM:
     * ask and say it once per process (VMs are built on the main thread). */
    static bool checked;
    if (checked)
        return;
    checked = true;
    const unsigned room = set->nent + 64;
    g_autofree struct kvm_cpuid2 *kept = g_malloc0(sizeof(*kept) + room * sizeof(kept->entries[0]));
    kept->nent = room;
    if (ioctl(fd, KVM_GET_CPUID2, kept) < 0) {
        log_debug("KVM_GET_CPUID2: %s; not checking which CPUID bits KVM kept", g_strerror(errno));
        return;
    }
    g_autofree char *added = cpuid_added_features(set, kept);
    if (added && model == CPU_MODEL_BASELINE)
        log_warn("this host's KVM shows the guest CPUID features vmm did not offer (%s); "
                 "--cpu-model baseline cannot hide them here", added);
    else if (added)
        log_info("this host's KVM shows the guest CPUID features vmm did not offer (%s)", added);
}

struct vcpu *vcpu_create(struct vm *vm, unsigned index, GError **err)
{
    struct vcpu *v = g_new0(struct vcpu, 1);
    v->vm = vm;
    v->index = index;
    v->apic_id = index;
    v->stats_fd = -1;
    v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->apic_id);
    if (v->fd < 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot create vCPU %u: %s", index,
                    g_strerror(errno));
        g_free(v);
        return NULL;
    }
    v->run = mmap(NULL, (size_t)vm->caps.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot map vCPU %u run area: %s",
                    index, g_strerror(errno));
        close(v->fd);
        g_free(v);
        return NULL;
    }

    g_autofree struct kvm_cpuid2 *cpuid =
        g_memdup2(vm->guest_cpuid, sizeof(*vm->guest_cpuid) + vm->guest_cpuid->nent * sizeof(vm->guest_cpuid->entries[0]));
    cpuid_set_apic_id(cpuid, index);
    if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "KVM_SET_CPUID2 on vCPU %u: %s",
                    index, g_strerror(errno));
        goto fail;
    }
    if (index == 0)
        warn_forced_cpuid(v->fd, cpuid, vm->cfg->cpu_model);
    if (regs_setup_common(v->fd, err) < 0)
        goto fail;
    /* Optional: only the SIGUSR1 report reads it. */
    v->stats_fd = ioctl(v->fd, KVM_GET_STATS_FD, NULL);
    if (index != 0) {
        /* APs wait for INIT/SIPI from the guest. */
        struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_UNINITIALIZED };
        if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0) {
            g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "KVM_SET_MP_STATE on vCPU %u: %s",
                        index, g_strerror(errno));
            goto fail;
        }
    }
    return v;
fail:
    if (v->stats_fd >= 0)
        close(v->stats_fd);
    munmap(v->run, (size_t)vm->caps.vcpu_mmap_size);
    close(v->fd);
    g_free(v);
    return NULL;
}

static void handle_io(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    unsigned size = run->io.size;
    /* data_offset/size/count come from KVM, which bounds them to the run page. */
    for (uint32_t i = 0; i < run->io.count; i++, data += size) {
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            if (!bus_write(&v->vm->pio, run->io.port, data, size))
                log_debug("vCPU %u: unhandled out 0x%x size %u", v->index, run->io.port, size);
        } else if (!bus_read(&v->vm->pio, run->io.port, data, size)) {
            log_debug("vCPU %u: unhandled in 0x%x size %u", v->index, run->io.port, size);
        }
    }
}

static void handle_mmio(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    unsigned len = run->mmio.len;
    if (len == 0 || len > sizeof(run->mmio.data))
        return;
    if (run->mmio.is_write) {
        if (!bus_write(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len))
            log_debug("vCPU %u: unhandled MMIO write 0x%llx size %u", v->index,
                      (unsigned long long)run->mmio.phys_addr, len);
    } else if (!bus_read(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len)) {
        log_debug("vCPU %u: unhandled MMIO read 0x%llx size %u", v->index,
                  (unsigned long long)run->mmio.phys_addr, len);
    }
}

static uint64_t guest_rip(struct vcpu *v)
{
    struct kvm_regs regs;
    return ioctl(v->fd, KVM_GET_REGS, &regs) == 0 ? regs.rip : 0;
}

static void internal_error(struct vcpu *v, const char *what)
{
    struct kvm_run *run = v->run;
    if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
        log_error("vCPU %u: %s: KVM internal error, suberror %u, at guest RIP 0x%llx", v->index, what,
                  run->internal.suberror, (unsigned long long)guest_rip(v));
    else
        log_error("vCPU %u: %s: exit reason %u at guest RIP 0x%llx", v->index, what, run->exit_reason,
                  (unsigned long long)guest_rip(v));
    vm_request_stop(v->vm, VM_STOP_INTERNAL_ERROR, (int)run->exit_reason);
}

/* KVM's per-vCPU statistics from the binary stats fd (api.rst,
 * KVM_GET_STATS_FD: a header, the descriptors, then the data): every scalar
 * one that is not 0, as " name=value", in KVM's order. */
static void append_stats(int fd, GString *s)
{
    struct kvm_stats_header h;
    if (fd < 0 || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.num_desc > 4096 ||
        h.name_size > 1024) {
        g_string_append(s, " (no KVM stats)");
        return;
    }
    size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
    g_autofree uint8_t *descs = g_malloc(dsz * h.num_desc);
    if (pread(fd, descs, dsz * h.num_desc, h.desc_offset) != (ssize_t)(dsz * h.num_desc))
        return;
    for (uint32_t k = 0; k < h.num_desc; k++) {
        const struct kvm_stats_desc *d = (const void *)(descs + k * dsz);
        uint64_t val;
        if (d->size != 1 ||
            pread(fd, &val, sizeof(val), (off_t)h.data_offset + d->offset) != (ssize_t)sizeof(val) || val == 0)
            continue;
        g_string_append_printf(s, " %.*s=%llu", (int)h.name_size, d->name, (unsigned long long)val);
    }
}

void vcpu_report_state(struct vcpu *v)
{
    g_autoptr(GString) s = g_string_new(NULL);
    append_stats(v->stats_fd, s);
    log_state("vCPU %u: thread %d, exits to vmm %llu, KVM counters:%s", v->index, (int)__atomic_load_n(&v->tid, __ATOMIC_ACQUIRE),
              (unsigned long long)__atomic_load_n(&v->exits_to_vmm, __ATOMIC_RELAXED), s->str);
    __atomic_store_n(&v->state_wanted, 1, __ATOMIC_RELEASE);
    vcpu_kick(v);
}

static const char *mp_state_name(uint32_t mp)
{
    static const char *const names[] = { "runnable", "uninitialized", "init-received", "halted",
                                         "sipi-received", "stopped", "check-stop", "operating", "load" };
    return mp < G_N_ELEMENTS(names) ? names[mp] : "?";
}

/* The vCPU thread's half of the report: what only the vCPU's owner may read. */
static void report_own_state(struct vcpu *v)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_mp_state mp;
    struct kvm_vcpu_events ev;
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e[1];
    } msrs = { .hdr.nmsrs = 1, .e[0].index = 0xc0000082 /* LSTAR: tells a Linux guest's KASLR offset */ };
    if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0 ||
        ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0 || ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0) {
        log_state("vCPU %u: cannot read its state: %s", v->index, g_strerror(errno));
        return;
    }
    if (ioctl(v->fd, KVM_GET_MSRS, &msrs) != 1)
        msrs.e[0].data = 0;
    /* On AMD, KVM's view of the global interrupt flag: with GIF clear it
     * injects no interrupt and no NMI, and a halted vCPU sleeps on. */
    char gif[24] = "";
    if (v->vm->caps.nested_state) {
        const uint32_t size = 64 * 1024;   /* header + the largest vendor data */
        g_autofree struct kvm_nested_state *ns = g_malloc0(size);
        ns->size = size;
        if (ioctl(v->fd, KVM_GET_NESTED_STATE, ns) == 0 && ns->format == KVM_STATE_NESTED_FORMAT_SVM)
            snprintf(gif, sizeof(gif), " gif=%u guest_mode=%u", !!(ns->flags & KVM_STATE_NESTED_GIF_SET),
                     !!(ns->flags & KVM_STATE_NESTED_GUEST_MODE));
    }
    log_state("vCPU %u: rip=0x%llx rsp=0x%llx rflags=0x%llx cpl=%u cr0=0x%llx lstar=0x%llx mp_state=%s%s "
              "nmi(pending=%u injected=%u masked=%u) irq(injected=%u nr=%u shadow=%u) exception(injected=%u "
              "nr=%u)",
              v->index, (unsigned long long)regs.rip, (unsigned long long)regs.rsp,
              (unsigned long long)regs.rflags, sregs.cs.selector & 3u, (unsigned long long)sregs.cr0,
              (unsigned long long)msrs.e[0].data, mp_state_name(mp.mp_state), gif, ev.nmi.pending, ev.nmi.injected,
              ev.nmi.masked, ev.interrupt.injected, ev.interrupt.nr, ev.interrupt.shadow, ev.exception.injected,
              ev.exception.nr);
}

/* Parks the thread while its VM is paused (vm_pause). The last exit's I/O
 * was finished inside KVM by the immediate_exit KVM_RUN that brought us here. */
static void park(struct vcpu *v)
{
    struct vm *vm = v->vm;
    pthread_mutex_lock(&vm->pause_lock);
    vm->nr_parked++;
    pthread_cond_broadcast(&vm->parked_cond);
    while (vm->pause_depth && !__atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST) &&
           !__atomic_load_n(&v->leave, __ATOMIC_SEQ_CST)) {
        pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
        if (__atomic_exchange_n(&v->state_wanted, 0, __ATOMIC_ACQ_REL)) {
            log_state("vCPU %u: paused", v->index);
            report_own_state(v);
        }
    }
    vm->nr_parked--;
    pthread_mutex_unlock(&vm->pause_lock);
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    struct vm *vm = v->vm;
    char name[16];
    snprintf(name, sizeof(name), "vcpu%u", v->index);
    pthread_setname_np(pthread_self(), name);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    bool first_run_logged = false;
    pthread_mutex_lock(&vm->pause_lock);
    __atomic_store_n(&v->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    pthread_cond_broadcast(&vm->parked_cond);
    pthread_mutex_unlock(&vm->pause_lock);

    while (!__atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST) && !__atomic_load_n(&v->leave, __ATOMIC_SEQ_CST)) {
        /* Pausing: one more KVM_RUN with immediate_exit, which finishes the
         * I/O of the last exit (a port read's value into RAX, a string
         * instruction's next step) and returns EINTR, or another exit to
         * handle first (api.rst, immediate_exit). */
        bool pausing = __atomic_load_n(&vm->pause_depth, __ATOMIC_SEQ_CST) != 0;
        if (pausing)
            __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        else if (v->index == 0 && vm->first_run_since_ns && !first_run_logged) {
            /* A restored VM: how long from vmm's start to the guest running. */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
            log_info("restore: first KVM_RUN %.3f ms after vmm started", (double)(now - vm->first_run_since_ns) / 1e6);
            first_run_logged = true;
        }
        int r = ioctl(v->fd, KVM_RUN, 0);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
                if (__atomic_exchange_n(&v->state_wanted, 0, __ATOMIC_ACQ_REL))
                    report_own_state(v);
                if (pausing)
                    park(v);
                continue;
            }
            log_error("vCPU %u: KVM_RUN failed: %s", v->index, g_strerror(errno));
            vm_request_stop(vm, VM_STOP_INTERNAL_ERROR, errno);
            break;
        }
        __atomic_add_fetch(&v->exits_to_vmm, 1, __ATOMIC_RELAXED);
        switch (v->run->exit_reason) {
        case KVM_EXIT_IO:
            handle_io(v);
            break;
        case KVM_EXIT_MMIO:
            handle_mmio(v);
            break;
        case KVM_EXIT_IOAPIC_EOI:
            if (vm->ioapic)
                ioapic_eoi(vm->ioapic, v->run->eoi.vector);
            break;
        case KVM_EXIT_HLT:
            /* Only without an in-kernel LAPIC, which vmm always has. */
            break;
        case KVM_EXIT_SHUTDOWN:
            log_info("vCPU %u: triple fault at guest RIP 0x%llx", v->index, (unsigned long long)guest_rip(v));
            vm_request_stop(vm, VM_STOP_TRIPLE_FAULT, 0);
            break;
        case KVM_EXIT_SYSTEM_EVENT:
            vm_request_stop(vm, v->run->system_event.type == KVM_SYSTEM_EVENT_RESET ? VM_STOP_RESET
                                                                                     : VM_STOP_POWEROFF, 0);
            break;
        case KVM_EXIT_INTR:
            break;
        case KVM_EXIT_FAIL_ENTRY:
            log_error("vCPU %u: VM entry failed, hardware reason 0x%llx", v->index,
                      (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
            internal_error(v, "entry failure");
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            internal_error(v, "cannot continue");
            break;
        default:
            internal_error(v, "unhandled exit");
            break;
        }
    }
    pthread_mutex_lock(&vm->pause_lock);
    vm->nr_exited++;
    pthread_cond_broadcast(&vm->parked_cond);
    pthread_mutex_unlock(&vm->pause_lock);
    return NULL;
}

int vcpu_start(struct vcpu *v, GError **err)
{
    struct vm *vm = v->vm;
    /* Counted before it can run, so that vm_pause waits for it too. */
    pthread_mutex_lock(&vm->pause_lock);
    vm->nr_threads++;
    pthread_mutex_unlock(&vm->pause_lock);
    /* The thread starts with the kick signal blocked, and unblocks it itself. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        pthread_mutex_lock(&vm->pause_lock);
        vm->nr_threads--;
        pthread_cond_broadcast(&vm->parked_cond);
        pthread_mutex_unlock(&vm->pause_lock);
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(r), "cannot start vCPU %u thread: %s", v->index,
                    g_strerror(r));
        return -1;
    }
    v->thread_started = true;
    /* query-cpus-fast reports the thread's id from now on. */
    pthread_mutex_lock(&vm->pause_lock);
    while (!__atomic_load_n(&v->tid, __ATOMIC_ACQUIRE))
        pthread_cond_wait(&vm->parked_cond, &vm->pause_lock);
    pthread_mutex_unlock(&vm->pause_lock);
    return 0;
}

void vcpu_kick(struct vcpu *v)
{
    /* immediate_exit covers the window between the stopping (or
     * pause_depth) check and KVM_RUN. */
    __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (v->thread_started)
        pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_unplug(struct vcpu *v)
{
    struct vm *vm = v->vm;
    __atomic_store_n(&v->leave, true, __ATOMIC_SEQ_CST);
    vcpu_kick(v);
    /* A paused VM: the thread waits on pause_cond, and must see `leave`. */
    pthread_mutex_lock(&vm->pause_lock);
    pthread_cond_broadcast(&vm->pause_cond);
    pthread_mutex_unlock(&vm->pause_lock);
    if (v->thread_started)
        pthread_join(v->thread, NULL);
    v->thread_started = false;
    __atomic_store_n(&v->tid, 0, __ATOMIC_RELEASE);
}

int vcpu_replug(struct vcpu *v, GError **err)
{
    /* Whatever the guest left in it (x2APIC mode, a disabled APIC), the
     * CPU comes back as a new one would: xAPIC enabled at the default base,
     * not the BSP. Through "disabled": the KVM of Linux 6.1 (the lab's L1)
     * keeps the APIC ID register as it is on a direct x2APIC -> xAPIC
     * switch, where it holds the 32-bit x2APIC ID, which xAPIC reads as ID
     * 0, so the guest's INIT/SIPI to the CPU's ID reached nobody (a stock
     * Linux guest's re-added CPU never booted); enabling from disabled sets
     * the ID anew. The guest's INIT resets the rest. */
    static const uint64_t bases[] = { 0, 0xfee00000 | (1u << 11) /* enabled, not BSP */ };
    for (size_t i = 0; i < G_N_ELEMENTS(bases); i++) {
        struct {
            struct kvm_msrs hdr;
            struct kvm_msr_entry e[1];
        } msrs = { .hdr.nmsrs = 1, .e[0] = { .index = 0x1b /* IA32_APIC_BASE */, .data = bases[i] } };
        if (ioctl(v->fd, KVM_SET_MSRS, &msrs) != 1) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "vCPU %u: KVM refused APIC base 0x%llx", v->index,
                        (unsigned long long)bases[i]);
            return -1;
        }
    }
    if (regs_setup_common(v->fd, err) < 0)
        return -1;
    struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_UNINITIALIZED };
    if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "KVM_SET_MP_STATE on vCPU %u: %s", v->index,
                    g_strerror(errno));
        return -1;
    }
    v->run->immediate_exit = 0;
    __atomic_store_n(&v->leave, false, __ATOMIC_RELEASE);
    return 0;
}

void vcpu_destroy(struct vcpu *v)
{
    if (!v)
        return;
    if (v->thread_started)
        pthread_join(v->thread, NULL);
    if (v->stats_fd >= 0)
        close(v->stats_fd);
    munmap(v->run, (size_t)v->vm->caps.vcpu_mmap_size);
    close(v->fd);
    g_free(v);
}
