/* The reset-vector stub: present at F000:FFF0 and shaped as documented. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "firmware/reset_vector.h"
#include "vmm/memory.h"

static void stub_writes_acpi_reset_register(void **state)
{
    (void)state;
    struct guest_memory gm;
    GError *err = NULL;
    assert_int_equal(guest_memory_create(&gm, 16 << 20, false, false, &err), 0);
    assert_int_equal(firmware_install_reset_vector(&gm), 0);
    const uint8_t *p = guest_memory_ptr(&gm, LAYOUT_RESET_VECTOR, 16);
    assert_non_null(p);
    /* mov $PORT_ACPI_RESET, %dx; mov $ACPI_RESET_VALUE, %al; out %al, (%dx) */
    assert_int_equal(p[1], 0xba);
    assert_int_equal(p[2] | (p[3] << 8), PORT_ACPI_RESET);
    assert_int_equal(p[4], 0xb0);
    assert_int_equal(p[5], ACPI_RESET_VALUE);
    assert_int_equal(p[6], 0xee);
    assert_true(guest_memory_page_dirty(&gm, LAYOUT_RESET_VECTOR));
    /* The ACPI window ends where the stub begins. */
    assert_true(LAYOUT_ACPI_END <= LAYOUT_RESET_VECTOR);
    guest_memory_destroy(&gm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stub_writes_acpi_reset_register),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
