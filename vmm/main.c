#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "devices/char_backend.h"
#include "vmm/config.h"
#include "vmm/iothread.h"
#include "vmm/kvm.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/machine.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

static void on_stop_event(void *opaque, int fd, uint32_t revents)
{
    struct machine *r = opaque;
    (void)revents;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("stop event read: %s", g_strerror(errno));
    loop_quit(r->loop);
}

static void on_signal(void *opaque, int fd, uint32_t revents)
{
    struct machine *r = opaque;
    (void)revents;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof(si)) != sizeof(si))
        return;
    if (si.ssi_signo == SIGUSR1) {
        if (r->vm_live)
            vm_report_state(&r->vm);
        return;
    }
    if (si.ssi_signo == SIGWINCH) {
        if (r->vm_live)
            vm_console_resized(&r->vm);
        return;
    }
    log_info("got signal %u, stopping the guest", si.ssi_signo);
    if (r->vm_live)
        vm_request_stop(&r->vm, VM_STOP_SIGNAL, (int)si.ssi_signo);
    else
        loop_quit(r->loop);
}

static void on_console_quit(void *opaque)
{
    struct machine *r = opaque;
    if (r->vm_live)
        vm_request_stop(&r->vm, VM_STOP_SIGNAL, 0);
}

/* The host side of --serial or --console (what = "serial", "console"),
 * kept across resets. *be stays NULL when the device is off. */
static int open_chardev(struct machine *r, const char *what, enum serial_mode mode, const char *path,
                        struct char_backend **be)
{
    g_autoptr(GError) err = NULL;
    if (mode == SERIAL_OFF)
        return 0;
    *be = char_backend_open(mode, path, &err);
    if (!*be) {
        log_error("--%s: %s", what, err->message);
        return -1;
    }
    char_backend_attach(*be, r->loop, on_console_quit, r);
    if (char_backend_pty_path(*be))
        fprintf(stderr, "vmm: %s: %s\n", what, char_backend_pty_path(*be));
    return 0;
}

static int exit_status_for_error(const GError *e)
{
    return e->domain == CONFIG_ERROR ? VMM_EXIT_CONFIG : VMM_EXIT_HOST;
}

/* Runs boots of the guest until it powers off, or a reset is not to be
 * followed by another boot. Returns the process exit status. */
static int run(struct machine *r, const struct vm_config *cfg, int kvm_fd, const struct kvm_caps *caps,
               struct char_backend *serial_be, struct char_backend *console_be)
{
    for (;;) {
        g_autoptr(GError) err = NULL;
        if (vm_create(&r->vm, cfg, kvm_fd, caps, r->loop, serial_be, console_be, &err) < 0) {
            log_error("%s", err->message);
            vm_destroy(&r->vm);
            return exit_status_for_error(err);
        }
        r->vm_live = true;
        int efd = r->vm.stop_eventfd;
        loop_add_fd(r->loop, efd, POLLIN, on_stop_event, r);
        if (vm_start(&r->vm, &err) < 0)
            log_error("%s", err->message);
        int lr = loop_run(r->loop);
        loop_remove_fd(r->loop, efd);
        vm_stop_vcpus(&r->vm);
        r->vm_live = false;
        /* Work the devices deferred to the loop (virtio resets, kicks) runs
         * now, while the devices and guest memory it touches still exist. */
        loop_run_calls(r->loop);

        enum vm_stop_reason reason = r->vm.stop_reason;
        int arg = r->vm.stop_arg;
        vm_destroy(&r->vm);
        if (lr < 0)
            return VMM_EXIT_HOST;
        switch (reason) {
        case VM_STOP_POWEROFF:
            log_info("guest powered off");
            return VMM_EXIT_POWEROFF;
        case VM_STOP_SIGNAL:
        case VM_STOP_NONE:
            return VMM_EXIT_POWEROFF;
        case VM_STOP_DEBUG_EXIT:
            return ((arg << 1) | 1) & 0xff;
        case VM_STOP_INTERNAL_ERROR:
            return VMM_EXIT_INTERNAL;
        case VM_STOP_RESET:
        case VM_STOP_TRIPLE_FAULT:
            if (cfg->reboot == REBOOT_EXIT) {
                log_info("guest %s; exiting (--reboot exit)",
                         reason == VM_STOP_RESET ? "reset" : "triple-faulted");
                return reason == VM_STOP_RESET ? VMM_EXIT_REBOOT : VMM_EXIT_TRIPLE_FAULT;
            }
            log_info("guest %s; restarting", reason == VM_STOP_RESET ? "reset" : "triple-faulted");
            break;
        }
    }
}

