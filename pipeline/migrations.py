"""The schema, as an ordered list of sqlite-utils migrations.

Raw SQL, because STRICT tables with CHECK constraints have to be declared at create time. Add a
new function at the end to change the schema; never edit one that has shipped.

Money is INTEGER credits everywhere. Times are REAL Unix seconds.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("notebazaar")


def _run_script(db: Database, script: str) -> None:
    """Run statements one by one, inside the migration's transaction.

    ``executescript`` would COMMIT first and break the migration's atomicity.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:60]}")


@migrations()
def m001_core(db: Database) -> None:
    _run_script(
        db,
        """
        CREATE TABLE communities (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            attention_slots INTEGER NOT NULL CHECK (attention_slots >= 1),
            reserve INTEGER NOT NULL CHECK (reserve >= 0),
            window_seconds INTEGER NOT NULL CHECK (window_seconds >= 0),
            price_of_information INTEGER NOT NULL CHECK (price_of_information >= 0),
            budget_per_market INTEGER NOT NULL CHECK (budget_per_market >= 0),
            auction TEXT NOT NULL CHECK (auction IN ('gsp', 'first_price')),
            active_prompt_id INTEGER,
            created_at REAL NOT NULL
        ) STRICT;

        CREATE TABLE accounts (
            id INTEGER PRIMARY KEY,
            handle TEXT NOT NULL UNIQUE,
            password_hash TEXT,
            created_at REAL NOT NULL
        ) STRICT;

        -- Roles are per community: reader, informer, moderator.
        CREATE TABLE roles (
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            community_id INTEGER NOT NULL REFERENCES communities(id),
            role TEXT NOT NULL CHECK (role IN ('reader', 'informer', 'moderator')),
            PRIMARY KEY (account_id, community_id, role)
        ) STRICT;

        CREATE TABLE bans (
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            community_id INTEGER NOT NULL REFERENCES communities(id),
            reason TEXT NOT NULL,
            banned_by INTEGER REFERENCES accounts(id),
            banned_at REAL NOT NULL,
            PRIMARY KEY (account_id, community_id)
        ) STRICT;

        -- A platform identity (a Discord user id, a Reddit username) mapped to an account.
        CREATE TABLE identities (
            platform TEXT NOT NULL,
            external_id TEXT NOT NULL,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            PRIMARY KEY (platform, external_id)
        ) STRICT;

        CREATE TABLE api_tokens (
            token_hash TEXT PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            label TEXT NOT NULL,
            created_at REAL NOT NULL
        ) STRICT;

        CREATE TABLE posts (
            id INTEGER PRIMARY KEY,
            community_id INTEGER NOT NULL REFERENCES communities(id),
            platform TEXT NOT NULL,
            external_id TEXT NOT NULL,
            url TEXT,
            author TEXT,
            text TEXT NOT NULL,
            created_at REAL NOT NULL,
            resolution TEXT CHECK (resolution IN ('misleading', 'not_misleading')),
            resolved_at REAL,
            UNIQUE (platform, external_id)
        ) STRICT;

        -- Double-entry ledger. 'issuance' is the one account allowed below zero: minting moves
        -- credits out of it, so everything ever minted is minus its balance.
        CREATE TABLE ledger_accounts (
            id INTEGER PRIMARY KEY,
            ref TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('issuance', 'wallet', 'pool', 'escrow', 'budget')),
            balance INTEGER NOT NULL DEFAULT 0,
            CHECK (kind = 'issuance' OR balance >= 0)
        ) STRICT;

        CREATE TABLE ledger_transactions (
            id INTEGER PRIMARY KEY,
            idempotency_key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            memo TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        ) STRICT;

        CREATE TABLE ledger_entries (
            id INTEGER PRIMARY KEY,
            transaction_id INTEGER NOT NULL REFERENCES ledger_transactions(id),
            account_id INTEGER NOT NULL REFERENCES ledger_accounts(id),
            amount INTEGER NOT NULL CHECK (amount != 0)
        ) STRICT;
        CREATE INDEX ledger_entries_account ON ledger_entries(account_id);
        CREATE INDEX ledger_entries_transaction ON ledger_entries(transaction_id);

        -- A market on a post (depth 0) or, for recursion, on an offer (parent_offer_id set).
        CREATE TABLE markets (
            id INTEGER PRIMARY KEY,
            post_id INTEGER NOT NULL REFERENCES posts(id),
            community_id INTEGER NOT NULL REFERENCES communities(id),
            parent_offer_id INTEGER,
            depth INTEGER NOT NULL DEFAULT 0 CHECK (depth >= 0),
            status TEXT NOT NULL CHECK (status IN ('open', 'closing', 'settled')),
            attention_slots INTEGER NOT NULL,
            reserve INTEGER NOT NULL,
            price_of_information INTEGER NOT NULL,
            auction TEXT NOT NULL,
            budget INTEGER NOT NULL CHECK (budget >= 0),
            opened_at REAL NOT NULL,
            closes_at REAL NOT NULL,
            closed_at REAL,
            settled_at REAL,
            prior REAL,
            belief REAL
        ) STRICT;
        CREATE UNIQUE INDEX markets_one_per_post ON markets(post_id) WHERE parent_offer_id IS NULL;
        CREATE INDEX markets_status ON markets(status, closes_at);

        -- Sealed offers. Content (classification, text, sources) exists here only as AES-GCM
        -- ciphertext; its key lives in offer_keys and is deleted when the offer is shredded.
        CREATE TABLE offers (
            id INTEGER PRIMARY KEY,
            market_id INTEGER NOT NULL REFERENCES markets(id),
            informer_id INTEGER NOT NULL REFERENCES accounts(id),
            status TEXT NOT NULL CHECK (status IN
                ('sealed', 'withdrawn', 'replaced', 'won', 'bought', 'shredded')),
            bid INTEGER NOT NULL CHECK (bid >= 0),
            price INTEGER NOT NULL CHECK (price >= 0),
            teaser TEXT,
            commitment TEXT NOT NULL,
            nonce BLOB,
            ciphertext BLOB,
            submitted_at REAL NOT NULL,
            rank INTEGER,
            charge INTEGER CHECK (charge IS NULL OR (charge >= 0 AND charge <= bid)),
            outcome TEXT
        ) STRICT;
        CREATE INDEX offers_market ON offers(market_id, status);
        CREATE INDEX offers_informer ON offers(informer_id);

        CREATE TABLE offer_keys (
            offer_id INTEGER PRIMARY KEY REFERENCES offers(id),
            key BLOB NOT NULL
        ) STRICT;

        -- One row per inspected offer. For an unbought offer only numbers and a reason code are
        -- kept: no text, no model rationale.
        CREATE TABLE inspections (
            id INTEGER PRIMARY KEY,
            offer_id INTEGER NOT NULL UNIQUE REFERENCES offers(id),
            market_id INTEGER NOT NULL REFERENCES markets(id),
            judge TEXT NOT NULL,
            p_before REAL NOT NULL,
            p_after REAL NOT NULL,
            kl REAL NOT NULL,
            value REAL NOT NULL,
            bought INTEGER NOT NULL CHECK (bought IN (0, 1)),
            reason TEXT NOT NULL,
            tokens INTEGER NOT NULL DEFAULT 0,
            inspected_at REAL NOT NULL
        ) STRICT;

        CREATE TABLE reveals (
            id INTEGER PRIMARY KEY,
            offer_id INTEGER NOT NULL UNIQUE REFERENCES offers(id),
            market_id INTEGER NOT NULL REFERENCES markets(id),
            post_id INTEGER NOT NULL REFERENCES posts(id),
            informer_id INTEGER NOT NULL REFERENCES accounts(id),
            classification TEXT NOT NULL CHECK (classification IN ('misleading', 'not_misleading')),
            text TEXT NOT NULL,
            sources TEXT NOT NULL DEFAULT '[]',
            price INTEGER NOT NULL,
            rationale TEXT NOT NULL DEFAULT '',
            revealed_at REAL NOT NULL,
            unpublished_at REAL,
            unpublish_reason TEXT
        ) STRICT;
        CREATE INDEX reveals_post ON reveals(post_id);

        -- What each surface still has to show. Delivered rows keep their platform message id so a
        -- restarted bot never posts a note twice.
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            reveal_id INTEGER NOT NULL REFERENCES reveals(id),
            surface TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            external_id TEXT,
            created_at REAL NOT NULL,
            delivered_at REAL,
            UNIQUE (reveal_id, surface)
        ) STRICT;

        CREATE TABLE ratings (
            reveal_id INTEGER NOT NULL REFERENCES reveals(id),
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            helpful INTEGER NOT NULL CHECK (helpful IN (0, 1)),
            rated_at REAL NOT NULL,
            PRIMARY KEY (reveal_id, account_id)
        ) STRICT;

        CREATE TABLE prompts (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            text TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            created_by INTEGER REFERENCES accounts(id),
            created_at REAL NOT NULL,
            UNIQUE (name, version)
        ) STRICT;

        -- Public text the judge may retrieve: posts, revealed notes, the trusted reference corpus.
        -- Row ids here are the faiss ids. Unbought notes are never indexed.
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('post', 'reveal', 'reference')),
            ref_id INTEGER,
            community_id INTEGER,
            title TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        ) STRICT;
        CREATE UNIQUE INDEX documents_ref ON documents(kind, ref_id) WHERE ref_id IS NOT NULL;

        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            actor_id INTEGER REFERENCES accounts(id),
            community_id INTEGER REFERENCES communities(id),
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}'
        ) STRICT;

        -- Small key/value state for bots (a Reddit stream position, say).
        CREATE TABLE bot_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        ) STRICT;
        """,
    )


