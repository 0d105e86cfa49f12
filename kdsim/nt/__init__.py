"""The emulated Windows memory manager.

``kdsim.nt.profiles`` holds one data module per target build and ``kdsim.nt.types`` the
typed views through which the memory manager writes, and the debugger reads, real Windows
structures in guest memory. Nothing here imports the C core.
"""
