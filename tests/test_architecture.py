"""The architecture, checked from the code: layers import one way, the trainer needs only the
table layer, nothing outside ``laws/`` names a law, and adding a law is one file and one line."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: layer -> the layers it may import (besides itself and the bare top package, for __version__)
ALLOWED = {
    "data": set(),
    "laws": {"data"},
    "fitting": {"laws", "data"},
    "trust": {"fitting", "laws", "data"},
    "viz": {"trust", "fitting", "laws", "data"},
    "train": {"data"},
    "cli": {"viz", "trust", "fitting", "laws", "data", "train"},
}


def modules():
    """Every module of the package: (dotted name, layer, path)."""
    for path in sorted((ROOT / "scalinglaws").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        layer = parts[1] if len(parts) > 1 else None
        yield ".".join(parts), layer, path
    for path in sorted((ROOT / "cli").glob("*.py")):
        name = path.stem
        yield "scalinglaws.cli" + ("" if name == "__init__" else "." + name), "cli", path


def imports_of(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import statement, relative ones resolved."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            out.append((name, id(node) in top))
            out += [(f"{name}.{a.name}", id(node) in top) for a in node.names]  # from pkg import submodule
    return out


def layer_of(name: str):
    parts = name.split(".")
    if parts[0] != "scalinglaws":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "top"


def test_imports_run_one_way():
    bad = []
    known = {m for m, _, _ in modules()}
    for module, layer, path in modules():
        if layer is None:  # the top package: lazy attribute access only
            continue
        for name, _ in imports_of(path, module):
            target = layer_of(name)
            if target is None or target == "top" or target == layer:
                continue
            if name not in known and name.rsplit(".", 1)[0] not in known:
                continue
            if target not in ALLOWED[layer]:
                bad.append(f"{module} imports {name} ({layer} -> {target})")
    assert not bad, "\n".join(bad)


def test_the_fitter_knows_no_law():
    names = [n for n, _ in imports_of(ROOT / "scalinglaws/fitting/fitter.py", "scalinglaws.fitting.fitter")]
    assert all(not n.startswith("scalinglaws.laws") for n in names), names


def test_no_import_cycles():
    graph = {}
    known = {m for m, _, _ in modules()}
    for module, _, path in modules():
        deps = set()
        for name, _ in imports_of(path, module):
            for cand in (name, name.rsplit(".", 1)[0]):
                if cand in known and cand != module:
                    deps.add(cand)
                    break
        graph[module] = deps - {m for m in deps if module.startswith(m + ".") or m == "scalinglaws"}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            visit(d)
        stack.pop()
    for m in sorted(graph):
        visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_law_is_named_outside_laws():
    from scalinglaws.laws import REGISTRY
    names = set(REGISTRY) | {p for law in REGISTRY.values() for p in law.presets}
    modules_ = {Path(law_file).stem for law_file in (ROOT / "scalinglaws/laws").glob("*.py")} - {
        "__init__", "base", "derive", "plan"}  # plan: the law-agnostic search of `scalinglaws plan`
    word = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")(?![\w-])")
    found = []
    for module, layer, path in modules():
        if layer == "laws":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for m in word.finditer(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {m.group(1)!r}")
        for name, _ in imports_of(path, module):
            if name.startswith("scalinglaws.laws.") and name.split(".")[2] in modules_:
                found.append(f"{path.relative_to(ROOT)}: imports {name}")
    assert not found, "\n".join(found)


def _fresh(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_package_and_the_trainer_loads_no_fitter_and_no_scipy():
    pytest.importorskip("torch")
    loaded = _fresh("import json, sys, scalinglaws, scalinglaws.train, scalinglaws.train.loop, "
                    "scalinglaws.train.sweep; print(json.dumps(sorted(sys.modules)))")
    heavy = [m for m in loaded if m == "scipy" or m.startswith(("scipy.", "scalinglaws.fitting", "scalinglaws.laws",
                                                                "scalinglaws.trust", "scalinglaws.viz", "pandas",
                                                                "sympy", "matplotlib"))]
    assert not heavy, heavy


def test_help_loads_no_numpy_and_a_preset_prediction_no_pandas_scipy_or_sympy():
    loaded = _fresh("import json, sys, io, contextlib\nfrom scalinglaws.cli.main import run\n"
                    "with contextlib.redirect_stdout(io.StringIO()):\n    run(['--help'])\n"
                    "print(json.dumps(sorted(sys.modules)))")
    assert "numpy" not in loaded and not any(m.startswith("scalinglaws.laws") for m in loaded)
    loaded = _fresh("import json, sys, io, contextlib\nfrom scalinglaws.cli.main import run\n"
                    "with contextlib.redirect_stdout(io.StringIO()):\n"
                    "    assert run(['predict', 'besiroglu2024', '--N', '70B', '--D', '1.4T']) == 0\n"
                    "print(json.dumps(sorted(sys.modules)))")
    assert not [m for m in loaded if m.split(".")[0] in ("pandas", "scipy", "sympy", "matplotlib")]


# --------------------------------------------------------------------- adding a law
TOY = '''
"""A toy law for the test: L = E + A / N^alpha, and a planner of a new kind."""
import math
import numpy as np
from scalinglaws.laws.base import Law, Option, Param, Planner, Preset, exps


class Toy(Law):
    name = "toy-size"
    title = "toy: loss from parameters only"
    reference = "a test"
    formula_text = "L = E + A/N^alpha"
    params = (Param("E", "irreducible loss", exps(-3, 3), exps(0.5), log=True),
              Param("A", "scale", exps(-5, 30), exps(2, 6), log=True),
              Param("alpha", "exponent", (0.0, 3.0), (0.2, 0.5)))
    columns = ("N",)
    presets = {"toy2026": Preset({"E": 1.5, "A": 300.0, "alpha": 0.3}, "made up for the test")}
    planners = (Planner("size", "parameters needed to reach --target-loss", "plan_size",
                        required=(Option("target_loss", "loss to reach (nats)", positive=True),)),)

    def formula(self, p, x, m=np):
        return p.E + p.A / x.N ** p.alpha

    def example(self):
        return dict(self.presets["toy2026"].values), {"N": np.geomspace(1e6, 1e10, 8)}

    def plan_size(self, params, target_loss):
        if not target_loss > params["E"]:
            raise ValueError("unreachable")
        N = (params["A"] / (target_loss - params["E"])) ** (1 / params["alpha"])
        return {"target_loss": target_loss, "N": N, "summary": f"N = {N:.4g} reaches loss {target_loss:g}"}
'''


def test_a_law_in_its_own_module_gets_fit_predict_and_a_new_planner_command(tmp_path, monkeypatch, cli):
    from scalinglaws.laws import REGISTRY, register, unregister
    from scalinglaws.fitting.synthetic import simulate
    (tmp_path / "toy_law.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_law
    law = register(toy_law.Toy())
    try:
        truth = law.presets["toy2026"].values
        simulate(law, truth, {"N": np.geomspace(1e6, 1e10, 10)}, noise=0.0).to_csv(tmp_path / "runs.csv", index=False)
        code, out, err = cli("fit", str(tmp_path / "runs.csv"), "--law", "toy-size", "--out", str(tmp_path / "f.json"),
                             "--json")
        assert code == 0, err
        params = json.loads(out)["params"]
        assert params["alpha"] == pytest.approx(0.3, rel=1e-6) and params["E"] == pytest.approx(1.5, rel=1e-6)
        code, out, err = cli("predict", str(tmp_path / "f.json"), "--N", "1B", "--json")
        assert code == 0, err
        assert json.loads(out)["predictions"][0]["loss_pred"] == pytest.approx(1.5 + 300 / 1e9 ** 0.3, rel=1e-6)
        code, out, err = cli("optimal", "--help")
        assert code == 0 and "size" in out
        code, out, err = cli("optimal", "size", "--help")
        assert code == 0 and "--target-loss" in out and "loss to reach" in out.lower()
        code, out, err = cli("optimal", "size", "toy2026", "--target-loss", "2.0", "--json")
        assert code == 0, err
        assert json.loads(out)["N"] == pytest.approx((300 / 0.5) ** (1 / 0.3), rel=1e-12)
        code, out, err = cli("optimal", "size", "toy2026", "--target-loss", "-1")
        assert code == 2 and "--target-loss must be a finite number > 0" in err and "Traceback" not in err
        code, out, err = cli("optimal", "size", "toy2026")
        assert code == 2 and "--target-loss is required" in err
    finally:
        unregister("toy-size")
    assert "toy-size" not in REGISTRY
