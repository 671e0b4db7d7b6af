/* argostorm: a noisy neighbour for the isolation benchmark. Forever:
 * registers and unregisters eight rings of its own, and sends a 64-byte
 * message to (victim, port) (errors ignored: the victim's ring there fills
 * up and stays full). params: victim (domid, required), port (default 9).
 * Prints "storming" once. */
#include <guest.h>
#include <argo.h>

#define NRINGS 8

int guest_main(void)
{
    uint16_t victim = (uint16_t)guest_param_u64("victim", 0);
    uint32_t vport = (uint32_t)guest_param_u64("port", 9);
    uint64_t *gfns[NRINGS];
    static uint8_t payload[64];

    for (int i = 0; i < NRINGS; i++) {
        uint8_t *ring = guest_alloc_pages(1);
        gfns[i] = guest_alloc_pages(1);
        if (!ring || !gfns[i]) {
            guest_puts("argostorm: out of memory");
            return 1;
        }
        gfns[i][0] = guest_virt_to_phys(ring) >> 12;
    }
    guest_puts("storming");
    for (uint64_t n = 0;; n++) {
        for (int i = 0; i < NRINGS; i++) {
            struct argo_register_ring reg = { .aport = 100 + i, .partner_id = guest_domid(), .len = 4096 - 64 };
            argo_register_ring(&reg, gfns[i], 1, 0);
        }
        for (int i = 0; i < NRINGS; i++) {
            struct argo_unregister_ring un = { .aport = 100 + i, .partner_id = guest_domid() };
            argo_unregister_ring(&un);
        }
        argo_send(victim, vport, 1, payload, sizeof payload, (uint32_t)n);
    }
    return 0;
}
