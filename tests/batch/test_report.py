"""The run report on two real nights of a generated book: the page's figures equal
the committed tables read through the manifest, it references nothing outside
itself, data is escaped, and headless Chromium renders it (a non-blank screenshot,
no console errors, the figures in the rendered DOM)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import DEFAULT_AS_OF, generate
from hearth.batch.report import Night, previous_run_date, render, write_report
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.io.contract import OUTPUT_SCHEMAS
from hearth.io.write import committed_files, manifest_path

FIRST, SECOND = DEFAULT_AS_OF, "2026-11-23"
CONFIG = RunConfig(shard_size=16)
CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 2000


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Two committed nights in one output: 30 households, then 36 (a different book on a
    later date, so households come and go), both with some bad-on-purpose households."""
    root = tmp_path_factory.mktemp("report")
    first, second, output = (str(root / n) for n in ("book1", "book2", "out"))
    generate(first, 30, seed=11, profile="small", bad_fraction=0.1)
    generate(second, 36, seed=12, as_of=SECOND, profile="small", bad_fraction=0.1)
    for book, day in ((first, FIRST), (second, SECOND)):
        run_book(book, output, day, CONFIG, LocalExecutor(workers=1), progress=False)
    # an interrupted run between the two nights: a journal, no manifest
    os.makedirs(os.path.join(output, "_runs", "2026-11-21"))
    with open(os.path.join(output, "_runs", "2026-11-21", "commit.json"), "w") as f:
        f.write("{}")
    return output


@pytest.fixture(scope="module")
def page(out):
    path = write_report(out, SECOND)
    with open(path, encoding="utf-8") as f:
        return path, f.read()


