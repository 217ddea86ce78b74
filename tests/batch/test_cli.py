"""The hearth command: exit codes and what it prints."""

from __future__ import annotations

import pytest

from hearth.batch.cli import main
from hearth.batch.generate import generate


@pytest.fixture(scope="module")
def small_book(tmp_path_factory):
    root = tmp_path_factory.mktemp("clibook")
    generate(str(root), 120, seed=3, bad_fraction=0.02, profile="small")
    return str(root)


def test_run_commits_and_prints_a_summary(small_book, tmp_path, capsys):
    code = main(["run", small_book, str(tmp_path), "--run-date", "2026-11-20", "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "120 households" in out and "manifest:" in out and "traded" in out


def test_failure_rate_above_the_limit_exits_3(small_book, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("failure_rate_limit = 0.0\n")
    code = main(["run", small_book, str(tmp_path / "out"), "--run-date", "2026-11-20",
                 "--workers", "1", "--config", str(cfg)])
    assert code == 3  # the book has bad households on purpose
    assert "failure rate above" in capsys.readouterr().err


def test_unknown_config_key_is_bad_usage(small_book, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("drift_treshold = 0.05\n")
    assert main(["run", small_book, str(tmp_path / "o"), "--run-date", "2026-11-20",
                 "--config", str(cfg)]) == 2
    assert "drift_treshold" in capsys.readouterr().err


def test_missing_input_and_bad_date_are_bad_usage(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope"), str(tmp_path / "o"), "--run-date",
                 "2026-11-20"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["run", str(tmp_path), str(tmp_path / "o"), "--run-date", "2026-13-45"])
    assert e.value.code == 2


def test_validate_lists_exceptions(small_book, capsys):
    assert main(["validate", small_book, "--run-date", "2026-11-20"]) == 3  # problems found
    captured = capsys.readouterr()
    assert '"code": "negative_quantity"' in captured.out or '"code": "unknown_security"' in captured.out
    assert "households would be set aside" in captured.err
