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


class MarketSettings(_Section):
    attention_slots: int = Field(3, ge=1, le=100)
    reserve: int = Field(2, ge=0)
    window_seconds: int = Field(3600, ge=0)
    price_of_information: int = Field(100, ge=0)
    budget_per_market: int = Field(200, ge=0)
    auction: Literal["gsp", "first_price"] = "gsp"
    # Hours a bought note's price waits in escrow for readers' verdict (0: paid at purchase).
    payment_hold_hours: int = Field(0, ge=0, le=24 * 365)


class LimitSettings(_Section):
    max_note_chars: int = Field(2000, ge=1)
    max_sources: int = Field(5, ge=0)
    max_source_chars: int = Field(500, ge=1)
    max_open_offers_per_informer: int = Field(2, ge=1)
    max_amount: int = Field(1_000_000_000, ge=1)


class OpenAISettings(_Section):
    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0)


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
    window_seconds: int = Field(900, ge=0)


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
    session_days: int = Field(14, ge=1, le=365)
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
