"""The readable page of a `negtemp scan` report: its summary and the candidates, in the probability view's style."""

from __future__ import annotations

import html
import math
from typing import Any

from ..view import BANDS, PAGE_CSS, band_of

__all__ = ["render_scan_html"]

_CSS = """
table{border-collapse:collapse;margin:.6em 0}td,th{padding:.15em .6em;text-align:left;border-bottom:1px solid #eee}
th{position:sticky;top:0;background:#fff}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f3f3f3;padding:0 .2em;border-radius:3px;white-space:pre}.legend span{padding:0 .5em;border-radius:3px}
.yes{font-weight:600}
"""
ROWS = 300  # candidates shown on the page; the JSON has them all


def _text(s: str) -> str:
    return f"<code>{html.escape(repr(s)[1:-1])}</code>"


def _copy_cell(row: dict[str, Any]) -> str:
    if "copy_probability" not in row:
        return "<td></td><td></td>"
    p = row["copy_probability"]
    band = band_of(math.log(p) if p > 0 else -math.inf)
    return (f'<td class="num" style="background:{BANDS[band].css}">{p:.3g}</td>'
            f'<td class="{"yes" if row["verified"] else ""}">{"yes" if row["verified"] else "no"}</td>')


def _cone_cell(row: dict[str, Any]) -> str:
    cone = row.get("cone")
    if cone is None:
        return "<td></td>"
    text = cone["status"]
    if cone["tied_tokens"]:
        tie = cone.get("tie_reachable")
        text += f" (row shared with {cone['tied_tokens']}; as a tie: " + {True: "reachable", False: "unreachable",
                                                                          None: "undecided"}[tie] + ")"
    return f"<td>{html.escape(text)}</td>"


def _table(rows: list[dict[str, Any]], primary: str) -> str:
    head = ("<tr><th>rank</th><th>id</th><th>text</th><th>bytes</th><th>indicator</th><th>T&rarr;0&minus; argmin"
            "</th><th>T&rarr;0+ argmax</th><th>cone (T&rarr;0&minus;)</th><th>copy probability</th>"
            "<th>verified</th></tr>")
    body = "".join(
        f'<tr><td class="num">{r["candidate_rank"] + 1}</td><td class="num">{r["id"]}</td><td>{_text(r["text"])}'
        f'</td><td><code>{r["bytes"]}</code></td><td class="num">{r["indicator"][primary]:.3f}</td>'
        f'<td class="num">{r["argmin_count"]}</td><td class="num">{r["argmax_count"]}</td>{_cone_cell(r)}'
        f"{_copy_cell(r)}</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def render_scan_html(report: dict[str, Any]) -> str:
    """One self-contained page (no script, nothing fetched): the summary, the verified tokens, the candidates."""
    s, st = report["summary"], report["settings"]
    primary = st["primary_indicator"]
    title = f"negtemp scan: {report['model']}"
    cone = s["cone"]
    contradicted = s["cone-unreachable tokens that were a strict argmin outside the cone"]
    held, anywhere = contradicted["held-out windows"], contradicted["any position whose state does not span the cone"]
    corpus = report["corpus"]
    facts = [
        f"{report['n_vocab']:,} tokens; output layer {'tied to' if report['tied_output'] else 'apart from'} the "
        f"input embedding{', with a bias' if report['output_bias'] else ''}; {report['reference']['total']:,} "
        "known-unused tokens as the indicator's reference.",
        f"<b>{s['candidates']:,} under-trained candidates</b>: the top {100 * st['candidate_fraction']:g}% of the "
        f"other tokens by the indicator ({html.escape(primary)}).",
        f"T &rarr; 0&minus; over {html.escape(corpus['name'])}, {corpus['positions']:,} positions: "
        f"{s['distinct T -> 0- tokens over the corpus']:,} distinct tokens, "
        f"{s['candidates reached by T -> 0- over the corpus']:,} of them candidates.",
        f"Cone reachability of the {cone['decided of']:,} strongest candidates, from {corpus['cone states']:,} "
        f"observed states: {cone['reachable']:,} reachable, {cone['unreachable']:,} unreachable, "
        f"{cone['undecided']:,} undecided. Tokens certified unreachable that were the strict argmin after all: "
        f"{len(held)} on the {corpus['held-out windows']} held-out windows, {len(anywhere)} at any position whose "
        "state does not span the cone" + (" (the cone of these states misses those contexts)." if anywhere else "."),
        f"<b>{s['verified under-trained']:,} of {s['probed']:,} probed candidates verified under-trained</b>: the "
        f"model copies them, when asked, with probability below {st['verified_below']:g} (any tokenization of "
        "the text counts as a copy).",
    ]
    legend = "".join(f'<span style="background:{b.css}">{html.escape(b.label)}</span> ' for b in BANDS)
    shown = report["candidates"][:ROWS]
    verified = report["verified"]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f'<meta name="viewport" content="width=device-width"><title>{html.escape(title)}</title>'
        f"<style>{PAGE_CSS}{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        + "".join(f'<p class="meta">{f}</p>' for f in facts)
        + f'<p class="legend">copy probability: {legend}</p>'
        + "<h2>Verified under-trained</h2>"
        + (_table(verified, primary) if verified else "<p>none</p>")
        + f"<h2>Candidates (the first {len(shown):,} of {len(report['candidates']):,})</h2>"
        + _table(shown, primary)
        + '<p class="meta">Seconds per part: '
        + html.escape(", ".join(f"{part} {sec:.0f}" for part, sec in report["seconds"].items())) + "</p></body></html>"
    )
