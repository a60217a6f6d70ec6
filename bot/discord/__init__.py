"""The Discord bot: slash commands, a modal for sealed notes, a "Request notes" context menu, a
channel watcher, and delivery of revealed notes. Market rules stay in :mod:`pipeline`.

Entry point: :func:`bot.discord.runner.run_discord` (``notebazaar discord``).
"""
