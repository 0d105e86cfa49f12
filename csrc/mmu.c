/* The x86 MMU: the architectural page walk, translation, virtual access.
 *
 * One walk loop serves the three paging modes; they differ by the level table
 * below (index bits, entry size, which levels may map a large page, which
 * carry permission bits).  Reserved-bit masks are derived from the paging
 * state once, when it changes. */
#include "kd_internal.h"

typedef struct {
    uint8_t shift;      /* lowest VA bit indexing this level */
    uint8_t bits;       /* index width */
    uint8_t can_large;  /* PS=1 maps a page here */
    uint8_t has_perms;  /* R/W, U/S, XD and A exist (not in PAE PDPTEs) */
} level_desc;

typedef struct {
    int nlevels;
    int esize;          /* entry size in bytes */
    level_desc lv[KD_MAX_LEVELS];
} mode_desc;

static const mode_desc MODES[4] = {
    [KD_MODE_NONE] = {0, 0, {{0}}},
    [KD_MODE_X86] = {2, 4, {{22, 10, 1, 1}, {12, 10, 0, 1}}},
    [KD_MODE_PAE] = {3, 8, {{30, 2, 0, 0}, {21, 9, 1, 1}, {12, 9, 0, 1}}},
    [KD_MODE_X64] = {4, 8, {{39, 9, 0, 1}, {30, 9, 1, 1}, {21, 9, 1, 1}, {12, 9, 0, 1}}},
};

static inline uint64_t read_entry(const kd_machine *m, uint64_t pa, int esize)
{
    if (esize == 8) {
        uint64_t v;
        memcpy(&v, m->ram + pa, 8);
        return v;
    }
    uint32_t v;
    memcpy(&v, m->ram + pa, 4);
    return v;
}

static inline void write_entry(kd_machine *m, uint64_t pa, int esize, uint64_t v)
{
    if (esize == 8) {
        memcpy(m->ram + pa, &v, 8);
    } else {
        uint32_t w = (uint32_t)v;
        memcpy(m->ram + pa, &w, 4);
    }
}

static inline int fail(kd_walk *w, int status, int level, uint32_t ec)
{
    w->status = status;
    w->fault_level = level;
    w->error_code = ec;
    w->page_size = 0;
    w->pa = 0;
    return status;
}

/* A paging-structure cache for the probes of one batch call: the page table a VA's
 * leaf entry lives in (only one lying wholly in RAM) and the rights gathered above
 * it, keyed by the VA bits that chose that table.  The tables cannot change during a batch of probes (nothing
 * writes), so a hit gives exactly what the full walk would. */
#define PWC_SLOTS 256
#define PWC_EMPTY (~0ULL)  /* no key: va >> 21 never has all 64 bits set */
#define BATCH_AHEAD 8      /* how far ahead a batch prefetches leaf entries */
typedef struct {
    uint64_t key;
    uint64_t table;
    uint32_t rights;       /* bit 0 R/W, bit 1 U/S, bit 2 XD, as gathered so far */
    uint32_t pad;
} pwc_entry;
typedef struct {
    pwc_entry e[PWC_SLOTS];
} kd_pwc;

static inline unsigned pwc_slot(uint64_t key)
{
    return (unsigned)((key ^ (key >> 8) ^ (key >> 16)) & (PWC_SLOTS - 1));
}

/* The architectural walk.  cpu != 0 sets Accessed in the entries it passes
 * through and, on success, Accessed (and Dirty for a write) in the leaf. */
