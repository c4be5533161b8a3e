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
    pid_t tid;                  /* for query-cpus-fast later */
};

struct vcpu *vcpu_create(struct vm *vm, unsigned index, GError **err);
/* Starts the vCPU thread. */
int vcpu_start(struct vcpu *v, GError **err);
/* Makes KVM_RUN return (now, or at once if not yet entered). Any thread. */
void vcpu_kick(struct vcpu *v);
/* Joins the thread (after the VM asked every vCPU to stop) and frees. */
void vcpu_destroy(struct vcpu *v);
/* Installs the signal handler vcpu_kick relies on. Once per process. */
void vcpu_init_signals(void);

#endif