@migrations()
def m002_sub_market_lookup(db: Database) -> None:
    """Sub-markets are looked up by the offer they are about: on every inspection (is there one?)
    and in every track record (which offers did one discredit?)."""
    _run_script(
        db,
        """
        CREATE INDEX markets_parent_offer ON markets(parent_offer_id) WHERE parent_offer_id IS NOT NULL;
        """,
    )


@migrations()
def m003_note_statuses(db: Database) -> None:
    """A revealed note's status, as the bridging scorer last computed it from readers' ratings, and
    every change of it (as Community Notes' note status history). In production this is the
    market's truth: track records, hiding and held payments follow it."""
    _run_script(
        db,
        """
        CREATE TABLE note_statuses (
            reveal_id INTEGER PRIMARY KEY REFERENCES reveals(id),
            status TEXT NOT NULL CHECK (status IN ('needs_more_ratings', 'helpful', 'not_helpful')),
            intercept REAL,
            factor REAL,
            ratings INTEGER NOT NULL DEFAULT 0 CHECK (ratings >= 0),
            scored_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX note_statuses_status ON note_statuses(status);

        CREATE TABLE note_status_history (
            id INTEGER PRIMARY KEY,
            reveal_id INTEGER NOT NULL REFERENCES reveals(id),
            previous_status TEXT,
            status TEXT NOT NULL CHECK (status IN ('needs_more_ratings', 'helpful', 'not_helpful')),
            intercept REAL,
            factor REAL,
            ratings INTEGER NOT NULL DEFAULT 0,
            changed_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX note_status_history_reveal ON note_status_history(reveal_id, changed_at);
        """,
    )


