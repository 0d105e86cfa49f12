"""Command families; importing this package registers them."""
from . import memory, meta, pte  # noqa: F401
