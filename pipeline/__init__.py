"""The market: ledger, sealed offers, auction, judges, settlement, moderation and simulation."""
