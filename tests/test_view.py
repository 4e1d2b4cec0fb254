"""The probability view: the colour scale, when the terminal is coloured, and the HTML page's content."""

import io
import json
import math
import re
import subprocess
import sys

import pytest

from negtemp import view

PROMPT = "the temperature is a concept"
ESC = re.compile(r"\x1b\[38;5;(\d+)m")


@pytest.mark.parametrize(("p", "band"), [(0.9, 0), (0.5, 0), (0.2, 1), (0.05, 2), (0.005, 3), (1e-4, 4),
                                         (1e-6, 5), (0.0, 5)])
def test_a_tokens_band_is_fixed_by_its_model_probability(p, band):
    assert view.band_of(math.log(p) if p > 0 else -math.inf) == band


def test_the_bands_cover_every_probability_once_from_likely_to_unlikely():
    floors = [b.floor for b in view.BANDS]
    assert floors == sorted(floors, reverse=True) and floors[-1] == 0.0


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("when", "tty", "no_color", "want"), [
    ("auto", True, None, True), ("auto", False, None, False), ("auto", True, "1", False), ("auto", True, "", True),
    ("always", False, "1", True), ("never", True, None, False)])
def test_colour_follows_the_terminal_and_no_color_unless_forced(monkeypatch, when, tty, no_color, want):
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    assert view.use_color(when, Tty() if tty else io.StringIO()) is want


def test_each_token_of_a_completion_is_coloured_by_its_model_probability(tiny):
    c = tiny.complete(PROMPT, -1.0, seed=1, n_predict=8, n_probs=1, ignore_eos=True)
    out = view.ansi_completion(c)
    assert ESC.sub("", out).replace("\x1b[0m", "") == c.text
    codes = [int(x) for x in ESC.findall(out)]
    want = [view.BANDS[view.band_of(lp)].ansi for seg, lp in zip(view.token_segments(c), c.model_logprobs) if seg]
    assert codes == want


def test_token_segments_join_to_the_text_and_stop_where_a_stop_string_cut_it(tiny):
    free = tiny.complete(PROMPT, 1.0, seed=4, n_predict=12, n_probs=1, ignore_eos=True)
    assert "".join(view.token_segments(free)) == free.text
    stop = free.text[len(free.text) // 2:][:2]
    if stop.strip():
        cut = tiny.complete(PROMPT, 1.0, seed=4, n_predict=12, n_probs=1, ignore_eos=True, stop=stop)
        assert "".join(view.token_segments(cut)) == cut.text


def test_the_views_refuse_a_completion_without_model_probabilities(tiny):
    c = tiny.complete(PROMPT, 1.0, seed=1, n_predict=3)
    with pytest.raises(ValueError, match="n_probs >= 1"):
        view.render_html(c)


def token_data(page: str) -> list[dict]:
    import html

    return [json.loads(html.unescape(m)) for m in re.findall(r'data-tok="([^"]*)"', page)]


def test_the_page_carries_every_tokens_probabilities_and_alternatives(tiny):
    draws = tiny.draws(PROMPT, -1.0, n=2, seed=1, n_predict=6, n_probs=4, ignore_eos=True)
    page = view.render_html(draws, prompt=PROMPT, undertrained={int(draws[0].tokens[0])})
    rows = token_data(page)
    assert len(rows) == sum(len(c.tokens) for c in draws)
    flat = [(c, i) for c in draws for i in range(len(c.tokens))]
    for row, (c, i) in zip(rows, flat):
        assert row["token"] == int(c.tokens[i]) and row["rank"] == int(c.ranks[i])
        assert row["p"] == pytest.approx(math.exp(c.logprobs[i])) and len(row["top"]) == 4
        assert row["pm"] == pytest.approx(math.exp(c.model_logprobs[i]))
    assert rows[0]["ut"] is True
    assert page.count('class="draw"') == 2


def test_the_pages_policy_forbids_every_fetch(tiny):
    page = view.render_html(tiny.complete(PROMPT, 1.0, seed=1, n_predict=2, n_probs=1))
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy and "default-src 'none'" in policy.group(1)
    assert not re.search(r"\b(src|href)=", page), "the page must load nothing"


@pytest.mark.parametrize("beta", [0.0, float("inf"), float("-inf"), -1000.0])
def test_every_temperature_has_a_column_label(tiny, beta):
    page = view.render_html(tiny.complete(PROMPT, beta=beta, seed=1, n_predict=2, n_probs=1))
    assert re.search(r"<h2>(T = |beta = )", page)


def test_the_page_escapes_token_text(tiny):
    c = tiny.complete(PROMPT, 1.0, seed=1, n_predict=3, n_probs=1)
    page = view.render_html(c, prompt="<script>alert(1)</script>")
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


def cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "negtemp", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_the_cli_colours_when_forced_and_puts_the_legend_on_stderr(tiny_path):
    r = cli("-m", str(tiny_path), "-p", PROMPT, "--temp", "-1", "--seed", "1", "-n", "6", "--color=always",
            "--ignore-eos")
    assert r.returncode == 0, r.stderr
    assert ESC.search(r.stdout) and "probability under the model" in r.stderr


def test_the_cli_does_not_colour_a_pipe_by_default(tiny_path):
    r = cli("-m", str(tiny_path), "-p", PROMPT, "--temp", "-1", "--seed", "1", "-n", "6", "--color")
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout


def test_the_cli_separates_draws_in_text_and_lists_them_in_json(tiny_path):
    base = ["-m", str(tiny_path), "-p", PROMPT, "--temp", "-1", "--seed", "5", "-n", "4", "--draws", "3"]
    text = cli(*base)
    assert text.returncode == 0, text.stderr
    assert re.findall(r"^--- draw (\d): seed (\d+), \w+ ---$", text.stdout, re.M) == [("0", "5"), ("1", "6"),
                                                                                      ("2", "7")]
    js = cli(*base, "--json")
    got = json.loads(js.stdout)
    assert [d["seed"] for d in got] == [5, 6, 7] and "top_logprobs" not in got[0]


def test_the_cli_writes_the_html_page(tiny_path, tmp_path):
    out = tmp_path / "view.html"
    r = cli("-m", str(tiny_path), "-p", PROMPT, "--temp", "-1", "--seed", "1", "-n", "5", "--draws", "2", "--html",
            str(out))
    assert r.returncode == 0, r.stderr
    rows = token_data(out.read_text())
    assert len(rows) == 10 and all(len(row["top"]) == 5 for row in rows)
