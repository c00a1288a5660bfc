/*
 * caporacle: runs libcap's C cap_from_text and cap_to_text on each input.
 *
 * Input on stdin: texts separated by NUL bytes. Output on stdout, one line
 * per input: "ERR" when cap_from_text refuses it, else
 * "<effective> <permitted> <inheritable>\t<cap_to_text>" with the sets as
 * 16-digit hex masks of bits 0-63.
 *
 * Built against the installed libcap without its headers (Debian ships
 * libcap.so.2 without libcap-dev), by TestRegenTextOracle:
 *   gcc -O2 -o caporacle caporacle.c /usr/lib/x86_64-linux-gnu/libcap.so.2
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

typedef void *cap_t;
extern cap_t cap_from_text(const char *);
extern char *cap_to_text(cap_t, ssize_t *);
extern int cap_get_flag(cap_t, int, int, int *);
extern int cap_free(void *);

static unsigned long long mask(cap_t c, int flag)
{
    unsigned long long m = 0;
    for (int n = 0; n < 64; n++) {
        int v = 0;
        if (cap_get_flag(c, n, flag, &v) == 0 && v)
            m |= 1ULL << n;
    }
    return m;
}

int main(void)
{
    static char buf[1 << 16];
    size_t len = 0;
    int ch;
    for (;;) {
        ch = getchar();
        if (ch != EOF && ch != 0) {
            if (len + 1 < sizeof(buf))
                buf[len++] = (char) ch;
            continue;
        }
        if (ch == EOF && len == 0)
            break;
        buf[len] = 0;
        len = 0;
        cap_t c = cap_from_text(buf);
        if (c == NULL) {
            printf("ERR\n");
        } else {
            char *t = cap_to_text(c, NULL);
            /* CAP_EFFECTIVE=0, CAP_PERMITTED=1, CAP_INHERITABLE=2 */
            printf("%016llx %016llx %016llx\t%s\n", mask(c, 0), mask(c, 1), mask(c, 2), t ? t : "(null)");
            cap_free(t);
            cap_free(c);
        }
        if (ch == EOF)
            break;
    }
    return 0;
}
