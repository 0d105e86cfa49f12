"""volatility3's Windows Intel layers, given the guest's physical bytes and each process's
DirectoryTableBase (read from its EPROCESS), translate every page of its VADs as kdsim does:
valid pages to the same physical address, and transition pages to the page they name."""
import pytest

import kdsim
from kdsim.nt.guest import KernelMemory

intel = pytest.importorskip("volatility3.framework.layers.intel")
from tests.vol3 import vol_exceptions, volatility_layer  # noqa: E402

LAYERS = {"win7-x64": intel.WindowsIntel32e, "win7-x86pae": intel.WindowsIntelPAE,
          "win7-x86": intel.WindowsIntel}


@pytest.mark.parametrize("target", list(LAYERS))
def test_every_vad_page_translates_the_same_in_volatility3(target):
    m = kdsim.boot(target, ram="512m")
    nt, ts, k = m.nt, m.nt.ts, KernelMemory(m.core)
    dtb_path = "Pcb.DirectoryTableBase"
    compared = transition = 0
    for ep in nt.processes[1:]:
        cr3 = ts.field("_EPROCESS", dtb_path).read(k, ep)
        layer = volatility_layer(m.core, LAYERS[target], cr3)
        proc = next(p for p in nt.process_objects.values() if p.ep == ep)
        for node in proc.vads.nodes_in_order():
            vad = nt.vm.vad_at(proc, ts.field("_MMVAD_SHORT", "StartingVpn").read(k, node)
                               * 0x1000)
            for va in range(vad.start, vad.end, 0x1000):
                t = m.core.translate(va + 0x10, cr3=cr3)
                try:
                    theirs = layer.translate(va + 0x10)[0]
                except vol_exceptions.InvalidAddressException:
                    theirs = None
                if t.ok:
                    assert theirs == t.pa, hex(va)
                    compared += 1
                    continue
                pte = proc.tables.get(va) or 0
                d = nt.codec.decode(pte)
                if d.kind == "transition":
                    assert theirs == d.pfn * 0x1000 + 0x10, hex(va)
                    transition += 1
                else:
                    assert theirs is None, f"{va:#x}: {d.kind} PTE {pte:#x}"
    assert compared >= 40 and transition >= 2      # the default scenario has both
