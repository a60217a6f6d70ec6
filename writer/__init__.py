"""``notebazaar writer``: an automatic note writer that learns from what the market pays.

A client of the market, not part of it: it talks to a notebazaar server through the JSON API with an
API token (:mod:`notebazaar.writer.runner`), keeps its own log and state folder
(:mod:`notebazaar.writer.log`), and learns with a contextual bandit (:mod:`notebazaar.writer.bandit`,
:mod:`notebazaar.writer.choices`) from the market's ``reward``
(:func:`notebazaar.pipeline.rewards.reward`). The learning core (:mod:`notebazaar.writer.core`) knows
no HTTP, so the simulator drives it in-process (:mod:`notebazaar.writer.simulated`).

Layering: the writer may use the market's foundation (settings, sealing, retrieval) but never the
web app, the bots or the CLI; the market never imports the writer.
"""
