import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def load_script(relpath: str, name: str | None = None):
    """A script of the checkout (``benchmarks/x.py``, ``examples/y.py``) imported as a module."""
    name = name or Path(relpath).stem
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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


def second_differences(f, x0, h=1e-4):
    """Hessian of a scalar function by central second differences (exact to O(h^2))."""
    P = x0.size
    H = np.zeros((P, P))
    for i in range(P):
        for j in range(P):
            ei, ej = np.eye(P)[i] * h, np.eye(P)[j] * h
            H[i, j] = (f(x0 + ei + ej) - f(x0 + ei - ej) - f(x0 - ei + ej) + f(x0 - ei - ej)) / (4 * h * h)
    return H


@pytest.fixture
def fd_hessian():
    return second_differences
