"""The Discord bot: slash commands, a modal for sealed notes, a "Request notes" context menu, a
channel watcher, and delivery of revealed notes. Market rules stay in :mod:`notebazaar.pipeline`.

Entry point: :func:`notebazaar.bot.discord.runner.run_discord` (``notebazaar discord``).
"""
