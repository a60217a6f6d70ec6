"""Settings: ``config.toml`` with environment overrides, validated by pydantic-settings.

Why pydantic-settings: the file, the environment and the defaults are merged and validated in one
place, and a bad value names its key. Secrets are never read from the file: ``extra="forbid"``
rejects any key the model does not declare, and no declared key holds a secret (the OpenAI key is
read from the environment variable that ``judge.openai.api_key_env`` names).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: Sane ranges of a community's market settings (also declared in the API's schema): a market
#: whose judge values information at 0, whose budget is 0, or whose window outlives everyone is a
#: market that can never buy a note.
SLOTS_RANGE = (1, 100)
RESERVE_RANGE = (0, 1_000_000)
WINDOW_RANGE = (60, 30 * 24 * 3600)  # one minute to thirty days
PRICE_OF_INFORMATION_RANGE = (1, 1_000_000)
BUDGET_RANGE = (1, 1_000_000_000)
PAYMENT_HOLD_RANGE = (0, 24 * 365)  # hours: up to a year
WRITER_OFFERS_RANGE = (0, 1_000_000)  # a writer's offers a day, or more of them per right note


class MarketSettings(_Section):
    attention_slots: int = Field(3, ge=SLOTS_RANGE[0], le=SLOTS_RANGE[1])
    reserve: int = Field(2, ge=RESERVE_RANGE[0], le=RESERVE_RANGE[1])
    window_seconds: int = Field(3600, ge=WINDOW_RANGE[0], le=WINDOW_RANGE[1])
    price_of_information: int = Field(100, ge=PRICE_OF_INFORMATION_RANGE[0], le=PRICE_OF_INFORMATION_RANGE[1])
    budget_per_market: int = Field(200, ge=BUDGET_RANGE[0], le=BUDGET_RANGE[1])
    auction: Literal["gsp", "first_price"] = "gsp"
    # Automatic note writers earn their room (issue 17): a registered writer may make this many
    # offers a day in the community, plus this many more per right note of its track record
    # (right minus wrong, never below zero). pipeline.market.writer_daily_cap.
    writer_offers_per_day: int = Field(5, ge=WRITER_OFFERS_RANGE[0], le=WRITER_OFFERS_RANGE[1])
    writer_offers_per_right_note: int = Field(2, ge=WRITER_OFFERS_RANGE[0], le=WRITER_OFFERS_RANGE[1])
    # Hours a bought note's price waits in escrow for readers' verdict (0: paid at purchase).
    payment_hold_hours: int = Field(0, ge=PAYMENT_HOLD_RANGE[0], le=PAYMENT_HOLD_RANGE[1])


class LimitSettings(_Section):
    max_note_chars: int = Field(2000, ge=1)
    max_sources: int = Field(5, ge=0)
    max_source_chars: int = Field(500, ge=1)
    max_open_offers_per_informer: int = Field(2, ge=1)
    max_amount: int = Field(1_000_000_000, ge=1, le=2**62)


class ModelServerSettings(_Section):
    """An OpenAI-compatible model server: where it is, which model, the name of the environment
    variable holding its key, and how long and how often to ask it."""

    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_seconds: float = Field(120.0, gt=0)
    max_retries: int = Field(1, ge=0, le=10)
    max_tokens: int = Field(320, ge=16, le=8192)


class OpenAISettings(ModelServerSettings):
    """The LLM judge's server. Sized for a small model on a CPU server: one answer is a few hundred
    tokens, a request may take a minute, and a timeout is not retried (the same prompt would run
    as slowly again); only transport failures (refused connection, 429, 502-504) are."""

    inspection_seconds: float = Field(240.0, gt=0)
    response_format: Literal["auto", "json_schema", "json_object", "none"] = "auto"


class JudgeSettings(_Section):
    kind: Literal["local", "openai"] = "local"
    openai: OpenAISettings = OpenAISettings()


class RecursionSettings(_Section):
    """Sub-markets about an offer (issue 8). The rules that use these numbers are in pipeline.rules."""

    enabled: bool = False
    uncertain_band: float = Field(0.8, gt=0.0, le=1.0)
    max_depth: int = Field(1, ge=0, le=5)
    max_breadth: int = Field(3, ge=0, le=20)
    budget_share: float = Field(0.3, gt=0.0, le=1.0)
    min_budget: int = Field(4, ge=1)
    window_seconds: int = Field(900, ge=WINDOW_RANGE[0], le=WINDOW_RANGE[1])


class WriterModelSettings(ModelServerSettings):
    """The model server that writes notes for ``notebazaar writer --source openai``: a server like
    the judge's, its own values, and how long a draft may be."""

    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    max_tokens: int = Field(300, ge=16, le=8192)
    max_note_chars: int = Field(600, ge=20)


class WriterSettings(_Section):
    """``notebazaar writer``: an automatic informer, a client of the JSON API (issue 17)."""

    server: str = "http://127.0.0.1:8000"
    token_env: str = "NOTEBAZAAR_WRITER_TOKEN"
    community: str = ""
    interval_seconds: float = Field(30.0, gt=0)
    offers_per_market: int = Field(2, ge=1, le=10)
    alpha: float = Field(2.0, ge=0)
    prior_strength: float = Field(1.0, gt=0)
    decay: float = Field(1.0, gt=0, le=1)
    timeout_seconds: float = Field(10.0, gt=0)
    retries: int = Field(3, ge=0)
    openai: WriterModelSettings = WriterModelSettings()


