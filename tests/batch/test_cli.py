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


# -- logs -------------------------------------------------------------------------------

def _events(err: str) -> list[dict]:
    import json

    return [json.loads(line) for line in err.splitlines()]  # every line is JSON off a terminal


def test_off_a_terminal_the_run_logs_json_lines_with_the_run_id(small_book, tmp_path, capsys):
    assert main(["run", small_book, str(tmp_path), "--run-date", "2026-11-20", "--workers", "1"]) == 0
    events = _events(capsys.readouterr().err)
    names = [e.get("event") for e in events]
    assert names[0] == "start" and "shards" in names and "progress" in names and "committed" in names
    run_ids = {e["run_id"] for e in events if "run_id" in e}
    assert len(run_ids) == 1
    for e in events:
        assert e["ts"].endswith("Z") and "T" in e["ts"] and e["level"] in ("info", "warning")
    last = [e for e in events if e.get("event") == "progress"][-1]
    assert last["done"] == last["total"] == 120


def test_quiet_drops_progress_and_verbose_adds_one_event_per_shard(small_book, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("shard_size = 50\n")
    args = ["run", small_book, str(tmp_path / "o"), "--run-date", "2026-11-20", "--workers", "1",
            "--config", str(cfg)]
    assert main(["-q", *args]) == 0
    assert capsys.readouterr().err == ""
    assert main(["run", small_book, str(tmp_path / "o2"), "--run-date", "2026-11-20",
                 "--workers", "1", "--config", str(cfg), "-v"]) == 0  # -v after the command too
    events = _events(capsys.readouterr().err)
    [plan] = [e for e in events if e.get("event") == "shards"]
    shards = [e for e in events if e.get("event") == "shard"]
    assert plan["shards"] > 1
    assert sorted(e["shard"] for e in shards) == list(range(plan["shards"]))
    assert all(e["level"] == "debug" and e["run_id"] == plan["run_id"] for e in shards)


def test_on_a_terminal_progress_is_a_live_line(small_book, tmp_path):
    """stderr on a real pseudo-terminal: ``hearth: ...`` lines and the \\r progress line."""
    import os
    import subprocess
    import sys

    master, slave = os.openpty()
    p = subprocess.Popen([sys.executable, "-m", "hearth.batch.cli", "run", small_book,
                          str(tmp_path / "o"), "--run-date", "2026-11-20", "--workers", "1"],
                         stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert p.wait(timeout=300) == 0
    text = b"".join(chunks).decode()
    assert "\r120/120 households" in text
    assert "hearth: run " in text and "{" not in text


def test_version(capsys):
    import hearth

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"hearth {hearth.__version__} (data contract {hearth.CONTRACT_VERSION})")


def test_generate_passes_the_profile(tmp_path, capsys):
    import pyarrow.parquet as pq

    assert main(["generate", str(tmp_path / "cli"), "--households", "4", "--seed", "5",
                 "--profile", "small"]) == 0
    generate(str(tmp_path / "direct"), 4, seed=5, profile="small")
    for table in ("lots", "accounts", "households"):
        assert pq.read_table(tmp_path / "cli" / f"{table}.parquet").equals(
            pq.read_table(tmp_path / "direct" / f"{table}.parquet"))
    with pytest.raises(SystemExit) as e:
        main(["generate", str(tmp_path / "x"), "--households", "4", "--profile", "huge"])
    assert e.value.code == 2
