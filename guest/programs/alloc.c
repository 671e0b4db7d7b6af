/*
 * alloc: drains the page allocator and checks what it hands out.
 *
 * Every page must be 4 KiB aligned and zero-filled. Each page then gets a
 * link to the previous page, its sequence number and a pattern derived from
 * that number in every other word; once the allocator returns NULL the
 * chain is walked and every word is re-checked, which also proves that no
 * two allocations overlap.
 */
#include <guest.h>

#define WORDS  (GUEST_PAGE_SIZE / sizeof(uint64_t))   /* 512 */

/* Word 0: link to the previous page, word 1: sequence number,
 * words 2 ... 511: pattern. */
static uint64_t pattern(uint64_t index, uint64_t word)
{
    return (index << 32) ^ (word * 0x9E3779B97F4A7C15ULL) ^ 0xA5A5A5A5ULL;
}

static int page_zero(const uint64_t *w)
{
    uint64_t any = 0;
    for (size_t i = 0; i < WORDS; i++)
        any |= w[i];
    return any == 0;
}

static void fill(uint64_t *w, uint64_t index)
{
    for (size_t i = 2; i < WORDS; i++)
        w[i] = pattern(index, i);
}

static int check(const uint64_t *w, uint64_t index)
{
    for (size_t i = 2; i < WORDS; i++)
        if (w[i] != pattern(index, i))
            return 0;
    return 1;
}

static int all_zero(const uint8_t *p, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

int guest_main(void)
{
    uint64_t *last = NULL;
    uint64_t count = 0;

    if (guest_alloc_pages(0) != NULL) {
        guest_puts("alloc FAILED: guest_alloc_pages(0) returned memory");
        return 1;
    }

    /* One multi-page block first, checked byte by byte. */
    uint8_t *block = guest_alloc_pages(3);
    if (!block || ((uintptr_t)block & (GUEST_PAGE_SIZE - 1)) ||
        !all_zero(block, 3 * GUEST_PAGE_SIZE)) {
        guest_printf("alloc FAILED: bad 3-page block %p\n", (void *)block);
        return 1;
    }
    guest_memset(block, 0x5A, 3 * GUEST_PAGE_SIZE);

    for (;;) {
        uint64_t *pg = guest_alloc_pages(1);
        if (!pg)
            break;
        if ((uintptr_t)pg & (GUEST_PAGE_SIZE - 1)) {
            guest_printf("alloc FAILED: page %p not aligned\n", (void *)pg);
            return 1;
        }
        if ((uint8_t *)pg < block + 3 * GUEST_PAGE_SIZE && (uint8_t *)pg + GUEST_PAGE_SIZE > block) {
            guest_printf("alloc FAILED: page %p overlaps the 3-page block\n", (void *)pg);
            return 1;
        }
        if (guest_virt_to_phys(pg) != (uint64_t)(uintptr_t)pg) {
            guest_printf("alloc FAILED: virt_to_phys(%p)\n", (void *)pg);
            return 1;
        }
        if (!page_zero(pg)) {
            guest_printf("alloc FAILED: page %p not zeroed\n", (void *)pg);
            return 1;
        }
        pg[0] = (uint64_t)(uintptr_t)last;
        pg[1] = count;
        fill(pg, count);
        last = pg;
        count++;
    }

    if (guest_alloc_pages(1) != NULL) {
        guest_puts("alloc FAILED: allocation succeeded after exhaustion");
        return 1;
    }

    uint64_t seen = 0;
    for (uint64_t *pg = last; pg; pg = (uint64_t *)(uintptr_t)pg[0]) {
        uint64_t idx = count - 1 - seen;
        if (seen >= count || pg[1] != idx || !check(pg, idx)) {
            guest_printf("alloc FAILED: page %p (#%lu) was overwritten\n",
                         (void *)pg, idx);
            return 1;
        }
        seen++;
    }
    for (size_t i = 0; i < 3 * GUEST_PAGE_SIZE; i++) {
        if (block[i] != 0x5A) {
            guest_printf("alloc FAILED: 3-page block byte %lu overwritten\n",
                         (unsigned long)i);
            return 1;
        }
    }

    if (count == 0 || seen != count) {
        guest_printf("alloc FAILED: %lu pages allocated, %lu verified\n", count, seen);
        return 1;
    }
    guest_printf("allocated %lu pages (%lu KiB)\n", count + 3, (count + 3) * 4);
    guest_puts("alloc ok");
    return 0;
}