static inline __attribute__((always_inline)) int
walk_mode(kd_machine *m, const int mode, uint64_t cr3, uint64_t va, uint32_t access,
          kd_walk *w, int cpu, kd_pwc *pwc, int record)
{
    const unsigned kind = access & KD_ACCESS_KIND_MASK;
    const int user = (access & KD_ACCESS_USER) != 0;
    if (record) {
        w->va = va;
        w->nlevels = 0;
        w->fault_level = 0;
        w->error_code = 0;
        w->tlb_hit = 0;
        w->perms = 0;
    }

    if (mode == KD_MODE_NONE) {
        w->pa = va;
        w->page_size = KD_PAGE_SIZE;
        w->perms = KD_PERM_WRITE | KD_PERM_USER | KD_PERM_EXEC;
        w->status = KD_OK;
        return KD_OK;
    }
    if (mode == KD_MODE_X64) {
        if ((uint64_t)((int64_t)(va << 16) >> 16) != va)
            return fail(w, KD_E_NONCANONICAL, 0, 0);
    } else if (va >> 32) {
        return fail(w, KD_E_VA_RANGE, 0, 0);
    }

    const mode_desc *md = &MODES[mode];
    const int esize = md->esize;
    const int nxe = (m->flags & KD_EFER_NXE) != 0;
    /* I/D is reported only where execute-disable exists and is enabled. */
    const uint32_t ec = (kind == KD_ACCESS_WRITE ? KD_PF_W : 0) | (user ? KD_PF_U : 0) |
                        (kind == KD_ACCESS_EXEC && nxe && mode != KD_MODE_X86 ? KD_PF_ID : 0);
    uint64_t table;
    if (mode == KD_MODE_PAE)
        table = cr3 & 0xFFFFFFE0ULL;
    else if (mode == KD_MODE_X86)
        table = cr3 & 0xFFFFF000ULL;
    else
        table = cr3 & m->addr_mask;

    int rw = 1, us = 1, xd = 0, start = 0;
    const int last = md->nlevels - 1;
    if (pwc) {
        uint64_t key = va >> md->lv[last - 1].shift;
        const pwc_entry *c = &pwc->e[pwc_slot(key)];
        if (c->key == key) {
            start = last;
            table = c->table;
            rw = c->rights & 1;
            us = (c->rights >> 1) & 1;
            xd = (c->rights >> 2) & 1;
        }
    }
    for (int i = start; i < md->nlevels; i++) {
        const level_desc *L = &md->lv[i];
        const int level = md->nlevels - i;
        uint64_t idx = (va >> L->shift) & ((1ULL << L->bits) - 1);
        uint64_t epa = table + idx * (uint64_t)esize;
        /* A cached table was checked whole when it was cached. */
        if (!(pwc && i == start && start) && !kd_phys_ok(m, epa, (uint64_t)esize))
            return fail(w, KD_E_PHYS, level, 0);
        uint64_t e = read_entry(m, epa, esize);
        if (record) {
            w->entry_pa[i] = epa;
            w->entry_val[i] = e;
            w->nlevels = i + 1;
        }
        if (!(e & KD_PTE_P))
            return fail(w, KD_E_PAGE_FAULT, level, ec);
        int large = L->can_large && (e & KD_PTE_PS) &&
                    (mode != KD_MODE_X86 || (m->flags & KD_CR4_PSE));
        if (e & m->rsvd[i][large])
            return fail(w, KD_E_PAGE_FAULT, level, ec | KD_PF_P | KD_PF_RSVD);
        if (L->has_perms) {
            rw &= (e & KD_PTE_RW) != 0;
            us &= (e & KD_PTE_US) != 0;
            if (esize == 8)
                xd |= (e & KD_PTE_NX) != 0;
        }
        int leaf = large || i == last;
        if (!leaf) {
            if (cpu && L->has_perms && !(e & KD_PTE_A)) {
                e |= KD_PTE_A;
                write_entry(m, epa, esize, e);
                if (record)
                    w->entry_val[i] = e;
            }
            table = (esize == 8 ? e & m->addr_mask : e & 0xFFFFF000ULL);
            if (pwc && i + 1 == last && kd_phys_ok(m, table, KD_PAGE_SIZE)) {
                uint64_t key = va >> L->shift;
                pwc_entry *c = &pwc->e[pwc_slot(key)];
                c->key = key;
                c->table = table;
                c->rights = (uint32_t)rw | (uint32_t)us << 1 | (uint32_t)xd << 2;
            }
            continue;
        }

        uint64_t size = 1ULL << L->shift;
        uint64_t base;
        if (esize == 8) {
            base = e & m->addr_mask & ~(size - 1);
        } else if (large) {
            unsigned pw = pse_width(m);
            base = (e & 0xFFC00000ULL) | (((e >> 13) & 0xFFULL) << 32);
            base &= (pw >= 64 ? ~0ULL : ((1ULL << pw) - 1));
        } else {
            base = e & 0xFFFFF000ULL;
        }

        uint32_t perms = (rw ? KD_PERM_WRITE : 0) | (us ? KD_PERM_USER : 0) |
                         ((nxe && xd) ? 0 : KD_PERM_EXEC) |
                         ((e & KD_PTE_G) && (m->flags & KD_CR4_PGE) ? KD_PERM_GLOBAL : 0) |
                         ((e & KD_PTE_D) ? KD_PERM_DIRTY : 0);
        int denied = 0;
        if (user && !us)
            denied = 1;
        else if (kind == KD_ACCESS_WRITE && !rw && (user || (m->flags & KD_CR0_WP)))
            denied = 1;
        else if (kind == KD_ACCESS_EXEC && !(perms & KD_PERM_EXEC))
            denied = 1;
        if (denied)
            return fail(w, KD_E_PAGE_FAULT, level, ec | KD_PF_P);

        if (cpu) {
            uint64_t ne = e | KD_PTE_A | (kind == KD_ACCESS_WRITE ? KD_PTE_D : 0);
            if (ne != e) {
                write_entry(m, epa, esize, ne);
                if (record)
                    w->entry_val[i] = ne;
            }
            if (ne & KD_PTE_D)
                perms |= KD_PERM_DIRTY;
        }
        w->page_size = size;
        w->pa = base | (va & (size - 1));
        w->perms = perms;
        w->status = KD_OK;
        return KD_OK;
    }
    return fail(w, KD_E_PAGE_FAULT, 1, ec);  /* not reached: the last level is a leaf */
}

