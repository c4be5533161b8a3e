#include "firmware/reset_vector.h"

#include "arch/x86/layout.h"
#include "vmm/memory.h"

_Static_assert(PORT_ACPI_RESET == 0x602 && ACPI_RESET_VALUE == 0x01,
               "the stub below encodes the ACPI reset port and value");

/* 16-bit real-mode code, 11 bytes, ends before 0x100000. */
static const uint8_t reset_stub[] = {
    0xfa,                   /* cli                                  */
    0xba, 0x02, 0x06,       /* mov  $0x602, %dx   (PORT_ACPI_RESET) */
    0xb0, 0x01,             /* mov  $0x01, %al    (ACPI_RESET_VALUE)*/
    0xee,                   /* out  %al, (%dx)                      */
    0xf4,                   /* 1: hlt                               */
    0xeb, 0xfd,             /* jmp  1b                              */
};
_Static_assert(LAYOUT_RESET_VECTOR + sizeof(reset_stub) <= LAYOUT_HIGH_RAM_START,
               "the reset stub must end below 1 MiB");

int firmware_install_reset_vector(struct guest_memory *gm)
{
    return guest_memory_write(gm, LAYOUT_RESET_VECTOR, reset_stub, sizeof(reset_stub));
}
