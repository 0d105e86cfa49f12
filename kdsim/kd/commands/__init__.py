"""Command families; importing this package registers them."""
from . import memory, meta, process, pte, vtop  # noqa: F401