class Metrics(HTMLParser):
    """Every ``data-metric`` element's exact value and its displayed text."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.text: dict[str, str] = {}
        self._open: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-metric" in a:
            self.values[a["data-metric"]] = a["data-value"]
            self._open = a["data-metric"]
            self.text[self._open] = ""

    def handle_data(self, data):
        if self._open is not None:
            self.text[self._open] += data

    def handle_endtag(self, tag):
        self._open = None


def metrics(html: str) -> Metrics:
    m = Metrics()
    m.feed(html)
    return m


def tables(out, day):
    """DuckDB views of the committed tables of a night, read through its manifest."""
    con = duckdb.connect()
    for name, files in committed_files(out, day).items():
        if name in OUTPUT_SCHEMAS:
            con.register(name, pa.concat_tables([pq.read_table(f) for f in files])
                         .select(OUTPUT_SCHEMAS[name].names))
    return con


def money(x: float) -> str:
    return ("−" if round(x) < 0 else "") + f"${abs(x):,.0f}"


def test_written_next_to_the_manifest_and_nothing_left_behind(out, page):
    path, html = page
    assert path == os.path.join(os.path.dirname(manifest_path(out, SECOND)), "report.html")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")] == []


def test_status_counts_equal_household_results(out, page):
    m = metrics(page[1])
    con = tables(out, SECOND)
    counts = dict(con.execute("SELECT status, count(*) FROM household_results GROUP BY 1").fetchall())
    assert {"traded", "error"} <= counts.keys()  # the book has both, so the check means something
    shown = {k.split(".", 1)[1]: int(v) for k, v in m.values.items() if k.startswith("status.")}
    assert shown == counts
    for s, n in counts.items():
        assert m.text[f"status.{s}"] == f"{n:,}"
    assert int(m.values["households"]) == sum(counts.values()) == 36


def test_dollar_totals_equal_sums_of_the_tables(out, page):
    m = metrics(page[1])
    con = tables(out, SECOND)
    sums = con.execute("""SELECT sum(tax_savings_estimate), sum(tax_due_estimate), sum(tlh_losses),
                                 sum(realized_st_gain), sum(realized_lt_gain)
                          FROM household_results""").fetchone()
    names = ("tax_savings_estimate", "tax_due_estimate", "tlh_losses", "realized_st_gain",
             "realized_lt_gain")
    for name, total in zip(names, sums):
        assert float(m.values[name]) == pytest.approx(total, abs=0.01), name
        assert m.text[name] == money(total), name
    assert abs(sums[2]) > 1 and abs(sums[4]) > 1  # real dollars, not an all-zero night
    traded = con.execute("SELECT sum(notional) FROM trades").fetchone()[0]
    assert float(m.values["traded_value"]) == pytest.approx(traded, abs=0.01)
    for term in ("short", "long"):
        gain, loss = con.execute(f"""
            SELECT coalesce(sum(realized_gain) FILTER (WHERE realized_gain > 0), 0),
                   coalesce(sum(realized_gain) FILTER (WHERE realized_gain < 0), 0)
            FROM trades WHERE side = 'sell' AND term = '{term}'""").fetchone()
        assert float(m.values[f"gain.{term}"]) == pytest.approx(gain, abs=0.01)
        assert float(m.values[f"loss.{term}"]) == pytest.approx(loss, abs=0.01)
    # the trades' net by term is the households' realized gain by term
    st = float(m.values["net.short"])
    assert st == pytest.approx(float(m.values["realized_st_gain"]), abs=0.05)


def test_review_queue_and_exceptions_equal_the_tables(out, page):
    m = metrics(page[1])
    con = tables(out, SECOND)
    reasons = dict(con.execute("""SELECT r, count(*) FROM (SELECT unnest(review_reasons) r
                                  FROM household_results WHERE needs_review) GROUP BY r""").fetchall())
    assert reasons
    assert {k[7:]: int(v) for k, v in m.values.items() if k.startswith("review.")} == reasons
    share = con.execute("SELECT avg(needs_review::int) FROM household_results").fetchone()[0]
    assert float(m.values["review_share"]) == pytest.approx(share, abs=1e-6)
    exc = con.execute("SELECT source_table, code, count(*) FROM exceptions GROUP BY ALL").fetchall()
    assert exc
    shown = {k: int(v) for k, v in m.values.items() if k.startswith("exceptions.")}
    assert shown == {f"exceptions.{t}.{c}": n for t, c, n in exc}
    assert int(m.values["exceptions"]) == sum(n for *_, n in exc)


def test_change_since_the_previous_night(out, page):
    m = metrics(page[1])
    assert previous_run_date(out, SECOND) == FIRST  # the journal-only date is skipped
    assert previous_run_date(out, FIRST) is None
    before, now = tables(out, FIRST), tables(out, SECOND)
    prev = dict(before.execute("SELECT household_id, status FROM household_results").fetchall())
    cur = dict(now.execute("SELECT household_id, status FROM household_results").fetchall())
    assert int(m.values["prev.households"]) == len(prev) == 30
    assert int(m.values["households_new"]) == len(cur.keys() - prev.keys()) == 6
    assert int(m.values["households_gone"]) == len(prev.keys() - cur.keys())
    changed = sum(prev[h] != cur[h] for h in prev.keys() & cur.keys())
    assert int(m.values["status_changed"]) == changed
    prev_trades = before.execute("SELECT count(*) FROM trades").fetchone()[0]
    assert int(m.values["prev.trades"]) == prev_trades
    prev_tax = before.execute("SELECT sum(tax_savings_estimate) FROM household_results").fetchone()[0]
    assert float(m.values["prev.tax_savings_estimate"]) == pytest.approx(prev_tax, abs=0.01)
    assert "Compared with <b>2026-11-20</b>" in page[1]


def test_first_night_has_nothing_to_compare(out):
    with open(write_report(out, FIRST), encoding="utf-8") as f:
        html = f.read()
    assert "No earlier committed run date in this output." in html
    assert "prev.households" not in html


def test_uncommitted_run_date_is_refused(out):
    with pytest.raises(FileNotFoundError, match="has not been committed"):
        write_report(out, "2026-11-21")


def test_stage_times_are_the_manifests(out, page, tmp_path):
    m = metrics(page[1])
    manifest = json.load(open(manifest_path(out, SECOND)))
    for stage, sec in manifest["stage_seconds"].items():
        assert float(m.values[f"stage.{stage}"]) == pytest.approx(sec, abs=1e-6)
    assert "wall clock, summed over shards" in page[1]
    assert "records no CPU time per stage" in page[1]
    # a manifest that carries CPU seconds gets them in their own labelled column
    copy = str(tmp_path / "out")
    shutil.copytree(out, copy)
    manifest["stage_cpu_seconds"] = {k: v / 2 for k, v in manifest["stage_seconds"].items()}
    with open(manifest_path(copy, SECOND), "w") as f:
        json.dump(manifest, f)
    with open(write_report(copy, SECOND), encoding="utf-8") as f:
        html = f.read()
    assert "<th>CPU seconds</th>" in html
    assert float(metrics(html).values["stage_cpu.solve"]) == pytest.approx(
        manifest["stage_seconds"]["solve"] / 2, abs=1e-6)


def test_page_references_nothing_outside_itself(page):
    html = page[1].lower()
    for needle in ("http://", "https://", "src=", "url(", "@import", "<script", "<link",
                   "<iframe", "<img"):
        assert needle not in html, needle
    assert html.count("<svg") >= 6  # the plots are inline


def test_data_is_escaped():
    """Hostile text in every kind of field a page shows comes out as text."""
    evil = "<script>alert('x')</script>&\""
    con = duckdb.connect()
    rows = {
        "household_results": [{"run_id": evil, "household_id": evil, "status": evil, "message": evil,
                               "value": 1.0, "n_trades": 0, "turnover": 0.0, "needs_review": True,
                               "review_reasons": [evil], "solve_ms": 0.0, "iterations": 0,
                               "warm_started": False}],
        "trades": [{"run_id": evil, "household_id": evil, "account_id": evil, "security_id": evil,
                    "side": "sell", "lot_id": evil, "quantity": 1.0, "price": 1.0, "notional": 1.0,
                    "realized_gain": -1.0, "term": evil, "wash_sale": False, "reason": evil}],
        "exceptions": [{"run_id": evil, "source_table": evil, "household_id": evil,
                        "account_id": None, "record_id": evil, "code": evil, "message": evil}],
    }
    for name, schema in OUTPUT_SCHEMAS.items():
        con.register(name, pa.Table.from_pylist(rows[name], schema=schema))
    manifest = {"run_id": evil, "commit": evil, "stage_seconds": {evil: 1.0}, "executor": evil,
                "unkeyed_rows": {evil: 1}}
    html = render(Night("2026-11-20", manifest, con), None)
    assert "<script" not in html and "alert('x')" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;" in html


# -- in a real browser --------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing: install it with `apt-get install chromium` "
           "(`python3 dev.py test` does so when run as root)")


def chromium(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(os.listdir(tmp_path))}"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         f"--window-size={WIDTH},{HEIGHT}", *args, url],
        capture_output=True, text=True, timeout=180, check=False)


def console_lines(stderr: str) -> list[str]:
    """The page's console messages: script errors and blocked loads (CSP) land here."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def read_png(path: str) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA PNG into a (height, width, channels) array."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, []
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(h, 1 + w * bpp)
    img = np.zeros((h, w * bpp), dtype=np.uint8)
    prev = np.zeros(w * bpp, dtype=np.uint8)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:]
        if f == 0:
            cur = line.copy()
        elif f == 1:  # sub: a running sum per channel
            cur = (np.cumsum(line.reshape(w, bpp), axis=0, dtype=np.uint64) % 256
                   ).astype(np.uint8).reshape(-1)
        elif f == 2:
            cur = line + prev
        else:  # average / paeth: each byte needs the one to its left
            cur = bytearray(line.tobytes())
            up = prev.tobytes()
            for i in range(len(cur)):
                a = cur[i - bpp] if i >= bpp else 0
                b = up[i]
                if f == 3:
                    cur[i] = (cur[i] + (a + b) // 2) & 255
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa_, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa_ <= pb and pa_ <= pc else b if pb <= pc else c
                    cur[i] = (cur[i] + pred) & 255
            cur = np.frombuffer(bytes(cur), dtype=np.uint8)
        img[y] = cur
        prev = img[y]
    return img.reshape(h, w, bpp)[:, :, :3]


@needs_chromium
def test_renders_in_headless_chromium(page, tmp_path):
    path, _ = page
    shot = str(tmp_path / "report.png")
    run = chromium(tmp_path, f"file://{path}", f"--screenshot={shot}")
    assert os.path.exists(shot), run.stderr[-2000:]
    assert console_lines(run.stderr) == []
    img = read_png(shot)
    assert img.shape == (HEIGHT, WIDTH, 3)
    colors, counts = np.unique(img.reshape(-1, 3), axis=0, return_counts=True)
    background = colors[counts.argmax()]
    inked = np.any(img != background, axis=2)
    assert len(colors) > 50  # text, bars and status colours, not one flat fill
    assert inked.mean() > 0.05 and inked[:HEIGHT // 2].mean() > 0.05  # drawn from the top
    # the page's status colours made it to the pixels: the traded bar's green
    assert np.any(np.all(img == (0x2f, 0x7d, 0x4f), axis=2))

    dom = chromium(tmp_path, f"file://{path}", "--dump-dom")
    assert dom.returncode == 0 and console_lines(dom.stderr) == []
    rendered = metrics(dom.stdout)
    assert rendered.values == metrics(page[1]).values
    for section in ("status", "tax", "drift", "review", "exceptions", "stages", "change"):
        assert f'<section id="{section}">' in dom.stdout
    assert dom.stdout.count("<svg") >= 6


@needs_chromium
def test_console_check_sees_errors_and_blocked_fetches(page, tmp_path):
    """The control for the test above: the same page with a script that throws and an
    image on the network logs both (CSP blocks them), so an empty console means something."""
    bad = tmp_path / "bad.html"
    bad.write_text(page[1].replace("</main>", '<img src="https://example.invalid/x.png">'
                                   '<script>throw new Error("boom")</script></main>'))
    lines = console_lines(chromium(tmp_path, f"file://{bad}", "--dump-dom").stderr)
    assert any("example.invalid" in line for line in lines), lines
    assert any("inline script" in line for line in lines), lines
