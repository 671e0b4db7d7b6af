/*
 * lib.c - memory and string helpers.
 *
 * memcpy/memset/memmove/memcmp are real symbols because GCC may emit calls
 * to them even in freestanding code (struct copies, zero-initialisers).
 * The copies use string instructions rather than C loops so that the
 * compiler cannot turn a loop back into a call to the very function being
 * defined.
 */
#include "fw.h"

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;
    size_t q = n / 8, r = n % 8;

    /* Bulk in 8-byte steps, then the tail bytes. (Quadword steps are much
     * cheaper than byte steps where string instructions are emulated.) */
    __asm__ volatile("rep movsq\n\t"
                     "movq %3, %%rcx\n\t"
                     "rep movsb"
                     : "+D"(d), "+S"(src), "+c"(q)
                     : "r"(r)
                     : "memory");
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    void *d = dst;
    size_t q = n / 8, r = n % 8;
    uint64_t v = (uint64_t)(uint8_t)c * 0x0101010101010101ULL;

    __asm__ volatile("rep stosq\n\t"
                     "movq %3, %%rcx\n\t"
                     "rep stosb"
                     : "+D"(d), "+c"(q)
                     : "a"(v), "r"(r)
                     : "memory");
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    if (d == s || n == 0)
        return dst;
    if (d < s || d >= s + n)
        return memcpy(dst, src, n);
    /* Overlapping with dst above src: copy backwards from the last byte. */
    d += n - 1;
    s += n - 1;
    __asm__ volatile("std\n\trep movsb\n\tcld"
                     : "+D"(d), "+S"(s), "+c"(n)
                     : : "memory");
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;

    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}

void *guest_memcpy(void *dst, const void *src, size_t n)
{
    return memcpy(dst, src, n);
}

void *guest_memmove(void *dst, const void *src, size_t n)
{
    return memmove(dst, src, n);
}

void *guest_memset(void *dst, int c, size_t n)
{
    return memset(dst, c, n);
}

int guest_memcmp(const void *a, const void *b, size_t n)
{
    return memcmp(a, b, n);
}

size_t guest_strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int guest_strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

int guest_strncmp(const char *a, const char *b, size_t n)
{
    for (; n > 0; n--, a++, b++) {
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        if (*a == '\0')
            return 0;
    }
    return 0;
}

long guest_strtol(const char *s, const char **end)
{
    int neg = 0;
    unsigned base = 10;
    unsigned long v = 0;

    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    for (;; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = (unsigned)(*s - 'A' + 10);
        else
            break;
        v = v * base + d;
    }
    if (end)
        *end = s;
    return neg ? -(long)v : (long)v;
}

int guest_atoi(const char *s)
{
    return s ? (int)guest_strtol(s, NULL) : 0;
}

uint64_t guest_param_u64(const char *key, uint64_t def)
{
    const char *s = guest_param(key);
    return s ? (uint64_t)guest_strtol(s, NULL) : def;
}

const char *guest_errno_name(long r)
{
    if (r >= 0)
        return "ok";
    switch (-r) {
    case 1: return "EPERM";
    case 2: return "ENOENT";
    case 3: return "ESRCH";
    case 4: return "EINTR";
    case 9: return "EBADF";
    case 11: return "EAGAIN";
    case 12: return "ENOMEM";
    case 13: return "EACCES";
    case 14: return "EFAULT";
    case 16: return "EBUSY";
    case 17: return "EEXIST";
    case 19: return "ENODEV";
    case 22: return "EINVAL";
    case 24: return "EMFILE";
    case 28: return "ENOSPC";
    case 32: return "EPIPE";
    case 38: return "ENOSYS";
    case 90: return "EMSGSIZE";
    case 95: return "EOPNOTSUPP";
    case 98: return "EADDRINUSE";
    case 104: return "ECONNRESET";
    case 105: return "ENOBUFS";
    case 107: return "ENOTCONN";
    case 110: return "ETIMEDOUT";
    case 111: return "ECONNREFUSED";
    case 125: return "ECANCELED";
    }
    return "?";
}
