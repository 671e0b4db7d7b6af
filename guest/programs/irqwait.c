/* irqwait: counts VIRQs until param "count" (default 3) have arrived. */
#include <guest.h>

static volatile unsigned virqs;

static void on_virq(void)
{
    virqs++;
}

int guest_main(void)
{
    const char *s = guest_param("count");
    unsigned want = s ? (unsigned)guest_atoi(s) : 3;

    guest_set_virq_handler(on_virq);
    guest_puts("waiting");
    /* on_virq runs only inside guest_wait_for_interrupt, which does not
     * halt if a VIRQ arrived after this check. */
    while (virqs < want)
        guest_wait_for_interrupt();
    guest_printf("got %u virqs\n", virqs);
    return 0;
}
