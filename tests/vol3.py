"""volatility3 over a kdsim guest: a physical layer reading through the Machine, and a
translation layer of any of volatility3's Intel classes on top of it (shared by the core's
and the memory manager's cross-checks)."""
import pytest

from kdsim.machine import Machine

vol_exceptions = pytest.importorskip("volatility3.framework.exceptions")
from volatility3.framework import contexts, interfaces  # noqa: E402


class GuestPhysicalLayer(interfaces.layers.DataLayerInterface):
    """Volatility3's view of the guest's physical memory, read through the Machine."""

    def __init__(self, context, config_path, name, machine: Machine, metadata=None):
        super().__init__(context=context, config_path=config_path, name=name, metadata=metadata)
        self._m = machine

    @property
    def maximum_address(self) -> int:
        return self._m.ram_size - 1

    @property
    def minimum_address(self) -> int:
        return 0

    def is_valid(self, offset: int, length: int = 1) -> bool:
        return self._m.is_physical(offset, length)

    def read(self, offset: int, length: int, pad: bool = False) -> bytes:
        if not self.is_valid(offset, length):
            if pad:
                return b"\0" * length
            raise vol_exceptions.InvalidAddressException(self.name, offset, "not guest RAM")
        return self._m.read_physical(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        raise NotImplementedError("the guest is read-only to volatility3 here")

    @classmethod
    def get_requirements(cls):
        return []


def volatility_layer(m: Machine, layer_class, cr3: int):
    ctx = contexts.Context()
    ctx.add_layer(GuestPhysicalLayer(ctx, "kdsim.physical", "guest_physical", m))
    path = "kdsim.virtual"
    ctx.config[interfaces.configuration.path_join(path, "memory_layer")] = "guest_physical"
    ctx.config[interfaces.configuration.path_join(path, "page_map_offset")] = cr3
    layer = layer_class(ctx, path, "guest_virtual")
    ctx.add_layer(layer)
    return layer
