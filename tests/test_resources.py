"""Which files of a samples folder are scans: one rule for the menu, `--samples` and the self-test."""

from __future__ import annotations

from pathlib import Path

from octviewer.resources import sample_scans, samples_dir


def test_documentation_and_hidden_entries_are_not_scans(tmp_path: Path) -> None:
    for name in ("README.md", "LICENSE", "notes.txt", "expected.json", "list.tsv", ".DS_Store"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"x")
    (tmp_path / "a.dcm").write_bytes(b"x")
    (tmp_path / "series").mkdir()
    (tmp_path / ".cache").mkdir()
    assert [p.name for p in sample_scans(tmp_path)] == ["a.dcm", "b.png", "series"]
    assert sample_scans(tmp_path / "missing") == []


def test_the_menu_the_command_line_and_the_self_test_agree() -> None:
    from octviewer.selftest import find_samples
    from octviewer.ui.app import sample_files

    bundled = sample_scans()
    assert bundled == sample_files() == find_samples(samples_dir())[0]
    assert all(p.suffix.lower() != ".md" for p in bundled)
