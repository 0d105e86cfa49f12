/*
 * kdcore: the hardware half of kdsim -- guest physical RAM and an x86 MMU.
 *
 * A handle and a status code: every call returns KD_OK or a KD_E_* status,
 * outputs go through pointers, nothing is printed.  The core knows nothing
 * about Windows.
 *
 * The text between CDEF-BEGIN and CDEF-END is also the cffi cdef
 * (kdsim/machine/_build.py reads it and replaces every #define value by
 * "...", so the numbers below are defined exactly once).
 */
#ifndef KDCORE_H
#define KDCORE_H

#include <stddef.h>
#include <stdint.h>

/* CDEF-BEGIN */

/* Status codes. */
#define KD_OK                 0
#define KD_E_INVAL            1   /* bad argument: NULL pointer, unknown mode/access/flag */
#define KD_E_NOMEM            2   /* host memory could not be reserved */
#define KD_E_RANGE            3   /* size or length out of range, address arithmetic overflows */
#define KD_E_PHYS             4   /* physical address in a hole or beyond the end of RAM */
#define KD_E_ALIGN            5   /* misaligned CR3, run or page argument */
#define KD_E_PAGE_FAULT       6   /* translation failed: #PF, see kd_walk.error_code */
#define KD_E_NONCANONICAL     7   /* 4-level mode: address not canonical (#GP) */
#define KD_E_VA_RANGE         8   /* 32-bit modes: address wider than 32 bits */
#define KD_NUM_STATUS         9

/* Paging modes. */
#define KD_MODE_NONE          0   /* paging off: linear = physical */
#define KD_MODE_X86           1   /* 32-bit, 2 levels, 4-byte entries */
#define KD_MODE_PAE           2   /* PAE, 3 levels, 8-byte entries */
#define KD_MODE_X64           3   /* 4-level, 8-byte entries */

/* Control-register flags for kd_set_paging. */
#define KD_CR0_WP             0x1
#define KD_CR4_PSE            0x2
#define KD_CR4_PGE            0x4
#define KD_EFER_NXE           0x8

/* Access kinds (low two bits) and modifiers. */
#define KD_ACCESS_READ        0x0
#define KD_ACCESS_WRITE       0x1
#define KD_ACCESS_EXEC        0x2
#define KD_ACCESS_KIND_MASK   0x3
#define KD_ACCESS_USER        0x4   /* CPL 3 */
#define KD_ACCESS_PROBE       0x8   /* debugger probe: no TLB, no A/D updates, no counters of faults */

/* x86 page-fault error code bits. */
#define KD_PF_P               0x1
#define KD_PF_W               0x2
#define KD_PF_U               0x4
#define KD_PF_RSVD            0x8
#define KD_PF_ID              0x10

/* Paging-structure entry bits. */
#define KD_PTE_P              0x1
#define KD_PTE_RW             0x2
#define KD_PTE_US             0x4
#define KD_PTE_PWT            0x8
#define KD_PTE_PCD            0x10
#define KD_PTE_A              0x20
#define KD_PTE_D              0x40
#define KD_PTE_PS             0x80
#define KD_PTE_G              0x100
#define KD_PTE_NX             0x8000000000000000

/* Effective rights of a translation (kd_walk.perms). */
#define KD_PERM_WRITE         0x1   /* R/W set at every level */
#define KD_PERM_USER          0x2   /* U/S set at every level */
#define KD_PERM_EXEC          0x4   /* no level has XD (or NXE is off) */
#define KD_PERM_GLOBAL        0x8   /* leaf G with CR4.PGE */
#define KD_PERM_DIRTY         0x10  /* leaf D bit */

#define KD_PAGE_SIZE          4096
#define KD_MAX_LEVELS         4
#define KD_BAD_PA             0xFFFFFFFFFFFFFFFF
#define KD_MAX_RAM            0x400000000000  /* 64 TB of guest RAM */
#define KD_TLB_ENTRIES        2048

typedef struct kd_machine kd_machine;

/* The outcome of one translation, with its evidence. */
typedef struct kd_walk {
    uint64_t va;
    uint64_t pa;                          /* valid when status == KD_OK */
    uint64_t page_size;                   /* 4 KB, 2 MB, 4 MB, 1 GB; 0 on failure */
    uint64_t entry_pa[KD_MAX_LEVELS];     /* [0] is the top level visited */
    uint64_t entry_val[KD_MAX_LEVELS];
    int32_t  nlevels;                     /* entries read (0 on a TLB hit or with paging off) */
    int32_t  status;                      /* KD_OK or the failure */
    int32_t  fault_level;                 /* 0, or the failing entry's level: 4 PML4E, 3 PDPTE, 2 PDE, 1 PTE */
    uint32_t error_code;                  /* #PF error code when status == KD_E_PAGE_FAULT */
    uint32_t perms;                       /* KD_PERM_* of a successful translation */
    uint32_t tlb_hit;                     /* 1 when a CPU access was served by the TLB */
} kd_walk;

typedef struct kd_stats {
    uint64_t walks;          /* page-table walks, probes included */
    uint64_t tlb_hits;
    uint64_t tlb_misses;
    uint64_t faults;         /* failed CPU accesses (#PF and #GP) */
    uint64_t probes;         /* debugger probe translations */
    uint64_t invlpg;
    uint64_t flushes;
} kd_stats;

