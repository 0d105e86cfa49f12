/* Private to the C core: the machine's layout and the helpers its files share. */
#ifndef KD_INTERNAL_H
#define KD_INTERNAL_H

#include <string.h>
#include "kdcore.h"

#define KD_PAGE_SHIFT 12
#define KD_PAGE_MASK  ((uint64_t)KD_PAGE_SIZE - 1)

typedef struct kd_tlb_entry {
    uint64_t vpn;        /* va >> 12 of the 4 KB piece cached (tag) */
    uint64_t pfn;        /* pa >> 12 of that piece */
    uint8_t  valid;
    uint8_t  shift;      /* page size of the mapping it came from: 12, 21, 22 or 30 */
    uint8_t  perms;      /* KD_PERM_* */
    uint8_t  pad[5];
} kd_tlb_entry;

struct kd_machine {
    uint64_t  refs;
    uint8_t  *ram;               /* one host reservation of map_bytes */
    uint64_t  ram_bytes;
    uint64_t  map_bytes;
    uint64_t *run_start;         /* sorted, merged, in bytes */
    uint64_t *run_end;
    size_t    nruns;
    int       single_run;        /* one run covering [0, ram_bytes): no search needed */

    int       mode;
    uint32_t  flags;
    uint64_t  cr3;
    uint32_t  maxphyaddr;
    uint64_t  addr_mask;         /* table/frame address bits of an 8-byte entry */
    uint64_t  rsvd[KD_MAX_LEVELS][2];  /* reserved bits by level, [1] when PS=1 */

    kd_tlb_entry tlb[KD_TLB_ENTRIES];
    uint64_t  tlb_large;         /* valid entries from pages larger than 4 KB */

    kd_stats  stats;
};

/* ram.c */
static inline int kd_phys_ok(const kd_machine *m, uint64_t pa, uint64_t len)
{
    if (pa >= m->ram_bytes || len > m->ram_bytes - pa)
        return 0;
    if (m->single_run)
        return 1;
    /* binary search for the last run starting at or below pa */
    size_t lo = 0, hi = m->nruns;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->run_start[mid] <= pa) lo = mid + 1; else hi = mid;
    }
    if (lo == 0)
        return 0;
    return pa + len <= m->run_end[lo - 1];
}

/* Calls fn on each page-bounded piece of [pa, pa+len); stops at the first piece in
 * a hole (KD_E_PHYS).  *done counts the bytes of the pieces handled. */
typedef void (*kd_piece_fn)(uint8_t *host, uint64_t off, uint64_t n, void *ctx);
int kd_phys_span(kd_machine *m, uint64_t pa, uint64_t len, kd_piece_fn fn, void *ctx,
                 uint64_t *done);

/* lazy.c */
void kd_lazy_before_discard(kd_machine *m, uint64_t pa, uint64_t len);
void kd_lazy_forget(kd_machine *m);

/* tlb.c */
void kd_tlb_fill(kd_machine *m, uint64_t va, const kd_walk *w);
kd_tlb_entry *kd_tlb_lookup(kd_machine *m, uint64_t va);
void kd_tlb_drop(kd_machine *m, kd_tlb_entry *e);
void kd_tlb_flush(kd_machine *m, int include_global);

/* paging.c */
void kd_paging_derive(kd_machine *m);
int kd_check_cr3(const kd_machine *m, int mode, uint64_t cr3);

/* Width of the physical address in 32-bit mode's 4 MB pages (PSE-36 carries at most 40). */
static inline unsigned pse_width(const kd_machine *m)
{
    return m->maxphyaddr < 40 ? (m->maxphyaddr < 32 ? 32 : m->maxphyaddr) : 40;
}

#endif
