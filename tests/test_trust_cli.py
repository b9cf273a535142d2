"""The trust commands: validate, compare, diagnose, report -- JSON output and one-line errors."""

import json

import numpy as np
import pytest

from scalinglaws.fitting.synthetic import grid, simulate

TRUTH = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory):
    table = simulate("chinchilla", TRUTH, grid(np.geomspace(3e7, 3e9, 6), np.geomspace(1e9, 1e11, 4)),
                     noise=0.002, seed=1)
    p = tmp_path_factory.mktemp("data") / "runs.csv"
    table.to_csv(p, index=False)
    return p


@pytest.fixture(scope="module")
def one_size_csv(tmp_path_factory):
    table = simulate("chinchilla", TRUTH, grid([1e8], np.geomspace(1e9, 1e11, 6)), noise=0.002, seed=1)
    p = tmp_path_factory.mktemp("data") / "one.csv"
    table.to_csv(p, index=False)
    return p


def test_validate_holdout_json(cli, runs_csv):
    code, out, err = cli("validate", runs_csv, "--holdout", "N>=1e9", "--starts", 64, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["n_test"] == 8 and d["passed"] is True and d["verdict"].startswith("PASS")
    assert len(d["runs"]) == 8
    assert d["mean_abs_error"] == pytest.approx(np.mean([abs(r["error"]) for r in d["runs"]]), rel=1e-12)


def test_validate_leave_one_out_text(cli, runs_csv):
    code, out, err = cli("validate", runs_csv, "--leave-one-out", "N", "--forward", "--starts", 64)
    assert code == 0, err
    assert "skipped" in out and ("PASS" in out or "FAIL" in out)


def test_compare_json(cli, runs_csv):
    code, out, err = cli("compare", runs_csv, "--laws", "chinchilla", "--starts", 64, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["winners"]["aic"] == "chinchilla" and d["laws"][0]["heldout"]["n_test"] == 4


def test_diagnose_one_size_warns(cli, one_size_csv):
    code, out, err = cli("diagnose", one_size_csv, "--starts", 64, "--json")
    assert code == 0, err
    assert "one_model_size" in {w["code"] for w in json.loads(out)["warnings"]}
    code, out, err = cli("diagnose", one_size_csv, "--starts", 64)
    assert code == 0 and "one model size only" in out


def test_report_command(cli, runs_csv, tmp_path):
    folder = tmp_path / "rep"
    code, out, err = cli("report", runs_csv, "--laws", "chinchilla", "--out", folder, "--flops", "1e21",
                         "--starts", 64, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert (folder / "report.html").exists() and (folder / "report.md").exists()
    assert len(d["figures"]) >= 5 and all((folder / "figures").joinpath(p.split("/")[-1]).exists()
                                          for p in d["figures"])


@pytest.mark.parametrize("args,message", [
    (["validate", "{runs}", "--holdout", "N >>> 2"], "--holdout 'N >>> 2'"),
    (["validate", "{runs}", "--holdout", "N > 1e15"], "selects no runs"),
    (["validate", "{runs}", "--holdout", "N > 0"], "leaves none to fit on"),
    (["validate", "{runs}", "--holdout", "bogus > 1"], "--holdout 'bogus > 1'"),
    (["validate", "{runs}"], "give one of --holdout EXPR or --leave-one-out"),
    (["validate", "{runs}", "--leave-one-out", "X"], "must be N or D"),
    (["validate", "{runs}", "--holdout", "N>1e9", "--forward"], "--forward applies to --leave-one-out"),
    (["validate", "{runs}", "--holdout", "N>1e9", "--level", "1.5"], "--level must be between 0 and 1"),
    (["validate", "{runs}", "--law", "nosuch", "--holdout", "N>1e9"], "unknown law 'nosuch'"),
    (["compare", "{runs}", "--laws", "chinchilla,nosuch"], "unknown law 'nosuch'"),
    (["compare", "{runs}", "--laws", "chinchilla", "--holdout", "N>1e20"], "selects no runs"),
    (["diagnose", "{runs}", "--law", "chinchilla", "--near", "-1"], "--near must be >= 0"),
    (["report", "{runs}", "--out", "{runs}"], "is a file"),
    (["report", "{runs}", "--out", "/no/such/folder/rep"], "does not exist"),
    (["report", "{runs}", "--out", "{tmp}/r", "--flops", "abc"], "--flops 'abc' is not a number"),
    (["report", "{runs}", "--out", "{tmp}/r", "--cluster", "size"], "no column 'size'"),
    (["report", "{runs}", "--out", "{tmp}/r", "--laws", "nosuch"], "unknown law 'nosuch'"),
])
def test_bad_input_is_one_line_and_exit_2(cli, runs_csv, tmp_path, args, message):
    args = [a.format(runs=runs_csv, tmp=tmp_path) for a in args]
    code, out, err = cli(*args, "--starts", 16)
    assert code == 2, out + err
    assert message in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_compare_text_prints_a_tie_and_why(cli, runs_csv):
    # one law written twice (frantar-eff on 16-bit runs): every measure ties, and the table says why
    code, out, err = cli("compare", runs_csv, "--laws", "chinchilla,frantar-eff", "--starts", 64)
    assert code == 0, err
    flat = " ".join(out.replace("│", " ").split())
    assert "aic tie tie: chinchilla and frantar-eff" in flat or "aic tie tie: frantar-eff and chinchilla" in flat
    assert "cannot tell them apart" in flat
