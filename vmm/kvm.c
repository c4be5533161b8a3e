#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int check(int fd, long cap)
{
    int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

int kvm_open(const char *path, struct kvm_caps *caps, GError **err)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        const char *hint = e == ENOENT ? "KVM is not available on this host (load kvm_intel or kvm_amd, "
                                         "or enable virtualization in the hypervisor/BIOS)"
                           : (e == EACCES || e == EPERM) ? "add your user to the 'kvm' group or run as root"
                                                         : "check that KVM works on this host";
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "cannot open %s: %s; %s", path,
                    g_strerror(e), hint);
        return -1;
    }
    int api = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (api < 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                    "%s is not a KVM device (KVM_GET_API_VERSION: %s); use /dev/kvm", path,
                    g_strerror(errno));
        close(fd);
        return -1;
    }
    if (api != KVM_API_VERSION) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                    "%s speaks KVM API version %d, vmm needs %d; use a newer host kernel", path, api,
                    KVM_API_VERSION);
        close(fd);
        return -1;
    }
    static const struct { long cap; const char *name; } required[] = {
        { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
        { KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
        { KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
        { KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
        { KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI" },
        { KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
        { KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
    };
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (!check(fd, required[i].cap)) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                        "%s lacks %s, which vmm needs; use a newer host kernel", path, required[i].name);
            close(fd);
            return -1;
        }
    }
    memset(caps, 0, sizeof(*caps));
    caps->max_vcpus = check(fd, KVM_CAP_MAX_VCPUS);
    if (caps->max_vcpus == 0)
        caps->max_vcpus = check(fd, KVM_CAP_NR_VCPUS);
    if (caps->max_vcpus == 0)
        caps->max_vcpus = 4;    /* api.rst: assume 4 when neither is reported */
    caps->split_irqchip = check(fd, KVM_CAP_SPLIT_IRQCHIP) > 0;
    caps->immediate_exit = check(fd, KVM_CAP_IMMEDIATE_EXIT) > 0;
    caps->nested_state = check(fd, KVM_CAP_NESTED_STATE) > 0;
    caps->vcpu_mmap_size = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (caps->vcpu_mmap_size <= 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "KVM_GET_VCPU_MMAP_SIZE failed on %s", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* The `nested` parameter of whichever vendor module is loaded: NULL when
 * neither is (e.g. another KVM implementation), else whether it is set. */
static const char *nested_param(bool *set)
{
    static const char *const mods[] = { "kvm_amd", "kvm_intel" };
    for (size_t i = 0; i < G_N_ELEMENTS(mods); i++) {
        g_autofree char *path = g_strdup_printf("/sys/module/%s/parameters/nested", mods[i]);
        g_autofree char *v = NULL;
        if (!g_file_get_contents(path, &v, NULL, NULL))
            continue;
        *set = v[0] == '1' || v[0] == 'Y' || v[0] == 'y';
        return mods[i];
    }
    return NULL;
}

int kvm_nested_resolve(enum nested_mode mode, const struct kvm_caps *caps, bool cpuid_nests, bool *out,
                       GError **err)
{
    *out = false;
    if (mode == NESTED_OFF)
        return 0;
    bool set = false;
    const char *mod = nested_param(&set);
    g_autofree char *why = NULL;
    if (!mod)
        why = g_strdup("the host KVM has no kvm_amd/kvm_intel nested parameter");
    else if (!set)
        why = g_strdup_printf("%s is loaded with nested=0; reload it with nested=1", mod);
    else if (!cpuid_nests)
        why = g_strdup("KVM does not offer SVM/VMX to guests (the host CPU or hypervisor lacks it)");
    else if (!caps->nested_state)
        why = g_strdup("KVM lacks KVM_CAP_NESTED_STATE; use a newer host kernel");
    if (!why) {
        *out = true;
        return 0;
    }
    if (mode == NESTED_ON) {
        g_set_error(err, CONFIG_ERROR, 0, "--cpus nested=on: this host cannot run nested guests: %s; "
                    "or use nested=off", why);
        return -1;
    }
    return 0;
}
