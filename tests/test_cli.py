"""The command line: bad input is one line with exit code 2; fit.json round-trips; predict and optimal."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.fitting.synthetic import grid, simulate

TRUTH = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory):
    table = simulate("chinchilla", TRUTH, grid(np.geomspace(3e7, 3e9, 5), np.geomspace(1e9, 1e11, 5)),
                     noise=0.003, seed=1)
    p = tmp_path_factory.mktemp("data") / "runs.csv"
    table.to_csv(p, index=False)
    return p


@pytest.mark.parametrize("content,args,message", [
    ("N,D\n1e8,1e9\n", [], "missing required column 'loss'"),
    ("N,D,loss\n1e8,1e9,3\n1e8,x1,3\n", [], "data row 2 (line 3), column 'D': 'x1' is not a number"),
    ("N,D,loss\n-1e8,1e9,3\n", [], "column 'N': N must be > 0"),
    ("N,D,loss\n", [], "no data rows"),
    ("N,D,loss\n1e8,1e9,3\n", ["--law", "nosuchlaw"], "unknown law 'nosuchlaw'"),
    ("N,D,loss\n1e8,1e9,3\n", ["--loss", "l1"], "--loss must be 'huber' or 'mse'"),
    ("N,D,loss\n1e8,1e9,3\n", ["--fix", "gamma=1"], "has no parameter 'gamma'"),
    ("N,D,loss\n1e8,1e9,3\n", ["--fix", "alpha"], "expected NAME=VALUE"),
    ("N,D,loss\n1e8,1e9,3\n", ["--delta", "-1"], "--delta must be a finite number > 0"),
    ("N,D,loss\n1e8,1e9,3\n", ["--bogus-option"], "No such option"),
])
def test_fit_bad_input(cli, write, content, args, message):
    p = write("bad.csv", content)
    code, out, err = cli("fit", p, *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1 or message == "No such option"


def test_missing_file_one_line_no_traceback_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "scalinglaws.cli.main", "fit", str(tmp_path / "none.csv")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_fit_json_round_trip_and_predict(cli, runs_csv, tmp_path):
    out = tmp_path / "fit.json"
    code, stdout, err = cli("fit", runs_csv, "--out", out, "--starts", 300, "--json")
    assert code == 0, err
    printed = json.loads(stdout)
    saved = json.loads(out.read_text())
    for key in ("law", "params", "objective", "n_runs", "loss", "version"):
        assert key in saved
    assert saved["params"] == printed["params"]
    assert saved["loss"] == {"loss": "huber", "delta": 0.001, "space": "log"}
    fit = sl.load_fit(out)
    assert fit.law == "chinchilla" and fit.n_runs == 25
    # predictions from the loaded fit equal the law evaluated by hand
    p = fit.params
    by_hand = p["E"] + p["A"] / 7e10 ** p["alpha"] + p["B"] / 1.4e12 ** p["beta"]
    code, stdout, _ = cli("predict", out, "--N", "70B", "--D", "1.4T", "--json")
    assert code == 0
    assert json.loads(stdout)["predictions"][0]["loss_pred"] == pytest.approx(by_hand, rel=1e-12)
    # the recovered parameters are close to the truth
    assert fit.params["E"] == pytest.approx(TRUTH["E"], rel=0.03)
    assert fit.params["alpha"] == pytest.approx(TRUTH["alpha"], rel=0.08)


@pytest.mark.parametrize("ext,sep", [("csv", ","), ("tsv", "\t")])
def test_predict_grid_keeps_user_columns(cli, runs_csv, tmp_path, ext, sep):
    grid_csv = tmp_path / f"grid.{ext}"
    grid_csv.write_text("".join(sep.join(r) + "\n" for r in [("model", "params", "tokens"), ("small", "125M", "2.5B"),
                                                             ("big", "70B", "1.4T")]))
    out = tmp_path / "pred.csv"
    code, _, err = cli("predict", "besiroglu2024", "--grid", grid_csv, "--out", out)
    assert code == 0, err
    df = pd.read_csv(out)
    assert list(df.columns) == ["model", "params", "tokens", "loss_pred"]
    pr = sl.get_law("chinchilla").presets["besiroglu2024"].values
    expect = pr["E"] + pr["A"] / 70e9 ** pr["alpha"] + pr["B"] / 1.4e12 ** pr["beta"]
    assert df["loss_pred"].iloc[1] == pytest.approx(expect, rel=1e-12)
    # never overwrite an input
    code, _, err = cli("predict", "besiroglu2024", "--grid", grid_csv, "--out", grid_csv)
    assert code == 2 and "refusing to overwrite" in err


def test_fit_never_overwrites_its_input(cli, runs_csv):
    before = runs_csv.read_bytes()
    code, _, err = cli("fit", runs_csv, "--out", runs_csv)
    assert code == 2
    assert runs_csv.read_bytes() == before


def test_optimal_compute_matches_numeric_optimum(cli):
    from scipy.optimize import minimize_scalar
    pr = sl.get_law("chinchilla").presets["hoffmann2022"].values
    C = 5.76e23

    def loss_at(logn):  # independent reference: minimise the law along C = 6ND
        n = np.exp(logn)
        return pr["E"] + pr["A"] / n ** pr["alpha"] + pr["B"] / (C / 6 / n) ** pr["beta"]
    best = minimize_scalar(loss_at, bounds=(np.log(1e8), np.log(1e13)), method="bounded",
                           options={"xatol": 1e-10})
    code, stdout, err = cli("optimal", "compute", "hoffmann2022", "--flops", "5.76e23", "--json")
    assert code == 0, err
    ans = json.loads(stdout)
    assert ans["N_opt"] == pytest.approx(np.exp(best.x), rel=1e-4)
    assert ans["N_opt"] * ans["D_opt"] * 6 == pytest.approx(C, rel=1e-12)
    assert ans["loss"] == pytest.approx(best.fun, rel=1e-9)


@pytest.mark.parametrize("args,message", [
    (["optimal", "compute", "hoffmann2022"], "--flops is required"),
    (["optimal", "compute", "hoffmann2022", "--flops", "-3"], "--flops must be a finite number > 0"),
    (["optimal", "compute", "hoffmann2022", "--flops", "1e23", "--memory", "16GB"], "do not apply"),
    (["optimal", "fp-format", "hoffmann2022", "--bits", "8"], "has no 'fp-format' planner"),
    (["optimal", "compute", "nosuchpreset", "--flops", "1e23"], "unknown preset 'nosuchpreset'"),
    (["predict", "hoffmann2022", "--N", "0", "--D", "1T"], "column 'N': N must be > 0"),
    (["predict", "hoffmann2022", "--D", "1T"], "needs --N"),
])
def test_planner_and_predict_errors(cli, args, message):
    code, out, err = cli(*args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_laws_listing(cli):
    code, out, _ = cli("laws", "--json")
    assert code == 0
    laws = {d["name"]: d for d in json.loads(out)}
    assert laws["chinchilla"]["start_grid_size"] == 4500
    assert set(laws["chinchilla"]["presets"]) >= {"hoffmann2022", "besiroglu2024"}
    code, out, _ = cli("laws", "chinchilla")
    assert code == 0 and "A/N^alpha" in out


def test_plot_is_written(cli, runs_csv, tmp_path):
    png = tmp_path / "fit.png"
    code, _, err = cli("fit", runs_csv, "--starts", 100, "--plot", png)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_grid_for_a_degradation_law(cli, tmp_path):
    """ouyang-qid predicts loss - loss_fp: a grid without loss_fp works and the column says so."""
    g = tmp_path / "g.csv"
    g.write_text("N,D,ptq_bits\n70B,10T,4\n")
    out = tmp_path / "o.csv"
    code, _, err = cli("predict", "ouyang2024", "--grid", g, "--out", out)
    assert code == 0, err
    df = pd.read_csv(out)
    k, alpha, beta, gamma = 0.017, 0.2261, 0.5251, 5.4967  # the preset, by hand
    assert df["degradation_pred"].iloc[0] == pytest.approx(k * 1e13 ** beta / (70e9 ** alpha * 4 ** gamma),
                                                           rel=1e-10)


def test_error_lines_keep_brackets_in_file_names(cli, tmp_path):
    bad = tmp_path / "runs[v2].csv"
    bad.write_text("N,D,loss\n1e8,x1,2.0\n")
    code, out, err = cli("fit", bad)
    assert code == 2 and "runs[v2].csv, data row 1 (line 2), column 'D'" in err


def test_training_without_torch_says_how_to_install_it(cli, monkeypatch, tmp_path):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    code, out, err = cli("train", "--params", "100K", "--tokens", "1M", "--out", tmp_path / "r.csv")
    assert code == 2 and 'pip install -e ".[train]"' in err
