#include "devices/rtc.h"
#include <stddef.h>
struct rtc *rtc_create(struct bus *pio, struct irq_line irq) { return NULL; }
struct device rtc_device(struct rtc *r) { return (struct device){ 0 }; }
