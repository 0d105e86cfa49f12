/* Paging state: the mode, CR3, the control-register flags and MAXPHYADDR, the
 * reserved-bit masks derived from them, and the machine's counters. */
#include "kd_internal.h"

#define BITS(hi, lo) ((~0ULL >> (63 - (hi))) & (~0ULL << (lo)))

void kd_paging_derive(kd_machine *m)
{
    unsigned M = m->maxphyaddr;
    int nxe = (m->flags & KD_EFER_NXE) != 0;
    memset(m->rsvd, 0, sizeof m->rsvd);
    m->addr_mask = BITS(M - 1, 12);
    switch (m->mode) {
    case KD_MODE_X86: {
        /* 4 MB PDE: bits 20:13 carry PA bits 39:32 (PSE-36), those beyond the
         * physical width are reserved, and bit 21 always is. */
        unsigned w = pse_width(m);
        m->rsvd[0][1] = BITS(21, 13 + (w - 32));
        break;
    }
    case KD_MODE_PAE: {
        uint64_t high = BITS(62, M);
        uint64_t nx = nxe ? 0 : KD_PTE_NX;
        /* PDPTE: only P, PWT, PCD and the address; XD is reserved here. */
        m->rsvd[0][0] = BITS(63, M) | 0x1E6;
        m->rsvd[1][0] = high | nx;
        m->rsvd[1][1] = high | nx | BITS(20, 13);
        m->rsvd[2][0] = high | nx;
        break;
    }
    case KD_MODE_X64: {
        uint64_t high = M < 52 ? BITS(51, M) : 0;
        uint64_t nx = nxe ? 0 : KD_PTE_NX;
        m->rsvd[0][0] = high | nx | KD_PTE_PS;  /* PS is reserved in a PML4E */
        m->rsvd[1][0] = high | nx;
        m->rsvd[1][1] = high | nx | BITS(29, 13);
        m->rsvd[2][0] = high | nx;
        m->rsvd[2][1] = high | nx | BITS(20, 13);
        m->rsvd[3][0] = high | nx;
        break;
    }
    default:
        break;
    }
}

int kd_check_cr3(const kd_machine *m, int mode, uint64_t cr3)
{
    switch (mode) {
    case KD_MODE_NONE:
        return KD_OK;
    case KD_MODE_X86:
        if (cr3 > 0xFFFFFFFFULL) return KD_E_RANGE;
        return (cr3 & 0xFFF) ? KD_E_ALIGN : KD_OK;
    case KD_MODE_PAE:
        if (cr3 > 0xFFFFFFFFULL) return KD_E_RANGE;
        return (cr3 & 0x1F) ? KD_E_ALIGN : KD_OK;  /* the PDPT is 32-byte aligned */
    case KD_MODE_X64:
        if (cr3 >> m->maxphyaddr) return KD_E_RANGE;
        return (cr3 & 0xFFF) ? KD_E_ALIGN : KD_OK;
    default:
        return KD_E_INVAL;
    }
}

int kd_set_paging(kd_machine *m, int mode, uint64_t cr3, uint32_t flags)
{
    if (!m || mode < KD_MODE_NONE || mode > KD_MODE_X64)
        return KD_E_INVAL;
    if (flags & ~(uint32_t)(KD_CR0_WP | KD_CR4_PSE | KD_CR4_PGE | KD_EFER_NXE))
        return KD_E_INVAL;
    int st = kd_check_cr3(m, mode, cr3);
    if (st != KD_OK)
        return st;
    m->mode = mode;
    m->cr3 = mode == KD_MODE_NONE ? 0 : cr3;
    m->flags = flags;
    kd_paging_derive(m);
    kd_tlb_flush(m, 1);
    return KD_OK;
}

int kd_set_cr3(kd_machine *m, uint64_t cr3)
{
    if (!m)
        return KD_E_INVAL;
    int st = kd_check_cr3(m, m->mode, cr3);
    if (st != KD_OK)
        return st;
    m->cr3 = cr3;
    /* MOV CR3 keeps global entries only while CR4.PGE is on. */
    kd_tlb_flush(m, !(m->flags & KD_CR4_PGE));
    return KD_OK;
}

int kd_get_paging(const kd_machine *m, kd_paging *out)
{
    if (!m || !out)
        return KD_E_INVAL;
    out->mode = m->mode;
    out->flags = m->flags;
    out->cr3 = m->cr3;
    out->maxphyaddr = m->maxphyaddr;
    return KD_OK;
}

int kd_set_maxphyaddr(kd_machine *m, uint32_t bits)
{
    if (!m)
        return KD_E_INVAL;
    if (bits < 32 || bits > 52)
        return KD_E_RANGE;
    if (m->mode == KD_MODE_X64 && (m->cr3 >> bits))
        return KD_E_RANGE;
    m->maxphyaddr = bits;
    kd_paging_derive(m);
    kd_tlb_flush(m, 1);
    return KD_OK;
}

int kd_get_stats(const kd_machine *m, kd_stats *out)
{
    if (!m || !out)
        return KD_E_INVAL;
    *out = m->stats;
    return KD_OK;
}

int kd_reset_stats(kd_machine *m)
{
    if (!m)
        return KD_E_INVAL;
    memset(&m->stats, 0, sizeof m->stats);
    return KD_OK;
}
