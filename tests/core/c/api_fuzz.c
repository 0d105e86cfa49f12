/* Throws random and absurd arguments at every kdcore call; built with ASan/UBSan by
 * tests/core/test_c_api_sanitized.py.  Exits 0 only if every call returned a status
 * in range and nothing tripped the sanitizers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kdcore.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

/* Mostly plausible values, sometimes extremes. */
static uint64_t pick(uint64_t ram)
{
    switch (next() % 8) {
    case 0: return 0;
    case 1: return ~0ULL - (next() % 16);
    case 2: return next();
    case 3: return ram - (next() % 8192);
    case 4: return (next() % 64) << (next() % 60);
    default: return next() % (ram + 8192);
    }
}

#define CHECK(expr) do { int s_ = (expr); \
    if (s_ < 0 || s_ >= KD_NUM_STATUS) { fprintf(stderr, "bad status %d: %s\n", s_, #expr); return 1; } \
    } while (0)

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    kd_machine *m = NULL;
    if (kd_machine_new(0, &m) == KD_OK || kd_machine_new(4097, &m) == KD_OK ||
        kd_machine_new(~0ULL & ~0xFFFULL, &m) == KD_OK || kd_machine_new(4096, NULL) == KD_OK) {
        fprintf(stderr, "absurd RAM sizes accepted\n");
        return 1;
    }
    const uint64_t ram = 8 << 20;
    CHECK(kd_machine_new(ram, &m));
    /* Random bytes everywhere, so walks wander through garbage tables. */
    static uint8_t junk[1 << 16];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)next();
    for (uint64_t pa = 0; pa < ram; pa += sizeof junk) CHECK(kd_phys_write(m, pa, junk, sizeof junk, NULL));
    uint64_t starts[3] = {0, 2 << 20, 6 << 20}, lens[3] = {1 << 20, 3 << 20, 2 << 20};
    CHECK(kd_set_runs(m, starts, lens, 3));

    static uint8_t buf[3 * 4096];
    kd_walk w;
    uint64_t done;
    uint64_t vas[64], pas[64];
    int32_t st[64];
    for (long i = 0; i < iters; i++) {
        uint64_t a = pick(ram), b = pick(ram);
        uint32_t acc = (uint32_t)(next() % 32);
        uint64_t len = next() % sizeof buf;
        switch (next() % 14) {
        case 0: CHECK(kd_set_paging(m, (int)(next() % 6) - 1, a & ~0x1FULL, (uint32_t)(next() % 32))); break;
        case 1: CHECK(kd_set_cr3(m, next() % 2 ? (a & ~0xFFFULL) % ram : a)); break;
        case 2: CHECK(kd_translate(m, a, acc, &w)); break;
        case 3: (void)kd_probe_pa(m, a); break;
        case 4: for (int k = 0; k < 64; k++) vas[k] = pick(ram);
                CHECK(kd_translate_batch(m, vas, 64, acc, pas, st)); break;
        case 5: CHECK(kd_virt_read(m, a, buf, len, acc, &done, &w));
                if (done > len) { fprintf(stderr, "done %llu > len %llu\n", (unsigned long long)done, (unsigned long long)len); return 1; } break;
        case 6: CHECK(kd_virt_write(m, a, buf, len, acc, &done, next() % 2 ? &w : NULL));
                if (done > len) { fprintf(stderr, "done %llu > len %llu\n", (unsigned long long)done, (unsigned long long)len); return 1; } break;
        case 7: CHECK(kd_phys_read(m, a, buf, len, &done)); if (done > len) { fprintf(stderr, "done %llu > len %llu\n", (unsigned long long)done, (unsigned long long)len); return 1; } break;
        case 8: CHECK(kd_phys_write(m, a, buf, len, NULL)); break;
        case 9: { void *p; CHECK(kd_phys_ptr(m, a, b % 65536, &p)); break; }
        case 10: CHECK(kd_phys_discard(m, a & ~0xFFFULL, (b % 8) * 4096)); break;
        case 11: CHECK(kd_invlpg(m, a)); CHECK(kd_flush_tlb(m, (int)(next() % 2))); break;
        case 12: CHECK(kd_set_maxphyaddr(m, (uint32_t)(next() % 64))); break;
        case 13: CHECK(kd_phys_valid(m, a, b) ? KD_OK : KD_OK);
                 CHECK(kd_probe_as(m, b, a, acc, &w));
                 for (int k = 0; k < 64; k++) vas[k] = pick(ram);
                 CHECK(kd_probe_batch_as(m, next() % 2 ? (b & ~0xFFFULL) % ram : b, vas,
                                         next() % 65, acc, pas, st)); break;
        }
    }
    /* NULL handles and out-pointers are statuses too. */
    CHECK(kd_translate(NULL, 0, 0, &w));
    CHECK(kd_translate(m, 0, 0, NULL));
    CHECK(kd_probe_as(NULL, 0, 0, 0, &w));
    CHECK(kd_phys_read(NULL, 0, buf, 1, NULL));
    CHECK(kd_virt_read(m, 0, NULL, 4, 0, NULL, NULL));
    CHECK(kd_translate_batch(m, NULL, 4, 0, pas, st));
    CHECK(kd_probe_batch_as(NULL, 0, vas, 4, 0, pas, st));
    CHECK(kd_probe_batch_as(m, 0, vas, 4, 0, NULL, st));
    CHECK(kd_set_runs(m, NULL, NULL, 2));
    CHECK(kd_get_stats(NULL, NULL));
    if (kd_probe_pa(NULL, 0) != KD_BAD_PA) { fputs("probe of NULL\n", stderr); return 1; }
    if (strcmp(kd_strerror(-1), "unknown status") != 0) { fputs("strerror\n", stderr); return 1; }
    kd_machine_free(m);
    kd_machine_free(NULL);
    puts("ok");
    return 0;
}