class BridgingSettings(_Section):
    """The bridging scorer over readers' ratings (issue 13; formulas in pipeline/bridging.py)."""

    min_ratings: int = Field(5, ge=1)
    helpful_intercept: float = 0.40
    helpful_max_factor: float = Field(0.50, gt=0)
    not_helpful_intercept: float = -0.05
    not_helpful_factor_slope: float = Field(0.8, ge=0)
    intercept_lambda: float = Field(0.15, ge=0)
    factor_lambda: float = Field(0.03, ge=0)
    global_lambda: float = Field(0.15, ge=0)
    min_rater_agreement: float = Field(0.66, ge=0, le=1)
    min_rater_verdicts: int = Field(5, ge=1)
    consensus_min_peers: int = Field(4, ge=0)
    consensus_share: float = Field(0.75, gt=0.5, le=1)
    consensus_agreement: float = Field(0.5, ge=0, le=1)
    consensus_min_verdicts: int = Field(3, ge=1)
    hide_undecided_author_wrong: int = Field(2, ge=0)
    max_iterations: int = Field(500, ge=1)
    tolerance: float = Field(1e-6, gt=0)
    seed: int = 0
    score_interval_seconds: float = Field(300.0, gt=0)


class IndexSettings(_Section):
    model: str = "all-MiniLM-L6-v2"
    kind: Literal["auto", "flat", "ivf", "hnsw"] = "auto"
    flat_max: int = Field(20_000, ge=1)
    top_k: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=1)
    model_sha256: str = Field("", pattern=r"^([0-9a-fA-F]{64})?$")
    max_passage_chars: int = Field(20_000, ge=100, le=1_000_000)
    max_corpus_file_bytes: int = Field(128 * 1024 * 1024, ge=1024, le=16 * 1024**3)


def _rate(value: str) -> str:
    """A rate in the ``limits`` library's notation ("10 per 10 minutes"), checked at load."""
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a rate like '10 per 10 minutes'") from None
    return value


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    close_poll_seconds: float = Field(5.0, gt=0)
    demo_community: str = "demo"
    signup_credits: int = Field(0, ge=0, le=1_000_000)
    demo_signup_credits: int = Field(100, ge=0, le=1_000_000)
    session_days: int = Field(14, ge=1, le=365)
    https_only: bool = False  # mark the session cookie Secure: set it when served over HTTPS
    login_rate_per_handle: str = "10 per 10 minutes"
    login_rate_per_address: str = "100 per 10 minutes"

    _rates = field_validator("login_rate_per_handle", "login_rate_per_address")(_rate)


class DiscordSettings(_Section):
    guilds: dict[str, str] = {}
    watch_channels: list[int] = []
    check_worthiness: Literal["keywords", "all", "none"] = "keywords"
    min_chars: int = Field(40, ge=0)
    reply_mode: Literal["reply", "thread"] = "reply"
    connect_attempts: int = Field(5, ge=1, le=100)


class RedditSettings(_Section):
    subreddits: dict[str, str] = {}
    user_agent: str = "notebazaar/0.1 (community notes bot)"
    wiki_page: str = "notebazaar"
    check_worthiness: Literal["keywords", "all", "none"] = "keywords"
    min_chars: int = Field(40, ge=0)
    tick_seconds: float = Field(10.0, gt=0)
    docs_url: str = ""


class DeliverySettings(_Section):
    """How the bots retry posting a bought note or a receipt (pipeline/outbox.py): exponential
    backoff with jitter, for hours, after which a note still failing is shown to moderators."""

    first_retry_seconds: float = Field(10.0, gt=0)
    max_retry_seconds: float = Field(1800.0, gt=0)
    give_up_after_hours: float = Field(72.0, gt=0)


class LoggingSettings(_Section):
    """The bots log to stderr and to notebazaar.log beside the database, at this level."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(BaseSettings):
    """All settings. Precedence: arguments > environment (``NOTEBAZAAR_*``) > config.toml > defaults."""

    model_config = SettingsConfigDict(
        env_prefix="NOTEBAZAAR_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    db: str = "var/notebazaar.db"
    market: MarketSettings = MarketSettings()
    limits: LimitSettings = LimitSettings()
    judge: JudgeSettings = JudgeSettings()
    recursion: RecursionSettings = RecursionSettings()
    writer: WriterSettings = WriterSettings()
    bridging: BridgingSettings = BridgingSettings()
    index: IndexSettings = IndexSettings()
    web: WebSettings = WebSettings()
    discord: DiscordSettings = DiscordSettings()
    reddit: RedditSettings = RedditSettings()
    delivery: DeliverySettings = DeliverySettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = config_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def config_path() -> Path | None:
    """The config file in force: ``$NOTEBAZAAR_CONFIG``, else ``./config.toml`` if present."""
    explicit = os.environ.get("NOTEBAZAAR_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"NOTEBAZAAR_CONFIG points at {path}, which is not a file")
        return path
    local = Path("config.toml")
    return local if local.is_file() else None


def load_settings(**overrides: object) -> Settings:
    """Load settings from the file and environment, with keyword overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