typedef struct kd_paging {
    int32_t  mode;
    uint32_t flags;          /* KD_CR0_WP | KD_CR4_PSE | KD_CR4_PGE | KD_EFER_NXE */
    uint64_t cr3;
    uint32_t maxphyaddr;
} kd_paging;

const char *kd_strerror(int status);

/* Machine and RAM.  ram_bytes is a multiple of 4 KB, at most KD_MAX_RAM.
 * Host memory is reserved once and backed on first touch. */
int kd_machine_new(uint64_t ram_bytes, kd_machine **out);
/* A machine is counted: kd_machine_new gives one reference, kd_machine_retain adds
 * one, kd_machine_free drops one and frees the machine with the last. */
int kd_machine_retain(kd_machine *m);
void kd_machine_free(kd_machine *m);
uint64_t kd_ram_size(const kd_machine *m);

/* Physical memory runs: page-aligned [start, start+length) ranges inside RAM,
 * non-overlapping.  Everything else is a hole.  Default: one run over all RAM. */
int kd_set_runs(kd_machine *m, const uint64_t *starts, const uint64_t *lengths, size_t n);
size_t kd_run_count(const kd_machine *m);
int kd_get_run(const kd_machine *m, size_t i, uint64_t *start, uint64_t *length);
int kd_phys_valid(const kd_machine *m, uint64_t pa, uint64_t len);

/* Physical access of any length and alignment.  *done (may be NULL) gets the
 * bytes transferred before the first page in a hole. */
int kd_phys_read(kd_machine *m, uint64_t pa, void *buf, uint64_t len, uint64_t *done);
int kd_phys_write(kd_machine *m, uint64_t pa, const void *buf, uint64_t len, uint64_t *done);
/* Host pointer to [pa, pa+len), which must lie inside one run. */
int kd_phys_ptr(kd_machine *m, uint64_t pa, uint64_t len, void **out);
/* Give the host memory behind whole pages back; they read as zeros after. */
int kd_phys_discard(kd_machine *m, uint64_t pa, uint64_t len);

/* Paging state.  Loading CR3 flushes the non-global TLB entries, as MOV CR3 does;
 * kd_set_paging flushes everything. */
int kd_set_paging(kd_machine *m, int mode, uint64_t cr3, uint32_t flags);
int kd_set_cr3(kd_machine *m, uint64_t cr3);
int kd_get_paging(const kd_machine *m, kd_paging *out);
int kd_set_maxphyaddr(kd_machine *m, uint32_t bits);

/* Translation.  access = KD_ACCESS_{READ,WRITE,EXEC} | KD_ACCESS_USER | KD_ACCESS_PROBE. */
int kd_translate(kd_machine *m, uint64_t va, uint32_t access, kd_walk *out);
/* A debugger probe through the tables under another CR3 (another process's address
 * space), without loading it: no TLB, no side effects.  The CR3 is checked as a load
 * would check it. */
int kd_probe_as(kd_machine *m, uint64_t cr3, uint64_t va, uint32_t access, kd_walk *out);
/* Kernel-read probe returning only the physical address, KD_BAD_PA on any failure. */
uint64_t kd_probe_pa(kd_machine *m, uint64_t va);
int kd_translate_batch(kd_machine *m, const uint64_t *vas, uint64_t n, uint32_t access,
                       uint64_t *pas, int32_t *status);
/* kd_probe_as for many addresses: pas[i] (KD_BAD_PA on failure) and status[i]. */
int kd_probe_batch_as(kd_machine *m, uint64_t cr3, const uint64_t *vas, uint64_t n,
                      uint32_t access, uint64_t *pas, int32_t *status);

/* Virtual access: stops at the first page that fails (translation or physical),
 * *done = bytes transferred, *fault (may be NULL) = the failing walk.
 * A probe write needs only a present mapping, as a debugger's write does. */
int kd_virt_read(kd_machine *m, uint64_t va, void *buf, uint64_t len, uint32_t access,
                 uint64_t *done, kd_walk *fault);
int kd_virt_write(kd_machine *m, uint64_t va, const void *buf, uint64_t len, uint32_t access,
                  uint64_t *done, kd_walk *fault);

/* TLB. */
int kd_invlpg(kd_machine *m, uint64_t va);
int kd_flush_tlb(kd_machine *m, int include_global);
int kd_tlb_count(const kd_machine *m, uint64_t *valid, uint64_t *global);

int kd_get_stats(const kd_machine *m, kd_stats *out);
int kd_reset_stats(kd_machine *m);

/* Records generated on first touch (lazy.c): `count` records of `size` bytes (<= 64)
 * at physical address pa, record i equal to `templ` with the little-endian field k
 * (field_off[k], field_width[k] <= 8 bytes) set to index0 + i + field_delta[k]; at most
 * 4 fields.  The pages wholly inside get their bytes on first access of any kind, so a
 * huge, regular array (a PFN database's free run) costs no host memory until read. */
int kd_phys_lazy_records(kd_machine *m, uint64_t pa, uint64_t size, uint64_t count,
                         const uint8_t *templ, uint64_t index0, const uint32_t *field_off,
                         const uint32_t *field_width, const int64_t *field_delta,
                         uint32_t nfields);
/* Pages of m still waiting for their generated bytes. */
uint64_t kd_phys_lazy_pending(const kd_machine *m);
/* Give every waiting page in [pa, pa+len) its bytes now (e.g. before a host file write
 * of guest RAM, which does not fault). */
int kd_phys_materialize(kd_machine *m, uint64_t pa, uint64_t len);
/* CDEF-END */

#endif /* KDCORE_H */