static int walk_cr3(kd_machine *m, uint64_t cr3, uint64_t va, uint32_t access, kd_walk *w,
                    int cpu, int record)
{
    switch (m->mode) {  /* one instance per mode: the level table folds into constants */
    case KD_MODE_X64: return walk_mode(m, KD_MODE_X64, cr3, va, access, w, cpu, NULL, record);
    case KD_MODE_PAE: return walk_mode(m, KD_MODE_PAE, cr3, va, access, w, cpu, NULL, record);
    case KD_MODE_X86: return walk_mode(m, KD_MODE_X86, cr3, va, access, w, cpu, NULL, record);
    default: return walk_mode(m, KD_MODE_NONE, cr3, va, access, w, cpu, NULL, record);
    }
}

static int walk(kd_machine *m, uint64_t va, uint32_t access, kd_walk *w, int cpu, int record)
{
    return walk_cr3(m, m->cr3, va, access, w, cpu, record);
}

static inline int tlb_permits(const kd_tlb_entry *e, unsigned kind, int user, uint32_t flags)
{
    if (user && !(e->perms & KD_PERM_USER))
        return 0;
    if (kind == KD_ACCESS_WRITE) {
        if (!(e->perms & KD_PERM_WRITE) && (user || (flags & KD_CR0_WP)))
            return 0;
        /* A write through a clean entry walks again so the CPU can set Dirty. */
        if (!(e->perms & KD_PERM_DIRTY))
            return 0;
    }
    if (kind == KD_ACCESS_EXEC && !(e->perms & KD_PERM_EXEC))
        return 0;
    return 1;
}

/* A CPU access: the TLB first, then a walk that fills it.  An entry that does
 * not allow the access is dropped and the tables are walked again (the fault
 * would have invalidated it, and the retried access walks). */
static inline int cpu_translate(kd_machine *m, uint64_t va, uint32_t access, kd_walk *w)
{
    if (m->mode != KD_MODE_NONE) {
        kd_tlb_entry *e = kd_tlb_lookup(m, va);
        if (e) {
            unsigned kind = access & KD_ACCESS_KIND_MASK;
            if (tlb_permits(e, kind, (access & KD_ACCESS_USER) != 0, m->flags)) {
                m->stats.tlb_hits++;
                w->va = va;
                w->pa = (e->pfn << KD_PAGE_SHIFT) | (va & KD_PAGE_MASK);
                w->page_size = 1ULL << e->shift;
                w->nlevels = 0;
                w->status = KD_OK;
                w->fault_level = 0;
                w->error_code = 0;
                w->perms = e->perms;
                w->tlb_hit = 1;
                return KD_OK;
            }
            kd_tlb_drop(m, e);
        }
        m->stats.tlb_misses++;
    }
    m->stats.walks++;
    int st = walk(m, va, access, w, 1, 1);
    if (st == KD_OK) {
        if (m->mode != KD_MODE_NONE)
            kd_tlb_fill(m, va, w);
    } else {
        m->stats.faults++;
    }
    return st;
}

static inline int translate(kd_machine *m, uint64_t va, uint32_t access, kd_walk *w)
{
    if (access & KD_ACCESS_PROBE) {
        m->stats.probes++;
        m->stats.walks++;
        return walk(m, va, access, w, 0, 1);
    }
    return cpu_translate(m, va, access, w);
}

