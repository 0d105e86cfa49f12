/* Guest physical RAM: one lazily backed host reservation, physical runs with holes. */
#define _DEFAULT_SOURCE
#include <stdlib.h>
#include <sys/mman.h>
#include "kd_internal.h"

static const char *const kd_messages[KD_NUM_STATUS] = {
    [KD_OK] = "success",
    [KD_E_INVAL] = "invalid argument",
    [KD_E_NOMEM] = "out of host memory",
    [KD_E_RANGE] = "size or length out of range",
    [KD_E_PHYS] = "physical address not backed by RAM",
    [KD_E_ALIGN] = "misaligned address",
    [KD_E_PAGE_FAULT] = "page fault",
    [KD_E_NONCANONICAL] = "non-canonical address",
    [KD_E_VA_RANGE] = "virtual address wider than the paging mode",
};

const char *kd_strerror(int status)
{
    if (status < 0 || status >= KD_NUM_STATUS)
        return "unknown status";
    return kd_messages[status];
}

int kd_machine_new(uint64_t ram_bytes, kd_machine **out)
{
    if (!out)
        return KD_E_INVAL;
    *out = NULL;
    if (ram_bytes == 0 || ram_bytes > KD_MAX_RAM)
        return KD_E_RANGE;
    if (ram_bytes & KD_PAGE_MASK)
        return KD_E_ALIGN;
    kd_machine *m = calloc(1, sizeof *m);
    if (!m)
        return KD_E_NOMEM;
    /* MAP_NORESERVE: guest RAM is sparse by nature; the host backs a page on first
     * touch.  No huge pages, so one touched guest page costs one host page. */
    void *p = mmap(NULL, ram_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        free(m);
        return KD_E_NOMEM;
    }
#ifdef MADV_NOHUGEPAGE
    madvise(p, ram_bytes, MADV_NOHUGEPAGE);
#endif
    m->refs = 1;
    m->ram = p;
    m->ram_bytes = ram_bytes;
    m->map_bytes = ram_bytes;
    uint64_t start = 0;
    int st = kd_set_runs(m, &start, &ram_bytes, 1);
    if (st != KD_OK) {
        kd_machine_free(m);
        return st;
    }
    m->maxphyaddr = 48;
    kd_paging_derive(m);
    *out = m;
    return KD_OK;
}

int kd_machine_retain(kd_machine *m)
{
    if (!m || m->refs == 0)
        return KD_E_INVAL;
    m->refs++;
    return KD_OK;
}

void kd_machine_free(kd_machine *m)
{
    if (!m || --m->refs > 0)
        return;
    kd_lazy_forget(m);
    if (m->ram)
        munmap(m->ram, m->map_bytes);
    free(m->run_start);
    free(m->run_end);
    free(m);
}

uint64_t kd_ram_size(const kd_machine *m)
{
    return m ? m->ram_bytes : 0;
}

static int cmp_u64_pair(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

int kd_set_runs(kd_machine *m, const uint64_t *starts, const uint64_t *lengths, size_t n)
{
    if (!m || (n && (!starts || !lengths)))
        return KD_E_INVAL;
    if (n > m->ram_bytes / KD_PAGE_SIZE)
        return KD_E_RANGE;
    uint64_t *pairs = malloc((n ? n : 1) * 2 * sizeof *pairs);
    if (!pairs)
        return KD_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((starts[i] | lengths[i]) & KD_PAGE_MASK) {
            free(pairs);
            return KD_E_ALIGN;
        }
        if (lengths[i] == 0 || starts[i] >= m->ram_bytes || lengths[i] > m->ram_bytes - starts[i]) {
            free(pairs);
            return KD_E_RANGE;
        }
        pairs[2 * i] = starts[i];
        pairs[2 * i + 1] = starts[i] + lengths[i];
    }
    qsort(pairs, n, 2 * sizeof *pairs, cmp_u64_pair);
    for (size_t i = 1; i < n; i++) {
        if (pairs[2 * i] < pairs[2 * i - 1]) {
            free(pairs);
            return KD_E_RANGE;  /* overlapping runs */
        }
    }
    uint64_t *rs = malloc((n ? n : 1) * sizeof *rs), *re = malloc((n ? n : 1) * sizeof *re);
    if (!rs || !re) {
        free(pairs); free(rs); free(re);
        return KD_E_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && re[k - 1] == pairs[2 * i]) {
            re[k - 1] = pairs[2 * i + 1];  /* adjacent runs merge */
        } else {
            rs[k] = pairs[2 * i];
            re[k] = pairs[2 * i + 1];
            k++;
        }
    }
    free(pairs);
    free(m->run_start);
    free(m->run_end);
    m->run_start = rs;
    m->run_end = re;
    m->nruns = k;
    m->single_run = (k == 1 && rs[0] == 0 && re[0] == m->ram_bytes);
    return KD_OK;
}

