"""The ``notebazaar`` command line: a thin layer on top of everything else.

Every command takes ``--db PATH`` after the subcommand; its default comes from config.toml. A refused
request prints ``Error: <what is wrong>`` and exits 1. Each module here registers one group of
commands on :data:`notebazaar.cli.base.main`; none of them holds market logic.
"""

from notebazaar.cli import (  # noqa: F401  (registers commands)
    accounts,
    corpus,
    demo,
    export,
    judge,
    ledger,
    market,
    measure,
    outbox,
    ratings,
    surfaces,
    writer,
)
from notebazaar.cli.base import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
