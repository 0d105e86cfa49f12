"""kdsim: a kd/WinDbg-style kernel-debugger shell attached to an emulated machine."""
__version__ = "0.1.0"
