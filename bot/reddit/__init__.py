"""The Reddit adapter: praw on one side, the pipeline on the other.

It watches subreddits for check-worthy posts (opening markets), takes sealed notes by private
message, posts bought notes as reply comments, reads moderators' settings from a wiki page, and
runs the close loop. Market rules stay in :mod:`notebazaar.pipeline`; this package only translates.
"""
