/* Records generated on first touch.
 *
 * A large array of records that differ only by counters (a PFN database's run of free
 * pages: entry i links to i+1 and i-1, the rest equal) does not need host memory until
 * someone looks at it.  kd_phys_lazy_records writes the pages at the ends of such an
 * array at once and leaves the pages wholly inside it without access (PROT_NONE); the
 * first access of any kind -- a read, a write, a numpy view, a page walk -- faults, and
 * the SIGSEGV handler below gives the granule its content and its access back, then the
 * access runs again.  A guest therefore reads the same bytes either way; only the host's
 * resident memory differs (a 64 GB guest's PFN database is 768 MB).
 *
 * The handler owns only faults inside registered granules; any other fault goes to the
 * handler that was installed before (Python's faulthandler, or the default action). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "kd_internal.h"

#define LAZY_GRANULE (16 * KD_PAGE_SIZE)   /* few VMAs: a region materializes 64 KB at once */
#define LAZY_MAX     256
#define LAZY_FIELDS  4
#define LAZY_RECORD  64

typedef struct {
    kd_machine *m;                      /* NULL: a free slot */
    uint8_t    *rec_base;               /* host address of record 0 */
    uint64_t    size, count, index0;
    uint8_t     templ[LAZY_RECORD];
    uint32_t    off[LAZY_FIELDS], width[LAZY_FIELDS];
    int64_t     delta[LAZY_FIELDS];
    uint32_t    nfields;
    uint8_t    *lo, *hi;                /* the granules left without access */
    uint8_t    *pending;                /* one byte a granule: 1 until materialized */
    uint64_t    npending;
} lazy_region;

static lazy_region regions[LAZY_MAX];
static struct sigaction previous;

/* The bytes of the records in host range [from, to) (inside the region's records). */
static void generate(const lazy_region *r, uint8_t *from, uint8_t *to)
{
    uint64_t first = (uint64_t)(from - r->rec_base) / r->size;
    for (uint64_t i = first; i < r->count; i++) {
        uint8_t rec[LAZY_RECORD];
        uint8_t *at = r->rec_base + i * r->size;
        if (at >= to)
            break;
        memcpy(rec, r->templ, r->size);
        for (uint32_t k = 0; k < r->nfields; k++) {
            uint64_t v = r->index0 + i + (uint64_t)r->delta[k];
            for (uint32_t b = 0; b < r->width[k]; b++)
                rec[r->off[k] + b] = (uint8_t)(v >> (8 * b));
        }
        uint8_t *lo = at < from ? from : at;
        uint8_t *hi = at + r->size > to ? to : at + r->size;
        memcpy(lo, rec + (lo - at), (size_t)(hi - lo));
    }
}

static int materialize(lazy_region *r, uint64_t g)
{
    if (!r->pending[g])
        return 0;
    uint8_t *at = r->lo + g * LAZY_GRANULE;
    if (mprotect(at, LAZY_GRANULE, PROT_READ | PROT_WRITE) != 0)
        return -1;
    r->pending[g] = 0;
    r->npending--;
    generate(r, at, at + LAZY_GRANULE);
    return 0;
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    uint8_t *a = (uint8_t *)si->si_addr;
    for (int i = 0; i < LAZY_MAX; i++) {
        lazy_region *r = &regions[i];
        if (r->m && a >= r->lo && a < r->hi) {
            if (materialize(r, (uint64_t)(a - r->lo) / LAZY_GRANULE) == 0)
                return;          /* the access runs again, now on the records */
            break;
        }
    }
    /* Not ours: what was there before. */
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, si, uc);
    } else if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
        signal(sig, SIG_DFL);    /* the access faults again and ends the process */
    } else {
        previous.sa_handler(sig);
    }
}

static int install(void)
{
    struct sigaction now;
    if (sigaction(SIGSEGV, NULL, &now) != 0)
        return -1;
    if ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_fault)
        return 0;                /* still ours */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGSEGV, &sa, &previous) != 0 ? -1 : 0;
}