@migrations()
def m010_idempotency_keys(db: Database) -> None:
    """Answers to money-moving API calls, kept for a day under the client's ``Idempotency-Key``,
    so a retried call gets the first answer and moves nothing again (``web/idempotency.py``).

    The key itself is never stored (only a hash of it), and the answer is AES-GCM ciphertext under a
    key derived from it: an answer can hold a receipt's salt or a new API token, which must not be
    readable from the database."""
    _run_script(
        db,
        """
        CREATE TABLE idempotency_keys (
            scope INTEGER NOT NULL,
            key_hash TEXT NOT NULL,
            salt BLOB NOT NULL,
            fingerprint TEXT NOT NULL,
            status INTEGER NOT NULL,
            nonce BLOB NOT NULL,
            answer BLOB NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (scope, key_hash)
        ) STRICT;
        CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
        """,
    )


@migrations()
def m015_prompt_scope(db: Database) -> None:
    """Prompt versions belong to the community whose moderator saved them (NULL: the packaged
    default, which every community shares). Existing versions get the community their creation was
    audited under."""
    _run_script(
        db,
        """
        ALTER TABLE prompts ADD COLUMN community_id INTEGER REFERENCES communities(id);
        UPDATE prompts SET community_id = (
            SELECT l.community_id FROM audit_log l
            WHERE l.action = 'prompt.create' AND l.target = 'prompt:' || prompts.id
            ORDER BY l.id LIMIT 1
        ) WHERE version > 1;
        CREATE INDEX prompts_community ON prompts(community_id, name, version);
        """,
    )


