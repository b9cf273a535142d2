"""README's quick start runs, as written, on the data the project ships."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_every_quick_start_command_runs(cli, tmp_path, monkeypatch):
    lines = quick_start()
    assert any("ladder_runs.csv" in x for x in lines)       # the quick start uses the shipped ladder
    monkeypatch.chdir(tmp_path)                              # outputs land here, not in the checkout
    for line in lines:
        args = [a.replace("data/", f"{ROOT}/data/").replace("examples/", f"{ROOT}/examples/")
                if a.startswith(("data/", "examples/")) else a for a in shlex.split(line)]
        if args[0] == "scalinglaws":
            code, out, err = cli(*args[1:])
        else:
            assert args[0] == "python", line
            p = subprocess.run([sys.executable, *args[1:]], capture_output=True, text=True, cwd=ROOT, timeout=600)
            code, err = p.returncode, p.stderr
        assert code == 0, (line, err)
