"""Schemathesis over the whole API, in process (ASGI): no 5xx and no schema violation anywhere.

Every operation is fuzzed with data that fits the document and data that does not, signed in as the
demo moderator (who may call every operation), against a fresh demo database. The checks: no server
error; every status, content type, header and body is one the document declares; and data the
document forbids is refused. Bounded in time: a fixed number of examples per operation, no
deadline (the machine is shared), and ``derandomize`` so a run is reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.web.app import create_app
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    DEMO_GRANT,
    MODERATOR,
    api_token,
    fast_hashing_fixture,
    seeded_db,
    web_settings_fixture,
)

pytestmark = pytest.mark.slow
EXAMPLES = 15
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@pytest.fixture
def api_app(tmp_path: Path, web_settings: Any, fast_hashing: None) -> Any:
    db_path = tmp_path / "fuzz.db"
    seeded_db(db_path, web_settings)
    return create_app(
        db_path, web_settings, judge=SimpleJudge(), key="fuzz", signup_grant=DEMO_GRANT, start_worker=False
    )


@pytest.fixture
def moderator(api_app: Any) -> dict[str, str]:
    with TestClient(api_app) as client:
        return api_token(client, *MODERATOR)


def test_the_api_keeps_to_its_document(api_app: Any, moderator: dict[str, str]) -> None:
    """Each operation, with data that fits the document and data that does not."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any) -> None:
                headers = dict(moderator) | dict(case.headers or {})
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                fuzz()
            except Unsatisfiable:
                # Nothing to get wrong: an operation without parameters or a body has no negative data.
                assert mode is GenerationMode.NEGATIVE, operation.label
