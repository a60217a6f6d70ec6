"""Platform adapters: each translates between one platform and the market in :mod:`notebazaar.pipeline`."""
