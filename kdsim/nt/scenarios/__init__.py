"""The machines kdsim can boot: recipes of memory-manager operations (``<name>.toml``)."""
