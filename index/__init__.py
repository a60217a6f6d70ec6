"""Retrieval: embeddings of public text (posts, revealed notes, the trusted reference corpus) in a
faiss index persisted beside the database.

Only the ``documents`` table is ever embedded, and it only ever holds public text, so a sealed note's
plaintext or vector never reaches the index. Submodules import torch and faiss lazily where they can,
so importing :mod:`notebazaar.index` itself stays cheap.
"""
