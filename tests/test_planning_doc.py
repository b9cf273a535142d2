"""docs/planning.md: every `scalinglaws plan` example there runs and still prints the summary shown.

This keeps the page current, nothing more: it compares the commands with their own earlier
output.  The numbers are checked against independent references in tests/test_plan.py.  How often
each configuration wins over a bootstrapped fit's resamples depends on the last bits of the refits
(numpy's exp and log round differently on different CPUs, and a weakly pinned refit then ends a
little elsewhere, or not at all): those shares may differ from the page's by up to 10 points and the
count of resamples by up to 2; the rest of the summary (names, thresholds) must be the same.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "planning.md").read_text()
#: a bash block with one command, then the quoted summary it printed
EXAMPLE = re.compile(r"```bash\nscalinglaws (.+?)\n```\n\n(?:> (.+?)\n)?", re.S)


def test_every_plan_example_prints_its_documented_summary(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    examples = EXAMPLE.findall(DOC)
    plans = [(c, s) for c, s in examples if c.startswith("plan ")]
    assert len(plans) >= 8
    for command, summary in examples:
        args = [a.replace("data/", f"{ROOT}/data/") if a.startswith("data/") else a for a in shlex.split(command)]
        code, out, err = cli(*args, *(["--json"] if args[0] == "plan" else []))
        assert code == 0, (command, err)
        if args[0] == "plan":
            _same_summary(json.loads(out)["summary"], summary, command)


#: in a plan's summary, the bootstrap's win shares ("wins in 40%", "W7A7 60%": not the threshold "below
#: 90%") and its count of resamples ("of 20 bootstrap resamples"), with how far each may move
_LOOSE = ((re.compile(r"(?<!below )(?<![\d.])(\d+)%"), 10), (re.compile(r"of (\d+) bootstrap resamples"), 2))


def _same_summary(printed: str, documented: str, command: str) -> None:
    def loose(text):
        values = []
        for pattern, tol in _LOOSE:
            values += [(float(m.group(1)), tol) for m in pattern.finditer(text)]
            text = pattern.sub(lambda m: m.group(0).replace(m.group(1), "#"), text)
        return text, values
    p_text, p_values = loose(printed)
    d_text, d_values = loose(documented)
    assert p_text == d_text, (command, printed)
    for (a, tol), (b, _) in zip(p_values, d_values):
        assert abs(a - b) <= tol, (command, printed)
