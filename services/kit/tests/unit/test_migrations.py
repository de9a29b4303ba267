"""The migration helpers' pure parts: revision numbering and the stale-schema message."""

from __future__ import annotations

import pytest

from checkout_kit.migrations import MigrationError, SchemaRevision, StaleSchemaError, _next_revision_id


@pytest.mark.parametrize(("heads", "expected"), [((), "0001"), (("0001",), "0002"), (("0099",), "0100")])
def test_revisions_are_numbered(heads: tuple[str, ...], expected: str) -> None:
    assert _next_revision_id(heads) == expected


def test_several_heads_must_be_merged_first() -> None:
    with pytest.raises(MigrationError, match="several heads"):
        _next_revision_id(("0002", "0003"))


def test_at_head_only_when_current_equals_head() -> None:
    assert SchemaRevision(current=("0002",), head=("0002",)).at_head
    assert not SchemaRevision(current=("0001",), head=("0002",)).at_head
    assert not SchemaRevision(current=(), head=("0001",)).at_head


def test_the_stale_schema_error_names_current_and_head() -> None:
    behind = str(StaleSchemaError("cart", SchemaRevision(current=("0001",), head=("0002",))))
    assert "'cart' is at revision 0001" in behind
    assert "needs head 0002" in behind
    assert "migrate" in behind
    never = str(StaleSchemaError("cart", SchemaRevision(current=(), head=("0001",))))
    assert "never migrated" in never
