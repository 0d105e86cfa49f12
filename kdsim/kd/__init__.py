"""The kd engine: WinDbg commands answered from guest memory, through a Target."""