size_t kd_run_count(const kd_machine *m)
{
    return m ? m->nruns : 0;
}

int kd_get_run(const kd_machine *m, size_t i, uint64_t *start, uint64_t *length)
{
    if (!m || !start || !length)
        return KD_E_INVAL;
    if (i >= m->nruns)
        return KD_E_RANGE;
    *start = m->run_start[i];
    *length = m->run_end[i] - m->run_start[i];
    return KD_OK;
}

int kd_phys_valid(const kd_machine *m, uint64_t pa, uint64_t len)
{
    if (!m)
        return 0;
    return kd_phys_ok(m, pa, len ? len : 1);
}

int kd_phys_span(kd_machine *m, uint64_t pa, uint64_t len, kd_piece_fn fn, void *ctx,
                 uint64_t *done)
{
    uint64_t did = 0;
    int st = KD_OK;
    while (did < len) {
        uint64_t cur = pa + did;
        if (cur < pa) {  /* wrapped past 2^64 */
            st = KD_E_PHYS;
            break;
        }
        uint64_t n = KD_PAGE_SIZE - (cur & KD_PAGE_MASK);
        if (n > len - did)
            n = len - did;
        if (!kd_phys_ok(m, cur, n)) {
            st = KD_E_PHYS;
            break;
        }
        fn(m->ram + cur, did, n, ctx);
        did += n;
    }
    if (done)
        *done = did;
    return st;
}

static void piece_read(uint8_t *host, uint64_t off, uint64_t n, void *ctx)
{
    memcpy((uint8_t *)ctx + off, host, n);
}

static void piece_write(uint8_t *host, uint64_t off, uint64_t n, void *ctx)
{
    memcpy(host, (const uint8_t *)ctx + off, n);
}

int kd_phys_read(kd_machine *m, uint64_t pa, void *buf, uint64_t len, uint64_t *done)
{
    if (done)
        *done = 0;
    if (!m || (len && !buf))
        return KD_E_INVAL;
    return kd_phys_span(m, pa, len, piece_read, buf, done);
}

int kd_phys_write(kd_machine *m, uint64_t pa, const void *buf, uint64_t len, uint64_t *done)
{
    if (done)
        *done = 0;
    if (!m || (len && !buf))
        return KD_E_INVAL;
    return kd_phys_span(m, pa, len, piece_write, (void *)buf, done);
}

int kd_phys_ptr(kd_machine *m, uint64_t pa, uint64_t len, void **out)
{
    if (!m || !out)
        return KD_E_INVAL;
    *out = NULL;
    if (len == 0)
        return KD_E_RANGE;
    if (!kd_phys_ok(m, pa, len))
        return KD_E_PHYS;
    *out = m->ram + pa;
    return KD_OK;
}

int kd_phys_discard(kd_machine *m, uint64_t pa, uint64_t len)
{
    if (!m)
        return KD_E_INVAL;
    if ((pa | len) & KD_PAGE_MASK)
        return KD_E_ALIGN;
    if (len == 0)
        return KD_OK;
    if (!kd_phys_ok(m, pa, len))
        return KD_E_PHYS;
    kd_lazy_before_discard(m, pa, len);   /* generated pages first get their access back */
    /* A private anonymous page dropped with MADV_DONTNEED reads back as zeros. */
    if (madvise(m->ram + pa, len, MADV_DONTNEED) != 0)
        memset(m->ram + pa, 0, len);
    return KD_OK;
}