@migrations()
def m016_sessions(db: Database) -> None:
    """Web sessions kept on the server, so logging out or changing a password ends them: the cookie
    holds only a random session id, and only its SHA-256 is stored here."""
    _run_script(
        db,
        """
        CREATE TABLE sessions (
            id_hash TEXT PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX sessions_account ON sessions(account_id);
        """,
    )


@migrations()
def m020_delivery_schedule(db: Database) -> None:
    """Delivery that survives outages and restarts (issue 16).

    The outbox keeps each row's retry schedule: when the next attempt is due, since when it has
    been failing (the give-up horizon counts from there), when the last attempt started (an
    attempt that started may have reached the platform, so the next one first looks for it there),
    and when it was given up. A market whose post is gone before it settles is cancelled: its
    status becomes 'settled' with the time and reason kept here, so every reader of statuses
    keeps working."""
    _run_script(
        db,
        """
        ALTER TABLE outbox ADD COLUMN next_attempt_at REAL;
        ALTER TABLE outbox ADD COLUMN failing_since REAL;
        ALTER TABLE outbox ADD COLUMN last_attempt_at REAL;
        ALTER TABLE outbox ADD COLUMN failed_at REAL;
        CREATE INDEX outbox_due ON outbox(surface, status, next_attempt_at);
        ALTER TABLE markets ADD COLUMN cancelled_at REAL;
        ALTER TABLE markets ADD COLUMN cancel_reason TEXT;
        """,
    )


@migrations()
def m030_judge_failures(db: Database) -> None:
    """Why a market's prior could not be read (the judge failed: ``judge_error:<reason>``), so a
    judge that fails is counted and shown, never mistaken for one that had nothing to say. Failed
    inspections already record theirs in ``inspections.reason``."""
    _run_script(db, "ALTER TABLE markets ADD COLUMN prior_error TEXT;")


@migrations()
def m031_judge_params(db: Database) -> None:
    """The embedded judge's parameters, fitted on labelled claims (``notebazaar judge fit``): one
    row per community that has its own, and at most one database default (``community_id`` NULL)
    for every community without. The built-in defaults apply where neither exists."""
    _run_script(
        db,
        """
        CREATE TABLE judge_params (
            id INTEGER PRIMARY KEY,
            community_id INTEGER REFERENCES communities(id),
            params TEXT NOT NULL,
            fitted_on TEXT NOT NULL,
            fit_report TEXT NOT NULL,
            created_at REAL NOT NULL
        ) STRICT;
        CREATE UNIQUE INDEX judge_params_community ON judge_params(COALESCE(community_id, 0));
        """,
    )


@migrations()
def m032_reveals_by_informer(db: Database) -> None:
    """Each informer's revealed notes in order: the newcomers' record
    (:func:`notebazaar.pipeline.records.newcomer_track_record`) looks up every informer's first."""
    _run_script(db, "CREATE INDEX IF NOT EXISTS reveals_informer_order ON reveals(informer_id, id);")


