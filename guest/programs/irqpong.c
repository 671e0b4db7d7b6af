/* irqpong: the interrupt round-trip floor. The host injects the VIRQ; the
 * guest's handler runs, and the guest acknowledges with a null hypercall
 * (0x7F, argument = rounds so far), on which the host injects the next one.
 * params: count (rounds, default 10000). Prints "ready" first. */
#include <guest.h>

static volatile uint64_t seen;

static void on_virq(void)
{
    seen++;
}

int guest_main(void)
{
    uint64_t count = guest_param_u64("count", 10000);
    uint64_t acked = 0;

    guest_set_virq_handler(on_virq);
    guest_puts("ready");
    guest_hypercall(0x7F, 0, 0, 0, 0, 0); /* ask for the first VIRQ */
    while (acked < count) {
        guest_wait_for_interrupt();
        while (acked < seen && acked < count) {
            acked++;
            guest_hypercall(0x7F, acked, 0, 0, 0, 0);
        }
    }
    guest_printf("irqpong: %lu rounds\n", (unsigned long)acked);
    return 0;
}
