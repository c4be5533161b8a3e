/* reboot: via=i8042 (default) pulses the reset line through the keyboard
 * controller, via=acpi writes the FADT reset register. vmm with --reboot exit
 * must exit 4; reaching the end is a failure (status 3). */
#include "rt.h"

int main(void)
{
    char via[8] = "i8042";
    cmdline_get("via", via, sizeof(via));
    if (strcmp(via, "acpi") == 0) {
        printf("# resetting through the ACPI reset register\n");
        reset_acpi();
    } else {
        printf("# resetting through the i8042\n");
        reset_i8042();
    }
    printf("not ok - still running after the reset request\n");
    return 1;
}
