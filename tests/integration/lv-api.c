/* A client of libvirt's C API for tests/integration/libvirt.sh (run inside its
 * private libvirtd's namespace): what a management application does to a
 * domain whose emulator is vmm.
 *
 *   lv-api VMM KERNEL
 *
 * Prints TAP lines (no plan: the caller counts them) for: the domain
 * capabilities of VMM (kvm, pc-i440fx-7.2, host-passthrough); a transient
 * domain booting KERNEL (guest-tests/lifecycle) created and running;
 * virDomainSuspend → VIR_DOMAIN_PAUSED, virDomainResume → RUNNING;
 * virDomainGetVcpus: both vCPUs, running; virDomainShutdown (pressed
 * again every 5 s until the guest listens) → the domain ends.
 * Every call is bounded: SIGALRM after 60 s ends the program with a
 * "not ok" line, so a hang in libvirt or vmm fails the case instead of
 * the run. Exit 0 when every line was ok. */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failed;
static const char *current = "start";

static void ok(bool cond, const char *what, const char *detail)
{
    printf("%s - lv-api: %s\n", cond ? "ok" : "not ok", what);
    if (!cond) {
        printf("#   %s\n", detail ? detail : "");
        failed++;
    }
    fflush(stdout);
}

static void on_alarm(int sig)
{
    (void)sig;
    char line[256];
    int n = snprintf(line, sizeof(line), "not ok - lv-api: %s: no answer within 60 s (hang)\n", current);
    if (write(1, line, (size_t)n) < 0) {
        /* nothing more to do */
    }
    _exit(1);
}

/* Bounds the next libvirt call. */
static void step(const char *what)
{
    current = what;
    alarm(60);
}

static const char *lasterr(void)
{
    const virError *e = virGetLastError();
    return e && e->message ? e->message : "(no libvirt error)";
}

static void quiet(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

static int state(virDomainPtr d)
{
    int st = -1, reason;
    step("virDomainGetState");
    if (virDomainGetState(d, &st, &reason, 0) < 0)
        return -1;
    return st;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: lv-api VMM KERNEL\n");
        return 2;
    }
    const char *vmm = argv[1], *kernel = argv[2];
    signal(SIGALRM, on_alarm);
    virSetErrorFunc(NULL, quiet);   /* errors are read with virGetLastError */
    step("virConnectOpen");
    virConnectPtr c = virConnectOpen("qemu:///system");
    if (!c) {
        ok(false, "connect to qemu:///system", lasterr());
        return 1;
    }

    step("virConnectGetDomainCapabilities");
    char *caps = virConnectGetDomainCapabilities(c, vmm, "x86_64", NULL, "kvm", 0);
    ok(caps && strstr(caps, "<domain>kvm</domain>") && strstr(caps, "<machine>pc-i440fx-7.2</machine>") &&
           strstr(caps, "<mode name='host-passthrough' supported='yes'>"),
       "domain capabilities: kvm, pc-i440fx-7.2, host-passthrough", caps ? caps : lasterr());
    free(caps);

    char xml[4096];
    snprintf(xml, sizeof(xml),
             "<domain type='kvm'><name>lvapi</name><memory unit='MiB'>64</memory><vcpu>2</vcpu>"
             "<os><type arch='x86_64' machine='pc'>hvm</type><kernel>%s</kernel><cmdline>console=ttyS0</cmdline></os>"
             "<features><acpi/></features><cpu mode='host-passthrough'/>"
             "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>"
             "<devices><emulator>%s</emulator><serial type='pty'><target port='0'/></serial>"
             "<controller type='usb' model='none'/><memballoon model='none'/></devices></domain>",
             kernel, vmm);
    step("virDomainCreateXML");
    virDomainPtr d = virDomainCreateXML(c, xml, 0);
    int r;
    ok(d && state(d) == VIR_DOMAIN_RUNNING, "virDomainCreateXML: running", d ? "not running" : lasterr());
    if (!d) {
        virConnectClose(c);
        return 1;
    }

    step("virDomainSuspend");
    r = virDomainSuspend(d);
    ok(r == 0 && state(d) == VIR_DOMAIN_PAUSED, "virDomainSuspend: paused", r ? lasterr() : "state not paused");
    step("virDomainResume");
    r = virDomainResume(d);
    ok(r == 0 && state(d) == VIR_DOMAIN_RUNNING, "virDomainResume: running", r ? lasterr() : "state not running");

    virVcpuInfo info[4];
    step("virDomainGetVcpus");
    int nv = virDomainGetVcpus(d, info, 4, NULL, 0);
    char detail[256] = "";
    bool threads = nv == 2;
    if (!threads)
        snprintf(detail, sizeof(detail), "%d vCPUs: %s", nv, nv < 0 ? lasterr() : "");
    ok(threads && info[0].state == VIR_VCPU_RUNNING, "virDomainGetVcpus: 2 running vCPUs", detail);

    /* The power button press reaches a guest that listens for it: the
     * lifecycle guest routes its GED interrupt after its banner, so a press
     * before then is not seen (as with any OS still booting). Pressed again
     * every 5 s, as a user would, for up to 60 s. */
    bool gone = false;
    r = 0;
    for (int i = 0; r == 0 && i < 600 && !gone; i++) {
        if (i % 50 == 0) {
            step("virDomainShutdown");
            r = virDomainShutdown(d);
        }
        step("virDomainLookupByName");
        virDomainPtr again = virDomainLookupByName(c, "lvapi");
        if (!again)
            gone = true;
        else {
            virDomainFree(again);
            usleep(100000);
        }
    }
    ok(r == 0 && gone, "virDomainShutdown: the guest powers off, the domain ends", r ? lasterr() : "still there");
    if (!gone) {
        step("virDomainDestroy");
        virDomainDestroy(d);
    }
    virDomainFree(d);
    step("virConnectClose");
    virConnectClose(c);
    alarm(0);
    return failed ? 1 : 0;
}
