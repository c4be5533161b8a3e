/* Prints one line, then idles forever with interrupts off (a halted vCPU):
 * for measuring the VMM's resident memory with a live guest. */
#include "rt.h"

int main(void)
{
    printf("vmm spin guest: up, halting forever\n");
    halt_forever();
}
