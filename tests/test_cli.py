"""``python -m pellucid demo``: arguments, the report's content (valid HTML, embedded images, the table)."""
import base64
import html.parser
import re
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

from pellucid.cli import main


class _Checker(html.parser.HTMLParser):
    """Checks that every opened element is closed in order (void elements excepted) and collects tags."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.errors, self.imgs = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    code = main(["demo", "--quick", "--no-text", "--no-progress", "--examples", "4", "--train-size", "400", "--epochs", "2",
                 "--methods", "saliency,grad_cam", "input_x_gradient", "--out", str(out)])
    assert code == 0
    return out / "index.html"


@pytest.mark.slow
def test_report_is_valid_html_with_images_and_table(report):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    p = _Checker()
    p.feed(text)
    p.close()
    assert not p.errors and not p.stack
    assert len(p.imgs) == 4  # attributions, signed maps, deletion/insertion, randomisation
    for img in p.imgs:
        src = img["src"]
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 200 and height > 100
    table = re.search(r'<table class="pellucid-table" id="metrics">.*?</table>', text, re.S).group(0)
    rows = re.findall(r"<tr><td>([a-z_]+)</td>(.*?)</tr>", table)
    assert [r[0] for r in rows] == ["saliency", "grad_cam", "input_x_gradient"]
    for _, cells in rows:
        values = [float(v) for v in re.findall(r"<td[^>]*>(-?[0-9.]+)</td>", cells)]
        assert len(values) == 7
        deletion, insertion, pointing, mass, rank, sparse, rand = values
        assert 0 <= deletion <= 1 and 0 <= insertion <= 1 and 0 <= pointing <= 1 and 0 <= mass <= 1
        assert 0 <= rank <= 1 and 0 <= sparse <= 1 and -1 <= rand <= 1
    assert "Not run: skipped (--no-text)" in text
    assert "trained for 2 epochs on 400 generated images" in text
    assert "http://" not in text and "https://" not in text  # self-contained


def test_bad_arguments_exit_with_a_message(capsys, tmp_path):
    assert main(["demo", "--methods", "saliency,telepathy", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "telepathy" in err and "integrated_gradients" in err
    assert main(["demo", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "--epochs must be a positive int" in capsys.readouterr().err
    assert main(["demo", "--threads", "-1", "--out", str(tmp_path)]) == 2
    assert "--threads" in capsys.readouterr().err
    assert not (tmp_path / "index.html").exists()
    with pytest.raises(SystemExit):
        main(["nonsense"])


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "pellucid", "demo", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    for flag in ("--methods", "--out", "--no-text", "--quick", "--threads"):
        assert flag in out.stdout


def test_text_section_skips_with_a_message_without_the_extra(monkeypatch):
    import pellucid.data.minilm as minilm
    from pellucid.report import Report
    from pellucid.report.demo import DemoConfig, _text_section

    monkeypatch.setattr(minilm, "minilm_available", lambda: False)
    logged = []
    ran, msg = _text_section(Report("t"), DemoConfig(), logged.append)
    assert not ran and "pellucid[text]" in msg and any("skipped" in m for m in logged)


def test_report_table_marks_best_per_direction_and_escapes():
    from pellucid.report import Report

    r = Report("a <b> & c")
    r.add_table(["m1", "m<2>"], ["up", "down", "plain"], [[0.1, 0.5, 1.0], [0.3, 0.2, float("nan")]],
                {"up": True, "down": False}, table_id="t")
    text = r.html()
    assert "<title>a &lt;b&gt; &amp; c</title>" in text and "m&lt;2&gt;" in text
    assert "up &uarr;" in text and "down &darr;" in text
    best = re.findall(r'<td class="best">([0-9.]+)</td>', text)
    assert best == ["0.300", "0.200"]  # max of "up", min of "down"; "plain" has no direction
    assert "&ndash;" in text  # NaN