static int check_access(uint32_t access)
{
    if (access & ~(uint32_t)(KD_ACCESS_KIND_MASK | KD_ACCESS_USER | KD_ACCESS_PROBE))
        return 0;
    return (access & KD_ACCESS_KIND_MASK) != 3;
}

int kd_translate(kd_machine *m, uint64_t va, uint32_t access, kd_walk *out)
{
    if (!m || !out || !check_access(access))
        return KD_E_INVAL;
    return translate(m, va, access, out);
}

int kd_probe_as(kd_machine *m, uint64_t cr3, uint64_t va, uint32_t access, kd_walk *out)
{
    if (!m || !out || !check_access(access))
        return KD_E_INVAL;
    int st = kd_check_cr3(m, m->mode, cr3);
    if (st != KD_OK)
        return st;
    m->stats.probes++;
    m->stats.walks++;
    return walk_cr3(m, cr3, va, access, out, 0, 1);
}

int kd_probe_batch_as(kd_machine *m, uint64_t cr3, const uint64_t *vas, uint64_t n,
                      uint32_t access, uint64_t *pas, int32_t *status)
{
    if (!m || !check_access(access) || (n && (!vas || !pas || !status)))
        return KD_E_INVAL;
    int st = kd_check_cr3(m, m->mode, cr3);
    if (st != KD_OK)
        return st;
    kd_walk w;
    m->stats.probes += n;
    m->stats.walks += n;
    for (uint64_t i = 0; i < n; i++) {
        status[i] = walk_cr3(m, cr3, vas[i], access, &w, 0, 0);
        pas[i] = status[i] == KD_OK ? w.pa : KD_BAD_PA;
    }
    return KD_OK;
}

uint64_t kd_probe_pa(kd_machine *m, uint64_t va)
{
    kd_walk w;
    if (!m)
        return KD_BAD_PA;
    m->stats.probes++;
    m->stats.walks++;
    return walk(m, va, KD_ACCESS_READ, &w, 0, 0) == KD_OK ? w.pa : KD_BAD_PA;
}

/* The probes of one batch: restrict tells the compiler the output arrays and the
 * cache do not alias the machine, so its fields stay in registers across the loop. */
static inline __attribute__((always_inline)) void
batch_probe(kd_machine *m, const int mode, const uint64_t *restrict vas, uint64_t n,
            uint32_t access, uint64_t *restrict pas, int32_t *restrict status,
            kd_pwc *restrict pwc)
{
    kd_walk w;
    const mode_desc *md = &MODES[mode];
    const int last = md->nlevels - 1;
    for (uint64_t i = 0; i < n; i++) {
        /* Fetch the leaf entry of an address a few places ahead, when its table is
         * known: the walks are bound by the latency of that one read. */
        if (mode != KD_MODE_NONE && i + BATCH_AHEAD < n) {
            uint64_t ahead = vas[i + BATCH_AHEAD];
            uint64_t key = ahead >> md->lv[last - 1].shift;
            const pwc_entry *c = &pwc->e[pwc_slot(key)];
            if (c->key == key) {
                uint64_t idx = (ahead >> md->lv[last].shift) & ((1ULL << md->lv[last].bits) - 1);
                __builtin_prefetch(m->ram + c->table + idx * (uint64_t)md->esize);
            }
        }
        const uint64_t va = vas[i];
        if (mode != KD_MODE_NONE && access == (KD_ACCESS_READ | KD_ACCESS_PROBE)) {
            /* A kernel read whose page table is cached needs one entry: present and
             * free of reserved bits means mapped (no right restricts a kernel read).
             * A key can only match an address the mode accepts (canonical, 32 bits),
             * because it came from one. */
            uint64_t key = va >> md->lv[last - 1].shift;
            const pwc_entry *c = &pwc->e[pwc_slot(key)];
            if (c->key == key) {
                uint64_t idx = (va >> md->lv[last].shift) & ((1ULL << md->lv[last].bits) - 1);
                uint64_t e = read_entry(m, c->table + idx * (uint64_t)md->esize, md->esize);
                if ((e & KD_PTE_P) && !(e & m->rsvd[last][0])) {
                    pas[i] = (e & (md->esize == 8 ? m->addr_mask : 0xFFFFF000ULL)) |
                             (va & KD_PAGE_MASK);
                    status[i] = KD_OK;
                    continue;
                }
            }
        }
        int st = walk_mode(m, mode, m->cr3, va, access, &w, 0, pwc, 0);
        pas[i] = st == KD_OK ? w.pa : KD_BAD_PA;
        status[i] = st;
    }
}

