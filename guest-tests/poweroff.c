/* poweroff: ACPI S5 through the FADT sleep control register with \_S5's
 * SLP_TYP. The VMM must exit 0; reaching the end is a failure (status 3). */
#include "rt.h"

int main(void)
{
    printf("# powering off through ACPI S5 (SLP_TYP %d)\n", acpi_s5_slp_typ());
    power_off();
    printf("not ok - still running after the S5 request\n");
    return 1;
}
