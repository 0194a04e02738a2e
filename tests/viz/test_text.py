"""Coloured tokens: HTML, ANSI and matplotlib views agree on colours; escaping; errors."""
import html
import re

import numpy as np
import pytest
import torch

from pellucid.viz import text_ansi, text_html, token_colors


def test_colours_follow_sign_and_magnitude():
    cols = token_colors(["a", "b", "c", "d"], torch.tensor([1.0, -1.0, 0.5, 0.0]))
    assert cols[3] == (255, 255, 255)  # zero: white
    assert cols[0] == (0, 150, 60)  # full positive: green
    assert cols[1] == (210, 40, 40)  # full negative: red
    assert cols[2] == tuple(int(round(255 + (c - 255) * 0.5)) for c in (0, 150, 60))


def test_html_has_one_span_per_token_with_escaped_text_and_values():
    toks = ["<b>", "x&y", "plain"]
    vals = np.array([0.2, -0.1, 0.0])
    out = text_html(toks, vals, title="t<1>")
    spans = re.findall(r'<span class="pellucid-token" style="background-color: rgb\((\d+),(\d+),(\d+)\);[^"]*" '
                       r'title="([^"]+)">([^<]*)</span>', out)
    assert len(spans) == 3
    assert [html.unescape(s[4]) for s in spans] == toks
    assert [float(s[3]) for s in spans] == pytest.approx(list(vals), abs=1e-4)
    assert [tuple(map(int, s[:3])) for s in spans] == token_colors(toks, vals)
    assert "<b>" not in out.replace("<b>t", "")  # user text is escaped (title is bold markup)
    assert out._repr_html_() == str(out)


def test_ansi_codes_match_colours():
    toks, vals = ["good", "bad"], [0.3, -0.6]
    out = text_ansi(toks, vals)
    codes = re.findall(r"\x1b\[48;2;(\d+);(\d+);(\d+)m\x1b\[38;2;0;0;0m(\w+)\x1b\[0m", out)
    assert [(tuple(map(int, c[:3])), c[3]) for c in codes] == list(zip(token_colors(toks, vals), toks))


def test_matplotlib_text_view_and_errors():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from pellucid.viz import visualize_text

    toks = ["w%d" % i for i in range(40)]
    fig, ax = visualize_text(toks, torch.linspace(-1, 1, 40))
    assert [t.get_text() for t in ax.texts] == toks
    face = ax.texts[-1].get_bbox_patch().get_facecolor()
    assert np.allclose(np.array(face[:3]) * 255, (0, 150, 60), atol=1)
    assert len({round(t.get_position()[1], 3) for t in ax.texts}) > 1  # wrapped onto several lines
    plt.close(fig)
    with pytest.raises(ValueError, match="one per token"):
        text_html(["a"], [1.0, 2.0])
    with pytest.raises(TypeError, match="tokens"):
        text_ansi("ab", [1.0, 2.0])
