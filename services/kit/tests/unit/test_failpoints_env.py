"""FAILPOINTS: armed from the environment on development builds, refused by the images."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from checkout_kit import failpoints
from checkout_kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[4]


def test_a_spec_names_the_hit_that_kills() -> None:
    spec = "consumer.after-db-commit=kill@3, outbox.after-publish=kill@1"
    assert failpoints.parse(spec) == {failpoints.CONSUMER_AFTER_DB_COMMIT: 3, failpoints.OUTBOX_AFTER_PUBLISH: 1}
    assert failpoints.parse("") == {}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("consumer.after-db-commit", "expected <name>=kill@<n>"),
        ("consumer.after-db-commit=kill@0", "expected <name>=kill@<n>"),
        ("consumer.after-db-commit=panic@1", "expected <name>=kill@<n>"),
        ("consumer.before-anything=kill@1", "unknown failpoint"),
    ],
)
def test_a_bad_spec_fails_settings_at_startup(spec: str, says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILPOINTS", spec)
    with pytest.raises(ValueError, match=says):
        ServiceSettings()


def test_a_build_that_forbids_failpoints_refuses_them() -> None:
    with pytest.raises(failpoints.FailpointsForbiddenError, match="FAILPOINTS_FORBIDDEN"):
        failpoints.from_settings("outbox.after-publish=kill@1", forbidden=True)
    assert failpoints.from_settings("", forbidden=True) is None


def test_the_process_is_sigkilled_at_the_named_hit_and_not_before() -> None:
    program = """
import asyncio, sys
from checkout_kit import failpoints
point = failpoints.from_settings("outbox.after-publish=kill@3", forbidden=False)
async def main():
    for hit in range(1, 6):
        await point("consumer.after-db-commit")  # another place: never kills
        await point("outbox.after-publish")
        print(hit, flush=True)
asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -9, (done.returncode, done.stderr)
    assert done.stdout.split() == ["1", "2"], "hits 1 and 2 went on; hit 3 killed before anything after it ran"


def test_every_service_image_forbids_failpoints() -> None:
    dockerfiles = sorted((ROOT / "services").glob("*/Dockerfile"))
    assert len(dockerfiles) == 6
    for dockerfile in dockerfiles:
        assert "FAILPOINTS_FORBIDDEN=true" in dockerfile.read_text(), dockerfile
