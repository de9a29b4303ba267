"""Cache entries are keyed by version and recipe, and count only once complete."""

from __future__ import annotations

from pathlib import Path

from checkout_stack.cache import CacheEntry, recipe_digest


def test_recipe_digest_changes_with_content(tmp_path: Path) -> None:
    recipe = tmp_path / "go.mod"
    recipe.write_text("module a\n")
    before = recipe_digest([recipe])
    assert recipe_digest([recipe]) == before
    recipe.write_text("module b\n")
    assert recipe_digest([recipe]) != before
    assert recipe_digest([recipe], "extra") != recipe_digest([recipe])


def test_entry_is_incomplete_until_finished_and_begin_clears_leftovers(tmp_path: Path) -> None:
    entry = CacheEntry(tmp_path, "etcd", "v3.6.16", "abc")
    assert entry.path == tmp_path / "etcd-v3.6.16-abc"
    assert not entry.complete
    entry.begin()
    (entry.path / "half-built").write_text("x")
    assert not entry.complete
    entry.begin()
    assert not (entry.path / "half-built").exists()
    entry.finish()
    assert entry.complete
    assert CacheEntry(tmp_path, "etcd", "v3.6.17", "abc").complete is False
