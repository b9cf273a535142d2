"""docs/planning.md: every `scalinglaws plan` example there runs and still prints the summary shown.

This keeps the page current, nothing more: it compares the commands with their own earlier
output.  The numbers are checked against independent references in tests/test_plan.py.
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
            assert json.loads(out)["summary"] == summary, command
