/*
 * console.c - serial console and the printf family.
 *
 * Output goes to the serial transmit port (0x3F8 unless the boot info says
 * otherwise). Whole strings are sent with one `rep outsb` (by the firmware
 * gate when called at CPL 3), which the VMM sees as a single string-I/O
 * exit. A call of guest_printf/guest_puts holds the console lock from its
 * first to its last byte, so lines from several vCPUs never interleave.
 */
#include "fw.h"

#define CON_BUF 512

/* 0 = free, otherwise (owning vCPU index + 1). */
static volatile uint32_t con_owner;

static void serial_send(const char *s, size_t n)
{
    fw_outsb(fw_serial_port, s, n);
}

static void con_lock(void)
{
    uint32_t me = guest_cpu_id() + 1;

    for (;;) {
        uint32_t expected = 0;
        if (__atomic_compare_exchange_n(&con_owner, &expected, me, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        while (__atomic_load_n(&con_owner, __ATOMIC_RELAXED) != 0)
            guest_cpu_relax();
    }
}

/* Exception path: never deadlock. Returns 1 if the lock was taken (and must
 * be released), 0 if we print without it. This runs at CPL 0, where each
 * iteration may cost microseconds (emulation), while a holder at CPL 3
 * keeps the lock for one string-I/O exit: a short bound is enough. */
static int con_lock_emergency(void)
{
    uint32_t me = guest_cpu_id() + 1;

    if (__atomic_load_n(&con_owner, __ATOMIC_RELAXED) == me)
        return 0;       /* faulted while printing: just go ahead */
    for (unsigned long spins = 0; spins < (1UL << 14); spins++) {
        uint32_t expected = 0;
        if (__atomic_compare_exchange_n(&con_owner, &expected, me, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return 1;
        guest_cpu_relax();
    }
    return 0;
}

static void con_unlock(void)
{
    __atomic_store_n(&con_owner, 0, __ATOMIC_RELEASE);
}

/* ---- formatting engine -------------------------------------------------------- */

struct sink {
    char *buf;
    size_t cap;         /* bytes usable in buf */
    size_t len;         /* bytes currently in buf */
    size_t total;       /* bytes produced overall */
    int to_serial;      /* flush full buffers to the serial port */
};

static void sink_flush(struct sink *o)
{
    if (o->to_serial) {
        serial_send(o->buf, o->len);
        o->len = 0;
    }
}

static void sink_putc(struct sink *o, char c)
{
    o->total++;
    if (o->len == o->cap) {
        if (!o->to_serial)
            return;     /* snprintf: truncate, keep counting */
        sink_flush(o);
    }
    o->buf[o->len++] = c;
}

static void sink_repeat(struct sink *o, char c, int n)
{
    while (n-- > 0)
        sink_putc(o, c);
}

static void sink_str(struct sink *o, const char *s, size_t n)
{
    while (n--)
        sink_putc(o, *s++);
}

#define F_LEFT  0x01
#define F_ZERO  0x02
#define F_PLUS  0x04
#define F_SPACE 0x08
#define F_ALT   0x10

struct spec {
    int flags;
    int width;          /* -1: none */
    int prec;           /* -1: none */
};

/* Emit an integer: magnitude v, sign character (0 if none), prefix ("0x"). */
static void put_number(struct sink *o, const struct spec *sp, uint64_t v,
                       unsigned base, int upper, char sign, const char *prefix)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int nd = 0;

    /* Precision 0 with value 0 prints no digits (C rule). */
    if (!(v == 0 && sp->prec == 0)) {
        do {
            tmp[nd++] = digits[v % base];
            v /= base;
        } while (v != 0);
    }

    int plen = prefix ? (int)guest_strlen(prefix) : 0;
    int zeros = sp->prec > nd ? sp->prec - nd : 0;
    int body = (sign ? 1 : 0) + plen + zeros + nd;
    int pad = sp->width > body ? sp->width - body : 0;

    /* '0' flag: pad with zeros between sign/prefix and digits, unless a
     * precision was given or the field is left-justified. */
    if ((sp->flags & F_ZERO) && !(sp->flags & F_LEFT) && sp->prec < 0) {
        zeros += pad;
        pad = 0;
    }
    if (!(sp->flags & F_LEFT))
        sink_repeat(o, ' ', pad);
    if (sign)
        sink_putc(o, sign);
    if (plen)
        sink_str(o, prefix, (size_t)plen);
    sink_repeat(o, '0', zeros);
    while (nd > 0)
        sink_putc(o, tmp[--nd]);
    if (sp->flags & F_LEFT)
        sink_repeat(o, ' ', pad);
}

static void put_string(struct sink *o, const struct spec *sp, const char *s)
{
    if (!s)
        s = "(null)";
    size_t n = 0;
    while (s[n] && (sp->prec < 0 || n < (size_t)sp->prec))
        n++;
    int pad = sp->width > (int)n ? sp->width - (int)n : 0;

    if (!(sp->flags & F_LEFT))
        sink_repeat(o, ' ', pad);
    sink_str(o, s, n);
    if (sp->flags & F_LEFT)
        sink_repeat(o, ' ', pad);
}

enum len_mod { L_NONE, L_HH, L_H, L_L, L_LL, L_Z, L_T, L_J };

static void format(struct sink *o, const char *fmt, va_list ap)
{
    while (*fmt) {
        if (*fmt != '%') {
            sink_putc(o, *fmt++);
            continue;
        }
        const char *start = fmt++;
        struct spec sp = { .flags = 0, .width = -1, .prec = -1 };

        /* flags */
        for (;; fmt++) {
            if (*fmt == '-') sp.flags |= F_LEFT;
            else if (*fmt == '0') sp.flags |= F_ZERO;
            else if (*fmt == '+') sp.flags |= F_PLUS;
            else if (*fmt == ' ') sp.flags |= F_SPACE;
            else if (*fmt == '#') sp.flags |= F_ALT;
            else break;
        }
        /* width */
        if (*fmt == '*') {
            int w = va_arg(ap, int);
            if (w < 0) {
                sp.flags |= F_LEFT;
                w = -w;
            }
            sp.width = w;
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9') {
                sp.width = (sp.width < 0 ? 0 : sp.width) * 10 + (*fmt - '0');
                fmt++;
            }
        }
        /* precision */
        if (*fmt == '.') {
            fmt++;
            sp.prec = 0;
            if (*fmt == '*') {
                int p = va_arg(ap, int);
                sp.prec = p < 0 ? -1 : p;
                fmt++;
            } else {
                while (*fmt >= '0' && *fmt <= '9')
                    sp.prec = sp.prec * 10 + (*fmt++ - '0');
            }
        }
        /* length */
        enum len_mod lm = L_NONE;
        if (*fmt == 'h') {
            fmt++;
            lm = L_H;
            if (*fmt == 'h') {
                fmt++;
                lm = L_HH;
            }
        } else if (*fmt == 'l') {
            fmt++;
            lm = L_L;
            if (*fmt == 'l') {
                fmt++;
                lm = L_LL;
            }
        } else if (*fmt == 'z') {
            fmt++;
            lm = L_Z;
        } else if (*fmt == 't') {
            fmt++;
            lm = L_T;
        } else if (*fmt == 'j') {
            fmt++;
            lm = L_J;
        }

        char conv = *fmt;
        if (conv == '\0') {
            /* Dangling '%': print it literally. */
            sink_str(o, start, (size_t)(fmt - start));
            break;
        }
        fmt++;

        switch (conv) {
        case 'd':
        case 'i': {
            int64_t v;
            switch (lm) {
            case L_L: v = va_arg(ap, long); break;
            case L_LL: v = va_arg(ap, long long); break;
            case L_Z: v = (int64_t)va_arg(ap, size_t); break;
            case L_T: v = va_arg(ap, ptrdiff_t); break;
            case L_J: v = va_arg(ap, int64_t); break;
            case L_HH: v = (signed char)va_arg(ap, int); break;
            case L_H: v = (short)va_arg(ap, int); break;
            default: v = va_arg(ap, int); break;
            }
            char sign = 0;
            uint64_t mag;
            if (v < 0) {
                sign = '-';
                mag = (uint64_t)0 - (uint64_t)v;   /* also right for INT64_MIN */
            } else {
                mag = (uint64_t)v;
                if (sp.flags & F_PLUS)
                    sign = '+';
                else if (sp.flags & F_SPACE)
                    sign = ' ';
            }
            put_number(o, &sp, mag, 10, 0, sign, NULL);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            uint64_t v;
            switch (lm) {
            case L_L: v = va_arg(ap, unsigned long); break;
            case L_LL: v = va_arg(ap, unsigned long long); break;
            case L_Z: v = va_arg(ap, size_t); break;
            case L_T: v = (uint64_t)va_arg(ap, ptrdiff_t); break;
            case L_J: v = va_arg(ap, uint64_t); break;
            case L_HH: v = (unsigned char)va_arg(ap, unsigned); break;
            case L_H: v = (unsigned short)va_arg(ap, unsigned); break;
            default: v = va_arg(ap, unsigned); break;
            }
            unsigned base = conv == 'u' ? 10 : conv == 'o' ? 8 : 16;
            const char *prefix = NULL;
            if ((sp.flags & F_ALT) && v != 0)
                prefix = conv == 'x' ? "0x" : conv == 'X' ? "0X" : conv == 'o' ? "0" : NULL;
            put_number(o, &sp, v, base, conv == 'X', 0, prefix);
            break;
        }
        case 'p': {
            uint64_t v = (uint64_t)(uintptr_t)va_arg(ap, void *);
            put_number(o, &sp, v, 16, 0, 0, "0x");
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            int pad = sp.width > 1 ? sp.width - 1 : 0;
            if (!(sp.flags & F_LEFT))
                sink_repeat(o, ' ', pad);
            sink_putc(o, c);
            if (sp.flags & F_LEFT)
                sink_repeat(o, ' ', pad);
            break;
        }
        case 's':
            put_string(o, &sp, va_arg(ap, const char *));
            break;
        case '%':
            sink_putc(o, '%');
            break;
        default:
            /* Unknown conversion: show it as written. */
            sink_str(o, start, (size_t)(fmt - start));
            break;
        }
    }
}

/* ---- public entry points ---------------------------------------------------------- */

int guest_vprintf(const char *fmt, va_list ap)
{
    char buf[CON_BUF];
    struct sink o = { .buf = buf, .cap = sizeof(buf), .len = 0, .total = 0, .to_serial = 1 };

    con_lock();
    format(&o, fmt, ap);
    sink_flush(&o);
    con_unlock();
    return (int)o.total;
}

int guest_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = guest_vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int guest_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    char dummy;
    struct sink o = {
        .buf = size ? buf : &dummy,
        .cap = size ? size - 1 : 0,
        .len = 0,
        .total = 0,
        .to_serial = 0,
    };
    format(&o, fmt, ap);
    if (size)
        buf[o.len] = '\0';
    return (int)o.total;
}

int guest_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = guest_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

void guest_puts(const char *s)
{
    char buf[CON_BUF];
    struct sink o = { .buf = buf, .cap = sizeof(buf), .len = 0, .total = 0, .to_serial = 1 };

    con_lock();
    if (s)
        sink_str(&o, s, guest_strlen(s));
    sink_putc(&o, '\n');
    sink_flush(&o);
    con_unlock();
}

void fw_console_write(const char *s, size_t n)
{
    con_lock();
    serial_send(s, n);
    con_unlock();
}

int fw_console_printf_emergency(const char *fmt, ...)
{
    char buf[CON_BUF];
    struct sink o = { .buf = buf, .cap = sizeof(buf), .len = 0, .total = 0, .to_serial = 1 };
    va_list ap;
    int locked = con_lock_emergency();

    va_start(ap, fmt);
    format(&o, fmt, ap);
    va_end(ap);
    sink_flush(&o);
    if (locked)
        con_unlock();
    return (int)o.total;
}
