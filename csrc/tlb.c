/* A direct-mapped software TLB.
 *
 * Entries are cached per 4 KB piece, also for large pages (the piece is tagged
 * with the size of the mapping it came from, so INVLPG of any address inside a
 * large page drops every piece of it).  Nothing here reads the page tables: an
 * entry keeps giving its translation after the tables change, until it is
 * invalidated, evicted by a conflicting entry, or flushed -- as on hardware. */
#include "kd_internal.h"

static inline kd_tlb_entry *slot(kd_machine *m, uint64_t vpn)
{
    return &m->tlb[vpn & (KD_TLB_ENTRIES - 1)];
}

kd_tlb_entry *kd_tlb_lookup(kd_machine *m, uint64_t va)
{
    uint64_t vpn = va >> KD_PAGE_SHIFT;
    kd_tlb_entry *e = slot(m, vpn);
    return (e->valid && e->vpn == vpn) ? e : NULL;
}

void kd_tlb_drop(kd_machine *m, kd_tlb_entry *e)
{
    if (e->valid && e->shift > KD_PAGE_SHIFT)
        m->tlb_large--;
    e->valid = 0;
}

void kd_tlb_fill(kd_machine *m, uint64_t va, const kd_walk *w)
{
    uint64_t vpn = va >> KD_PAGE_SHIFT;
    kd_tlb_entry *e = slot(m, vpn);
    kd_tlb_drop(m, e);
    e->vpn = vpn;
    e->pfn = w->pa >> KD_PAGE_SHIFT;
    e->perms = (uint8_t)w->perms;
    e->shift = (uint8_t)__builtin_ctzll(w->page_size);
    e->valid = 1;
    if (e->shift > KD_PAGE_SHIFT)
        m->tlb_large++;
}

void kd_tlb_flush(kd_machine *m, int include_global)
{
    for (size_t i = 0; i < KD_TLB_ENTRIES; i++) {
        kd_tlb_entry *e = &m->tlb[i];
        if (e->valid && (include_global || !(e->perms & KD_PERM_GLOBAL)))
            kd_tlb_drop(m, e);
    }
    m->stats.flushes++;
}

int kd_invlpg(kd_machine *m, uint64_t va)
{
    if (!m)
        return KD_E_INVAL;
    m->stats.invlpg++;
    uint64_t vpn = va >> KD_PAGE_SHIFT;
    kd_tlb_entry *e = slot(m, vpn);
    if (e->valid && e->vpn == vpn)
        kd_tlb_drop(m, e);
    if (m->tlb_large) {
        /* INVLPG drops the whole large page that contains va, global or not. */
        for (size_t i = 0; i < KD_TLB_ENTRIES && m->tlb_large; i++) {
            kd_tlb_entry *x = &m->tlb[i];
            if (x->valid && x->shift > KD_PAGE_SHIFT) {
                unsigned s = x->shift - KD_PAGE_SHIFT;
                if ((x->vpn >> s) == (vpn >> s))
                    kd_tlb_drop(m, x);
            }
        }
    }
    return KD_OK;
}

int kd_flush_tlb(kd_machine *m, int include_global)
{
    if (!m)
        return KD_E_INVAL;
    kd_tlb_flush(m, include_global);
    return KD_OK;
}

int kd_tlb_count(const kd_machine *m, uint64_t *valid, uint64_t *global)
{
    if (!m || !valid || !global)
        return KD_E_INVAL;
    uint64_t v = 0, g = 0;
    for (size_t i = 0; i < KD_TLB_ENTRIES; i++) {
        if (m->tlb[i].valid) {
            v++;
            if (m->tlb[i].perms & KD_PERM_GLOBAL)
                g++;
        }
    }
    *valid = v;
    *global = g;
    return KD_OK;
}
