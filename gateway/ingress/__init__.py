"""HTTP ingress: thin aiohttp handlers, one module per dialect, sharing `common`."""
