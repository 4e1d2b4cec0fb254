"""The probability view: each generated token shown by how likely the model found it.

One fixed scale, ``BANDS``, is written here and used by both views: the
model's probability of the drawn token at T = 1 (the softmax of its raw
logits), in six bands from "expected" (p >= 0.5) to "never expected"
(p < 1e-5). At T < 0 most tokens fall in the last band; the interesting
ones are the exceptions.

- ``ansi(...)``: text with ANSI 256-colour codes for a terminal, ``legend()``
  the scale for stderr, ``use_color()`` the rule for when to colour
  (NO_COLOR honoured unless forced).
- ``render_html(...)``: one self-contained HTML page (no network: its
  Content-Security-Policy forbids every fetch), draws side by side, and per
  token its text, the probability it was drawn with, its probability and
  rank under the model, and on hover or focus its top-N alternatives.

Both need Completions made with ``n_probs`` >= 1 (the CLI's --color and
--html ask for them), which carry ``model_logprobs`` and ``ranks``.
"""

from __future__ import annotations

import codecs
import html
import json
import math
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from .results import Completion, json_value

__all__ = ["BANDS", "PAGE_CSS", "Band", "ansi", "ansi_completion", "band_of", "legend", "render_html", "token_segments",
           "use_color"]


@dataclass(frozen=True)
class Band:
    """Tokens whose model probability is at least ``floor`` (and below the band above)."""

    floor: float
    label: str
    ansi: int  # xterm 256-colour foreground
    css: str  # background in the HTML view


BANDS: tuple[Band, ...] = (
    Band(0.5, "p >= 0.5", 46, "#b7f0b1"),
    Band(0.1, "0.1 <= p < 0.5", 148, "#e2f3a3"),
    Band(0.01, "0.01 <= p < 0.1", 220, "#fce8a0"),
    Band(1e-3, "0.001 <= p < 0.01", 208, "#fbcf9c"),
    Band(1e-5, "1e-5 <= p < 0.001", 196, "#f7a8a8"),
    Band(0.0, "p < 1e-5", 201, "#e7b3f2"),
)


def band_of(model_logprob: float) -> int:
    """The index in BANDS of a token with this log-probability under the model (nan/-inf: the last band)."""
    p = math.exp(model_logprob) if math.isfinite(model_logprob) else 0.0
    for i, band in enumerate(BANDS):
        if p >= band.floor:
            return i
    return len(BANDS) - 1


def use_color(when: str, stream: TextIO) -> bool:
    """Whether to colour `stream`: "always" (forced, NO_COLOR or not), "never", or "auto" (a terminal, and
    NO_COLOR unset or empty, as no-color.org asks)."""
    if when == "always":
        return True
    if when == "never":
        return False
    if when != "auto":
        raise ValueError(f"colour must be 'auto', 'always' or 'never', got {when!r}")
    return not os.environ.get("NO_COLOR") and stream.isatty()


def ansi(text: str, model_logprob: float | None) -> str:
    """text in its band's colour (unchanged without a log-probability, or for empty text)."""
    if model_logprob is None or not text:
        return text
    return f"\x1b[38;5;{BANDS[band_of(model_logprob)].ansi}m{text}\x1b[0m"


def legend(color: bool = True) -> str:
    """The scale, one line, for stderr."""
    parts = [ansi(b.label, math.log(b.floor) if b.floor > 0 else -math.inf) if color else b.label for b in BANDS]
    return "colour: the token's probability under the model at T = 1: " + " | ".join(parts)


def token_segments(c: Completion) -> list[str]:
    """Each token's share of ``c.text``: its bytes decoded after the tokens before it (a token ending inside
    a UTF-8 sequence gives "" and the next one the character), cut where ``c.text`` ends (a stop string)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out: list[str] = []
    used = 0
    for i, piece in enumerate(c.pieces):
        seg = decoder.decode(piece, final=i + 1 == len(c.pieces))
        seg = seg[: max(0, len(c.text) - used)]
        used += len(seg)
        out.append(seg)
    return out


def _need_probs(c: Completion) -> tuple[np.ndarray, np.ndarray]:
    if c.model_logprobs is None or c.ranks is None:
        raise ValueError("the probability view needs each token's probability under the model: make the "
                         "Completion with n_probs >= 1")
    return c.model_logprobs, c.ranks


def ansi_completion(c: Completion) -> str:
    """A Completion's text with each token in its band's colour."""
    model_lp, _ = _need_probs(c)
    return "".join(ansi(seg, float(lp)) for seg, lp in zip(token_segments(c), model_lp, strict=True))


def _label(c: Completion) -> str:
    beta = c.config.inverse_temperature
    named = {math.inf: "T = 0", -math.inf: "beta = -inf", 0.0: "beta = 0 (uniform)"}
    temp = named.get(beta) or f"T = {1 / beta:g}"
    return f"{temp} · seed {c.config.seed} · {len(c.tokens)} tokens · {c.stop_type}"


def _token_data(c: Completion, undertrained: Collection[int]) -> list[dict[str, Any]]:
    model_lp, ranks = _need_probs(c)
    rows = []
    for i, seg in enumerate(token_segments(c)):
        top = c.top_logprobs[i] if c.top_logprobs else ()
        rows.append({
            "i": i, "token": int(c.tokens[i]), "text": seg,
            "piece": c.pieces[i].decode("utf-8", errors="replace") if c.pieces else seg,
            "p": math.exp(float(c.logprobs[i])), "pm": math.exp(float(model_lp[i])), "rank": int(ranks[i]),
            "band": band_of(float(model_lp[i])), "ut": int(c.tokens[i]) in undertrained,
            "top": [[t.token, t.text, math.exp(t.logprob), math.exp(t.model_logprob)] for t in top],
        })
    return rows


PAGE_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}.meta{color:#555;margin:.2em 0}
"""
_CSS = PAGE_CSS + """
.prompt{white-space:pre-wrap;background:#f3f3f3;padding:.5em;border-radius:4px;font-family:monospace}
.legend span{display:inline-block;padding:0 .5em;margin:.1em;border-radius:3px;font-size:.9em}
.draws{display:grid;grid-template-columns:repeat(auto-fit,minmax(22em,1fr));gap:1em;margin-top:1em}
.draw{border:1px solid #ddd;border-radius:6px;padding:.6em}
.draw h2{font-size:1em;margin:0 0 .4em;color:#333}
.text{white-space:pre-wrap;word-break:break-word;font-family:monospace;margin:0}
.tok{border-radius:2px;cursor:pointer;outline:none}
.tok:hover,.tok:focus,.tok.sel{outline:2px solid #333}
.tok.ut{text-decoration:underline wavy #6a0dad}
.tok.empty::after{content:"\\00b7";color:#999}
#info{position:sticky;bottom:0;background:#fff;border-top:2px solid #333;padding:.5em;margin-top:1em;
font-size:.95em;min-height:4em}
#info table{border-collapse:collapse}#info td,#info th{padding:0 .6em;text-align:left}
"""