int main(int argc, char **argv)
{
    struct vm_config cfg;
    config_init_defaults(&cfg);
    g_autoptr(GError) err = NULL;
    int pr = config_parse_args(&cfg, argc, argv, &err);
    if (pr == 1)
        return 0;
    if (pr < 0 || config_validate(&cfg, &err) < 0) {
        fprintf(stderr, "vmm: error: %s\n", err->message);
        return VMM_EXIT_CONFIG;
    }
    if (boot_check_kernel(cfg.kernel, &err) < 0) {
        fprintf(stderr, "vmm: error: %s\n", err->message);
        return VMM_EXIT_CONFIG;
    }
    /* Taps are host backends: opened once, kept across guest resets. */
    if (config_open_nets(&cfg, &err) < 0) {
        fprintf(stderr, "vmm: error: %s\n", err->message);
        return VMM_EXIT_CONFIG;
    }
    log_threshold = (enum log_level)cfg.log_level;
    if (cfg.name)
        prctl(PR_SET_NAME, cfg.name);

    const char *kvm_path = getenv("VMM_KVM_DEVICE");
    struct kvm_caps caps;
    int kvm_fd = kvm_open(kvm_path ? kvm_path : "/dev/kvm", &caps, &err);
    if (kvm_fd < 0) {
        log_error("%s", err->message);
        return VMM_EXIT_HOST;
    }
    if (cfg.cpus_max > (unsigned)caps.max_vcpus) {
        log_error("--cpus: %u vCPUs is above this host's KVM limit of %d", cfg.cpus_max, caps.max_vcpus);
        return VMM_EXIT_CONFIG;
    }

    signal(SIGPIPE, SIG_IGN);
    vcpu_init_signals();
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);  /* the vCPU state report */
    sigaddset(&sigs, SIGWINCH); /* the terminal's new size for virtio-console */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);    /* inherited by every thread */
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);

    static struct machine r;
    r.cfg = &cfg;
    r.loop = loop_new(&err);
    if (!r.loop) {
        log_error("%s", err->message);
        return VMM_EXIT_HOST;
    }
    loop_add_fd(r.loop, sfd, POLLIN, on_signal, &r);

    for (unsigned i = 0; i < cfg.nr_iothreads; i++)
        if (!iothread_new(cfg.iothreads[i], &err)) {
            log_error("--object iothread,id=%s: %s", cfg.iothreads[i], err->message);
            iothread_free_all();
            return VMM_EXIT_HOST;
        }

    struct char_backend *serial_be = NULL, *console_be = NULL;
    if (open_chardev(&r, "serial", cfg.serial_mode, cfg.serial_path, &serial_be) < 0 ||
        open_chardev(&r, "console", cfg.console_mode, cfg.console_path, &console_be) < 0) {
        char_backend_close(serial_be);
        iothread_free_all();
        return VMM_EXIT_CONFIG;
    }

    int status = run(&r, &cfg, kvm_fd, &caps, serial_be, console_be);

    char_backend_close(console_be);
    char_backend_close(serial_be);
    iothread_free_all();
    loop_free(r.loop);
    close(sfd);
    close(kvm_fd);
    config_clear(&cfg);
    return status;
}
