"""The web surface: a FastAPI app with server-rendered pages (Jinja2 + vendored htmx) and a JSON API.

Route handlers only translate HTTP into pipeline calls; the market lives in :mod:`notebazaar.pipeline`.
"""