_JS = """
(function(){
const info=document.getElementById('info');
function esc(s){return s.replace(/&/g,'&amp;').replace(/</g,'&lt;').replace(/>/g,'&gt;');}
function pct(p){return p===0?'0':p>=0.001?(100*p).toPrecision(3)+'%':p.toExponential(2);}
function show(el){
  document.querySelectorAll('.tok.sel').forEach(e=>e.classList.remove('sel'));
  el.classList.add('sel');
  const d=JSON.parse(el.dataset.tok);
  const rows=d.top.map(t=>'<tr><td>'+t[0]+'</td><td>'+esc(JSON.stringify(t[1]))+'</td><td>'+
    pct(t[2])+'</td><td>'+pct(t[3])+'</td></tr>').join('');
  info.innerHTML='<b>token '+d.token+'</b> '+esc(JSON.stringify(d.piece))+
    ' · drawn with p = '+pct(d.p)+' · under the model (T = 1) p = '+pct(d.pm)+', rank '+d.rank+
    (d.ut?' · <b>under-trained candidate</b>':'')+
    (rows?'<table><tr><th>id</th><th>text</th><th>p drawn from</th><th>p model</th></tr>'+rows+'</table>':'');
  info.dataset.token=d.token;
}
document.querySelectorAll('.tok').forEach(el=>{
  el.addEventListener('mouseover',()=>show(el));el.addEventListener('focus',()=>show(el));
  el.addEventListener('click',()=>show(el));
});
})();
"""


def render_html(
    completions: Completion | Iterable[Completion],
    *,
    prompt: str | None = None,
    model: str | None = None,
    undertrained: Collection[int] = (),
    title: str = "negtemp: token probabilities",
) -> str:
    """One self-contained HTML page showing each token of each completion (several draws side by side).

    Each token is coloured by BANDS and carries, in its ``data-tok`` attribute
    (JSON), its id, text, the probability it was drawn with (``p``), its
    probability and rank under the model at T = 1 (``pm``, ``rank``), whether
    it is in ``undertrained`` (token ids, e.g. the experiment's under-trained
    candidates: such tokens get a wavy underline) and its top-N alternatives;
    hovering, focusing or clicking a token shows them. The page loads nothing:
    its Content-Security-Policy allows no fetch. ValueError unless every
    completion was made with ``n_probs`` >= 1.
    """
    cs = [completions] if isinstance(completions, Completion) else list(completions)
    if not cs:
        raise ValueError("nothing to render: give at least one Completion")
    ut = frozenset(int(t) for t in undertrained)
    sections = []
    for k, c in enumerate(cs):
        spans = []
        for row in _token_data(c, ut):
            data = html.escape(json.dumps(json_value(row), ensure_ascii=False), quote=True)
            cls = f"tok b{row['band']}" + (" ut" if row["ut"] else "") + ("" if row["text"] else " empty")
            spans.append(f'<span class="{cls}" tabindex="0" data-tok="{data}">{html.escape(row["text"])}</span>')
        sections.append(f'<section class="draw" id="draw-{k}"><h2>{html.escape(_label(c))}</h2>'
                        f'<pre class="text">{"".join(spans)}</pre></section>')
    bands_css = "".join(f".b{i}{{background:{b.css}}}" for i, b in enumerate(BANDS))
    legend_html = "".join(f'<span class="b{i}">{html.escape(b.label)}</span>' for i, b in enumerate(BANDS))
    meta = []
    if model:
        meta.append(f'<p class="meta">model: {html.escape(model)}</p>')
    if prompt is not None:
        meta.append(f'<p class="meta">prompt:</p><div class="prompt">{html.escape(prompt)}</div>')
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'\">"
        f'<meta name="viewport" content="width=device-width"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}{bands_css}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{''.join(meta)}"
        f'<p class="legend">colour: the token\'s probability under the model at T = 1: {legend_html} '
        '<span style="text-decoration:underline wavy #6a0dad">under-trained candidate</span></p>'
        f'<div class="draws">{"".join(sections)}</div>'
        '<div id="info">Hover over, focus or click a token for its probabilities and the tokens the step '
        f"could have drawn instead.</div><script>{_JS}</script></body></html>"
    )