@migrations()
def m040_rating_levels(db: Database) -> None:
    """Readers' ratings as Community Notes has them (issue 13), and what the bridging scorer's
    statuses drive: hiding a note on every surface, and payments held until readers agree.

    - ``ratings``: a level (``helpful``, ``somewhat_helpful``, ``not_helpful``), optional reason
      tags (a JSON list, :data:`notebazaar.pipeline.ratings.HELPFUL_TAGS` and
      ``NOT_HELPFUL_TAGS``), the surface it came from, when it was first given and last changed.
      Old rows (helpful 0/1, written only by the simulator) become ``helpful`` / ``not_helpful``.
    - ``reveals.hidden_by``: who hid an unpublished note, a moderator or readers (the scorer); a
      note readers hid is still listed on the web and in the API, marked hidden with the reason.
    - ``outbox.takedown``: a delivered note that was hidden is edited or removed on its platform
      (``pending`` until the bot has done it), with the reason shown to readers.
    - ``payment_hold_hours`` on communities and (copied at open) on markets; ``held_payments``: the
      price of a bought note in escrow until its status is settled or the hold ends.
    - ``cn_notes``: the Community Notes ``noteId`` of an imported note.
    """
    _run_script(
        db,
        """
        CREATE TABLE ratings_v2 (
            reveal_id INTEGER NOT NULL REFERENCES reveals(id),
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            level TEXT NOT NULL CHECK (level IN ('helpful', 'somewhat_helpful', 'not_helpful')),
            tags TEXT NOT NULL DEFAULT '[]',
            surface TEXT NOT NULL,
            rated_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (reveal_id, account_id)
        ) STRICT;
        INSERT INTO ratings_v2 (reveal_id, account_id, level, tags, surface, rated_at, updated_at)
            SELECT reveal_id, account_id, CASE helpful WHEN 1 THEN 'helpful' ELSE 'not_helpful' END,
                   '[]', 'sim', rated_at, rated_at FROM ratings;
        DROP TABLE ratings;
        ALTER TABLE ratings_v2 RENAME TO ratings;
        CREATE INDEX ratings_account ON ratings(account_id);

        ALTER TABLE reveals ADD COLUMN hidden_by TEXT CHECK (hidden_by IN ('moderator', 'readers'));
        UPDATE reveals SET hidden_by = 'moderator' WHERE unpublished_at IS NOT NULL;

        ALTER TABLE outbox ADD COLUMN takedown TEXT CHECK (takedown IN ('pending', 'done', 'failed'));
        ALTER TABLE outbox ADD COLUMN takedown_reason TEXT;
        CREATE INDEX outbox_takedown ON outbox(surface, takedown) WHERE takedown IS NOT NULL;

        ALTER TABLE communities ADD COLUMN payment_hold_hours INTEGER NOT NULL DEFAULT 0
            CHECK (payment_hold_hours >= 0);
        ALTER TABLE markets ADD COLUMN payment_hold_hours INTEGER NOT NULL DEFAULT 0
            CHECK (payment_hold_hours >= 0);

        CREATE TABLE held_payments (
            offer_id INTEGER PRIMARY KEY REFERENCES offers(id),
            reveal_id INTEGER NOT NULL UNIQUE REFERENCES reveals(id),
            market_id INTEGER NOT NULL REFERENCES markets(id),
            community_id INTEGER NOT NULL REFERENCES communities(id),
            informer_id INTEGER NOT NULL REFERENCES accounts(id),
            amount INTEGER NOT NULL CHECK (amount > 0),
            held_at REAL NOT NULL,
            release_at REAL NOT NULL,
            settled_at REAL,
            outcome TEXT CHECK (outcome IN ('paid', 'returned'))
        ) STRICT;
        CREATE INDEX held_payments_open ON held_payments(release_at) WHERE settled_at IS NULL;

        -- Notes imported from Community Notes' TSVs keep their noteId (ratings import-cn / export-cn).
        CREATE TABLE cn_notes (
            note_id TEXT PRIMARY KEY,
            reveal_id INTEGER NOT NULL UNIQUE REFERENCES reveals(id)
        ) STRICT;
        """,
    )


@migrations()
def m050_writers(db: Database) -> None:
    """Automatic note writers (issue 17): the accounts registered as writers, and the community
    settings that cap a new writer's offers a day and raise the cap with its track record."""
    _run_script(
        db,
        """
        CREATE TABLE writers (
            account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
            registered_at REAL NOT NULL
        ) STRICT;

        ALTER TABLE communities ADD COLUMN writer_offers_per_day INTEGER NOT NULL DEFAULT 5
            CHECK (writer_offers_per_day >= 0);
        ALTER TABLE communities ADD COLUMN writer_offers_per_right_note INTEGER NOT NULL DEFAULT 2
            CHECK (writer_offers_per_right_note >= 0);
        CREATE INDEX offers_informer_time ON offers(informer_id, submitted_at);
        """,
    )