int kd_translate_batch(kd_machine *m, const uint64_t *vas, uint64_t n, uint32_t access,
                       uint64_t *pas, int32_t *status)
{
    if (!m || !check_access(access) || (n && (!vas || !pas || !status)))
        return KD_E_INVAL;
    if (access & KD_ACCESS_PROBE) {
        kd_pwc pwc;
        memset(&pwc, 0xFF, sizeof pwc);  /* every key PWC_EMPTY */
        m->stats.probes += n;
        m->stats.walks += n;
        /* One loop per mode, so the level table folds into constants, and one more
         * for the common kernel-read probe, whose permission checks fold away. */
        const uint32_t kread = KD_ACCESS_READ | KD_ACCESS_PROBE;
#define BATCH(MODE)                                                             \
        do {                                                                    \
            if (access == kread)                                                \
                batch_probe(m, MODE, vas, n, kread, pas, status, &pwc);         \
            else                                                                \
                batch_probe(m, MODE, vas, n, access, pas, status, &pwc);        \
        } while (0)
        switch (m->mode) {
        case KD_MODE_X64: BATCH(KD_MODE_X64); break;
        case KD_MODE_PAE: BATCH(KD_MODE_PAE); break;
        case KD_MODE_X86: BATCH(KD_MODE_X86); break;
        default: BATCH(KD_MODE_NONE); break;
        }
#undef BATCH
        return KD_OK;
    }
    kd_walk w;
    for (uint64_t i = 0; i < n; i++) {
        int st = cpu_translate(m, vas[i], access, &w);
        pas[i] = st == KD_OK ? w.pa : KD_BAD_PA;
        status[i] = st;
    }
    return KD_OK;
}

typedef struct {
    uint8_t *buf;
    int write;
} virt_ctx;

static void piece_copy(uint8_t *host, uint64_t off, uint64_t n, void *ctx)
{
    virt_ctx *c = ctx;
    if (c->write)
        memcpy(host, c->buf + off, n);
    else
        memcpy(c->buf + off, host, n);
}

static int virt_access(kd_machine *m, uint64_t va, uint8_t *buf, uint64_t len, uint32_t access,
                       int write, uint64_t *done, kd_walk *fault)
{
    uint64_t did = 0;
    kd_walk w;
    if (done)
        *done = 0;
    if (!m || (len && !buf) || !check_access(access))
        return KD_E_INVAL;
    if (len && va + (len - 1) < va)
        return KD_E_RANGE;
    int st = KD_OK;
    while (did < len) {
        uint64_t cur = va + did;
        uint64_t n = KD_PAGE_SIZE - (cur & KD_PAGE_MASK);
        if (n > len - did)
            n = len - did;
        st = translate(m, cur, access, &w);
        if (st != KD_OK)
            break;
        virt_ctx c = {buf + did, write};
        uint64_t got = 0;
        st = kd_phys_span(m, w.pa, n, piece_copy, &c, &got);
        did += got;
        if (st != KD_OK) {
            w.status = st;
            break;
        }
    }
    if (done)
        *done = did;
    if (fault && st != KD_OK)
        *fault = w;
    return st;
}

int kd_virt_read(kd_machine *m, uint64_t va, void *buf, uint64_t len, uint32_t access,
                 uint64_t *done, kd_walk *fault)
{
    if (done)
        *done = 0;
    if ((access & KD_ACCESS_KIND_MASK) == KD_ACCESS_WRITE)
        return KD_E_INVAL;
    return virt_access(m, va, buf, len, access, 0, done, fault);
}

int kd_virt_write(kd_machine *m, uint64_t va, const void *buf, uint64_t len, uint32_t access,
                  uint64_t *done, kd_walk *fault)
{
    if (done)
        *done = 0;
    unsigned kind = access & KD_ACCESS_KIND_MASK;
    if (kind != KD_ACCESS_READ && kind != KD_ACCESS_WRITE)
        return KD_E_INVAL;
    /* A CPU store needs write rights; a debugger's store only a present mapping. */
    uint32_t a = access & ~(uint32_t)KD_ACCESS_KIND_MASK;
    if (!(a & KD_ACCESS_PROBE))
        a |= KD_ACCESS_WRITE;
    return virt_access(m, va, (uint8_t *)buf, len, a, 1, done, fault);
}
