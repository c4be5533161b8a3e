/* One vCPU: its KVM fd, its kvm_run page and the thread that runs it. */
#ifndef VMM_VCPU_H
#define VMM_VCPU_H

#include <glib.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;

struct vcpu {
    struct vm *vm;
    unsigned index;
    uint32_t apic_id;
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool thread_started;
    pid_t tid;                  /* the thread's id (query-cpus-fast); set before vcpu_start returns */
    int stats_fd;               /* KVM_GET_STATS_FD, or -1; readable by any thread */
    uint64_t exits_to_vmm;      /* KVM_RUN returns handled by this thread */
    int state_wanted;           /* vcpu_request_state: report at the next KVM_RUN return */
    bool leave;                 /* vcpu_unplug: this thread alone leaves KVM_RUN; atomic */
};

struct vcpu *vcpu_create(struct vm *vm, unsigned index, GError **err);
/* Starts the vCPU thread and returns once it has recorded its thread id. A
 * thread started while its VM is paused parks before its first KVM_RUN. */
int vcpu_start(struct vcpu *v, GError **err);
/* Makes KVM_RUN return (now, or at once if not yet entered). Any thread. */
void vcpu_kick(struct vcpu *v);
/* Joins the thread (after the VM asked every vCPU to stop) and frees. */
void vcpu_destroy(struct vcpu *v);
/* CPU hot-unplug: makes this vCPU's thread leave KVM_RUN (or its pause)
 * and joins it, while the others run on. The fd stays open (KVM cannot
 * destroy a vCPU, and its id cannot be created again): vcpu_replug takes it
 * back. Main thread. */
void vcpu_unplug(struct vcpu *v);
/* An unplugged vCPU plugged in again: MSRs, FPU and LAPIC as vcpu_create sets
 * them, the xAPIC at its default base, and waiting for INIT/SIPI like any
 * AP. vcpu_start then starts its thread. */
int vcpu_replug(struct vcpu *v, GError **err);
/* The SIGUSR1 report, on stderr as "vmm: state: vCPU N: ..." lines. The
 * caller's thread prints the vCPU's thread id and KVM's counters for it
 * (no vCPU lock needed, so this line comes even from a vCPU stuck in the
 * kernel or in vmm); the vCPU is then kicked out of KVM_RUN and its own
 * thread prints its registers, MP state and pending events before it goes
 * on. A vCPU whose second line never comes is not getting back to vmm. */
void vcpu_report_state(struct vcpu *v);
/* Installs the signal handler vcpu_kick relies on. Once per process. */
void vcpu_init_signals(void);

#endif