@migrations()
def m060_record_counters(db: Database) -> None:
    """Track records as maintained counters (issue 18): reading a record was a scan of every
    revealed note (O(markets) per inspection); now it is one row. ``counted_notes`` holds each
    revealed note's current contribution, so a recount of one note applies only the difference
    (and, for each informer's first revealed note in a community, to the newcomers' record);
    ``discredits`` holds each counted discredit once. Filled from the existing tables by the
    recount in :func:`m080_counted_inspections` (the rule in force needs that table too)."""
    _run_script(
        db,
        """
        CREATE TABLE informer_records (
            informer_id INTEGER PRIMARY KEY REFERENCES accounts(id),
            notes_right INTEGER NOT NULL DEFAULT 0 CHECK (notes_right >= 0),
            notes_wrong INTEGER NOT NULL DEFAULT 0 CHECK (notes_wrong >= 0),
            discredited INTEGER NOT NULL DEFAULT 0 CHECK (discredited >= 0)
        ) STRICT;

        CREATE TABLE community_records (
            community_id INTEGER PRIMARY KEY REFERENCES communities(id),
            notes_right INTEGER NOT NULL DEFAULT 0 CHECK (notes_right >= 0),
            notes_wrong INTEGER NOT NULL DEFAULT 0 CHECK (notes_wrong >= 0),
            resolved_posts INTEGER NOT NULL DEFAULT 0 CHECK (resolved_posts >= 0),
            misleading_posts INTEGER NOT NULL DEFAULT 0 CHECK (misleading_posts >= 0),
            -- each informer's first revealed note in the community: how far newcomers proved right
            newcomer_right INTEGER NOT NULL DEFAULT 0 CHECK (newcomer_right >= 0),
            newcomer_wrong INTEGER NOT NULL DEFAULT 0 CHECK (newcomer_wrong >= 0)
        ) STRICT;

        CREATE TABLE counted_notes (
            reveal_id INTEGER PRIMARY KEY REFERENCES reveals(id),
            verdict TEXT NOT NULL CHECK (verdict IN ('right', 'wrong'))
        ) STRICT;

        CREATE TABLE discredits (
            sub_market_id INTEGER PRIMARY KEY REFERENCES markets(id),
            offer_id INTEGER NOT NULL REFERENCES offers(id),
            informer_id INTEGER NOT NULL REFERENCES accounts(id)
        ) STRICT;
        """,
    )


@migrations()
def m070_reveals_by_market(db: Database) -> None:
    """A market's revealed notes: settlement reads them before every inspection (the notes the
    judge already bought in this market), and without this index each read scanned every reveal of
    every community (`notebazaar bench --scale`: 14 ms per read at 10^5 revealed notes, 33 reads
    per 32-offer close)."""
    _run_script(db, "CREATE INDEX IF NOT EXISTS reveals_market ON reveals(market_id, id);")


@migrations()
def m080_counted_inspections(db: Database) -> None:
    """Offers read and not bought count in their informer's track record once their post is resolved
    (:func:`notebazaar.pipeline.records.inspection_verdict`): ``counted_inspections`` holds each one's
    current contribution, as ``counted_notes`` does for revealed notes. Filled by a recount (the rule
    in force)."""
    _run_script(
        db,
        """
        CREATE TABLE counted_inspections (
            inspection_id INTEGER PRIMARY KEY REFERENCES inspections(id),
            informer_id INTEGER NOT NULL REFERENCES accounts(id),
            verdict TEXT NOT NULL CHECK (verdict IN ('right', 'wrong'))
        ) STRICT;
        """,
    )
    from notebazaar.pipeline.records import recount  # the rule in force, in one place

    recount(db)


@migrations()
def m090_credit_notes(db: Database) -> None:
    """Strangers' notes awaiting review (:mod:`notebazaar.pipeline.credit`): the trust the embedded
    judge gives informers without a record is bounded by how many of their notes the community has
    not yet checked. Starts empty: notes revealed before this migration are not on credit."""
    _run_script(
        db,
        """
        CREATE TABLE credit_notes (
            reveal_id INTEGER PRIMARY KEY REFERENCES reveals(id),
            community_id INTEGER NOT NULL REFERENCES communities(id),
            opened_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX credit_notes_community ON credit_notes(community_id);
        """,
    )


@migrations()
def m100_wrap_offer_keys(db: Database) -> None:
    """Offer keys an older notebazaar stored in the clear, wrapped under their post's market key
    (:mod:`notebazaar.pipeline.market_keys`), which replaced the WAL checkpoint after every
    settlement; :func:`notebazaar.pipeline.db.open_db` then checkpoints once, so that no page of
    the database or the WAL holds one of them in the clear any more."""
    from notebazaar.pipeline import market_keys  # the key files live beside the database

    clear = db.execute(
        "SELECT k.offer_id, k.key, m.post_id FROM offer_keys k JOIN offers o ON o.id = k.offer_id"
        " JOIN markets m ON m.id = o.market_id WHERE length(k.key) = ?",
        [market_keys.CLEAR_KEY_BYTES],
    ).fetchall()
    for offer_id, key, post_id in clear:
        db.execute(
            "UPDATE offer_keys SET key = ? WHERE offer_id = ?",
            [market_keys.wrap(db, int(post_id), bytes(key)), offer_id],
        )