int kd_phys_lazy_records(kd_machine *m, uint64_t pa, uint64_t size, uint64_t count,
                         const uint8_t *templ, uint64_t index0, const uint32_t *field_off,
                         const uint32_t *field_width, const int64_t *field_delta,
                         uint32_t nfields)
{
    if (!m || !templ || size == 0 || size > LAZY_RECORD || nfields > LAZY_FIELDS ||
        (nfields && (!field_off || !field_width || !field_delta)))
        return KD_E_INVAL;
    for (uint32_t k = 0; k < nfields; k++)
        if (field_width[k] == 0 || field_width[k] > 8 || field_off[k] > size ||
            field_width[k] > size - field_off[k])
            return KD_E_INVAL;
    if (count == 0)
        return KD_OK;
    if (count > UINT64_MAX / size)
        return KD_E_RANGE;
    uint64_t bytes = count * size;
    if (!kd_phys_ok(m, pa, bytes))
        return KD_E_PHYS;
    lazy_region r;
    memset(&r, 0, sizeof r);
    r.m = m;
    r.rec_base = m->ram + pa;
    r.size = size;
    r.count = count;
    r.index0 = index0;
    memcpy(r.templ, templ, size);
    r.nfields = nfields;
    for (uint32_t k = 0; k < nfields; k++) {
        r.off[k] = field_off[k];
        r.width[k] = field_width[k];
        r.delta[k] = field_delta[k];
    }
    uint8_t *end = r.rec_base + bytes;
    uintptr_t g = LAZY_GRANULE;
    r.lo = (uint8_t *)(((uintptr_t)r.rec_base + g - 1) / g * g);
    r.hi = (uint8_t *)((uintptr_t)end / g * g);
    int slot = -1;
    if (r.hi > r.lo) {
        for (int i = 0; i < LAZY_MAX && slot < 0; i++)
            if (!regions[i].m)
                slot = i;
    }
    if (slot < 0 || install() != 0) {    /* small, or no room: every byte at once */
        generate(&r, r.rec_base, end);
        return KD_OK;
    }
    uint64_t granules = (uint64_t)(r.hi - r.lo) / LAZY_GRANULE;
    r.pending = malloc(granules);
    if (!r.pending) {
        generate(&r, r.rec_base, end);
        return KD_OK;
    }
    memset(r.pending, 1, granules);
    r.npending = granules;
    generate(&r, r.rec_base, r.lo);      /* the partial granules at both ends */
    generate(&r, r.hi, end);
    /* Drop whatever backs the middle, then leave it without access until touched. */
    madvise(r.lo, (size_t)(r.hi - r.lo), MADV_DONTNEED);
    if (mprotect(r.lo, (size_t)(r.hi - r.lo), PROT_NONE) != 0) {
        free(r.pending);
        generate(&r, r.lo, r.hi);
        return KD_OK;
    }
    regions[slot] = r;
    return KD_OK;
}

/* Materialize the granules of m's regions that overlap host [lo, hi). */
static void materialize_range(kd_machine *m, uint8_t *lo, uint8_t *hi)
{
    for (int i = 0; i < LAZY_MAX; i++) {
        lazy_region *r = &regions[i];
        if (r->m != m || hi <= r->lo || lo >= r->hi)
            continue;
        uint8_t *a = lo < r->lo ? r->lo : lo;
        uint8_t *b = hi > r->hi ? r->hi : hi;
        for (uint64_t g = (uint64_t)(a - r->lo) / LAZY_GRANULE;
             g < ((uint64_t)(b - r->lo) + LAZY_GRANULE - 1) / LAZY_GRANULE; g++)
            materialize(r, g);
    }
}

void kd_lazy_before_discard(kd_machine *m, uint64_t pa, uint64_t len)
{
    materialize_range(m, m->ram + pa, m->ram + pa + len);
}

void kd_lazy_forget(kd_machine *m)
{
    for (int i = 0; i < LAZY_MAX; i++) {
        if (regions[i].m == m) {
            free(regions[i].pending);
            memset(&regions[i], 0, sizeof regions[i]);
        }
    }
}

uint64_t kd_phys_lazy_pending(const kd_machine *m)
{
    uint64_t n = 0;
    if (!m)
        return 0;
    for (int i = 0; i < LAZY_MAX; i++)
        if (regions[i].m == m)
            n += regions[i].npending;
    return n * (LAZY_GRANULE / KD_PAGE_SIZE);
}

int kd_phys_materialize(kd_machine *m, uint64_t pa, uint64_t len)
{
    if (!m)
        return KD_E_INVAL;
    if (len == 0)
        return KD_OK;
    if (pa >= m->ram_bytes || len > m->ram_bytes - pa)
        return KD_E_RANGE;
    materialize_range(m, m->ram + pa, m->ram + pa + len);
    return KD_OK;
}
