"""kdsim: a kd/WinDbg-style kernel-debugger shell attached to an emulated machine."""
__version__ = "0.1.0"


class Booted:
    """A booted emulated machine: its hardware (``core``), its memory manager (``nt``)
    and its debugger (``debugger.execute("? MmHighestUserAddress")``)."""

    def __init__(self, nt):
        self.nt = nt
        self.core = nt.machine
        self.target = nt.profile.name
        from .kd.session import Debugger
        from .kd.target import LiveTarget
        from .simulate import Simulator
        self.debugger = Debugger(LiveTarget(self))
        # The !sim extension's one way into the memory manager (a dump has none).
        self.debugger.sim = Simulator(nt)

    def __repr__(self) -> str:
        return f"<kdsim machine {self.target}, {self.nt.ram_pages() * 4096 >> 20} MB>"


def boot(target: str = "win7-x64", ram: str | int = "2g", seed: int = 0,
         scenario: str = "default") -> Booted:
    """Boot an emulated machine: the kernel image, page tables, PFN database, kernel
    variables and System process in guest RAM, then run ``scenario`` (a name from
    kdsim/nt/scenarios, a path to a .toml file, or "none").  On wrk-x86 the default
    scenario is the workshop's."""
    from .nt import scenario as scenarios
    from .nt.boot import boot_system
    nt = boot_system(target, ram, seed)
    if scenario == "default" and target == "wrk-x86":
        scenario = "workshop"   # the WRK target exists for the workshop
    if scenario and scenario != "none":
        nt.scenario = scenarios.run(nt, scenario)
    return Booted(nt)
