"""kdsim: a kd/WinDbg-style kernel-debugger shell attached to an emulated machine."""
__version__ = "0.1.0"


class Booted:
    """A booted emulated machine: its hardware (``core``), its memory manager (``nt``)
    and, once the kd engine exists, its debugger."""

    def __init__(self, nt):
        self.nt = nt
        self.core = nt.machine
        self.target = nt.profile.name
        self.debugger = None

    def __repr__(self) -> str:
        return f"<kdsim machine {self.target}, {self.nt.ram_pages() * 4096 >> 20} MB>"


def boot(target: str = "win7-x64", ram: str | int = "2g", seed: int = 0,
         scenario: str = "default") -> Booted:
    """Boot an emulated machine: the kernel image, page tables, PFN database, kernel
    variables and System process in guest RAM."""
    from .nt.boot import boot_system
    return Booted(boot_system(target, ram, seed))
