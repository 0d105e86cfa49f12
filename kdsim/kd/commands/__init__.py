"""Command families; importing this package registers them."""
from . import meta  # noqa: F401
