from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture
def cli(capsys):
    """Run the command line in-process: returns (exit code, stdout, stderr)."""
    from scalinglaws.cli.main import run

    def _run(*args):
        code = run([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return _run


@pytest.fixture
def write(tmp_path):
    """Write text to a file in tmp_path and return its path."""
    def _write(name, text):
        p = tmp_path / name
        p.write_text(text)
        return p
    return _write
