"""Command families; importing this package registers them."""
from . import memory, meta  # noqa: F401
