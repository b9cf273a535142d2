"""Commands write over their own outputs only; anything else needs --force and is left byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNS = str(ROOT / "data" / "synthetic_chinchilla.csv")


@pytest.mark.parametrize("args, name, content", [
    (["fit", RUNS, "--out"], "notes.json", b'{"my": "notes"}\n'),
    (["fit", RUNS, "--plot"], "photo.png", b"\x89PNG\r\n\x1a\n my holiday photo"),
    (["predict", "besiroglu2024", "--grid", RUNS, "--out"], "other.csv", b"a,b\n1,2\n"),
])
def test_a_file_the_command_did_not_make_is_refused_and_untouched(cli, tmp_path, args, name, content):
    target = tmp_path / name
    target.write_bytes(content)
    code, _, err = cli(*args, str(target))
    assert code == 2 and "exists and is not" in err and "--force" in err and str(target) in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert target.read_bytes() == content
    code, _, err = cli(*args, str(target), "--force")
    assert code == 0, err
    assert target.read_bytes() != content


def test_own_outputs_are_rewritten_without_force(cli, tmp_path):
    fit, plot, pred = tmp_path / "fit.json", tmp_path / "fit.png", tmp_path / "pred.csv"
    for _ in range(2):
        code, _, err = cli("fit", RUNS, "--out", str(fit), "--plot", str(plot))
        assert code == 0, err
        code, _, err = cli("predict", str(fit), "--grid", RUNS, "--out", str(pred))
        assert code == 0, err


def test_a_folder_that_is_not_a_report_is_refused(cli, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    code, _, err = cli("report", RUNS, "--out", str(folder))
    assert code == 2 and "is not a report folder" in err
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]


def test_an_output_on_a_read_only_file_system_is_one_line(cli, tmp_path):
    # /sys refuses new files even to root (chmod-based read-only folders do not stop root)
    code, _, err = cli("fit", RUNS, "--out", "/sys/fit.json")
    assert code == 2 and err.startswith("error: cannot write /sys/fit.json") and "Traceback" not in err
    code, _, err = cli("report", RUNS, "--out", "/sys/rep")
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("value, said", [('"x"', "alpha must be a number, got 'x'"), ("null", "alpha must be a number"),
                                         ('-1', "E must be > 0")])
def test_bad_values_inside_a_fit_file_are_one_line_naming_file_and_key(cli, tmp_path, value, said):
    import json
    p = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
    text = json.dumps({"law": "chinchilla", "params": p}).replace('"alpha": 0.35', f'"alpha": {value}') \
        if "alpha" in said else json.dumps({"law": "chinchilla", "params": {**p, "E": -1}})
    f = tmp_path / "fit.json"
    f.write_text(text)
    code, _, err = cli("predict", str(f), "--N", "1B", "--D", "20B")
    assert code == 2 and str(f) in err and "key 'params'" in err and said in err and err.count("\n") == 1


def test_quiet_is_accepted_by_every_long_command(cli):
    for args in (["fit", RUNS, "--quiet"], ["validate", RUNS, "--holdout", "N >= 1e9", "--starts", "32", "-q"],
                 ["diagnose", RUNS, "--converge", "32", "--quiet"]):
        code, _, err = cli(*args)
        assert code == 0, err


def test_a_figure_matplotlib_drew_for_someone_else_is_refused(cli, tmp_path):
    # a plain matplotlib figure says "matplotlib" in its metadata too; only ours carry the toolkit's mark
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    target = tmp_path / "mine.png"
    fig = plt.figure()
    fig.gca().plot([1, 2])
    fig.savefig(target)
    plt.close(fig)
    before = target.read_bytes()
    code, _, err = cli("fit", RUNS, "--plot", str(target))
    assert code == 2 and "is not a figure this toolkit drew" in err and err.count("\n") == 1
    assert target.read_bytes() == before


@pytest.mark.parametrize("ext", ["png", "pdf", "svg", "jpg"])
def test_our_figures_in_every_format_are_redrawn_without_force(cli, tmp_path, ext):
    target = tmp_path / f"fit.{ext}"
    for _ in range(2):
        code, _, err = cli("fit", RUNS, "--plot", str(target), "--starts", "64")
        assert code == 0, err


@pytest.mark.parametrize("args, said", [
    (["predict", "besiroglu2024", "--N", "nan", "--D", "1T"], "--N 'nan' is not a finite number"),
    (["predict", "besiroglu2024", "--N", "1B", "--D", "1T", "--w-bits", "nan"], "--w-bits 'nan' is not a finite"),
    (["fit", RUNS, "--fix", "alpha=nan"], "--fix alpha: 'nan' is not a number"),
    (["optimal"], "'scalinglaws optimal' needs a command"),
])
def test_nan_flags_and_a_bare_group_are_one_line_errors(cli, args, said):
    code, _, err = cli(*args)
    assert code == 2 and said in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_fit_file_of_an_unknown_law_names_the_file(cli, tmp_path):
    import json
    f = tmp_path / "fit.json"
    f.write_text(json.dumps({"law": "nosuchlaw", "params": {"E": 1.8}}))
    code, _, err = cli("predict", str(f), "--N", "1B", "--D", "20B")
    assert code == 2 and err.startswith(f"error: {f}: key 'law': unknown law 'nosuchlaw'") and err.count("\n") == 1


def test_predict_grid_writes_csv_or_typed_parquet_only(cli, tmp_path):
    import pandas as pd
    grid = tmp_path / "grid.csv"
    grid.write_text("N,D,note,id\n1B,1.4T,a,007\n7B,2T,,1e3\n")
    code, _, err = cli("predict", "besiroglu2024", "--grid", str(grid), "--out", str(tmp_path / "p.json"))
    assert code == 2 and "--out" in err and ".parquet" in err and ".tsv" in err and not (tmp_path / "p.json").exists()
    code, _, err = cli("predict", "besiroglu2024", "--grid", str(grid), "--out", str(tmp_path / "p.parquet"))
    assert code == 0, err
    d = pd.read_parquet(tmp_path / "p.parquet")
    assert d["N"].tolist() == [1e9, 7e9] and d["D"].tolist() == [1.4e12, 2e12]   # numbers, not "1B"
    assert d["note"].tolist()[0] == "a" and d["id"].tolist() == ["007", "1e3"]   # not a run column: as given
    code, _, err = cli("predict", "besiroglu2024", "--grid", str(grid), "--out", str(tmp_path / "p.csv"))
    assert code == 0 and (tmp_path / "p.csv").read_text().splitlines()[1].startswith("1B,1.4T,a,007,")  # kept


def test_predict_notes_a_flag_the_prediction_does_not_depend_on(cli):
    import json
    code, out, err = cli("predict", "besiroglu2024", "--N", "125M", "--D", "300B", "--ptq-bits", "2", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert len(d["notes"]) == 1 and d["notes"][0].startswith("--ptq-bits makes no difference")
    # a flag the law reads changes the prediction, and gets no note
    code, out, err = cli("predict", "kumar2024", "--N", "1B", "--D", "20B", "--w-bits", "4", "--json")
    assert code == 0 and json.loads(out)["notes"] == []


@pytest.mark.parametrize("args, said", [
    (["fit", RUNS, "--loss", "mse", "--delta", "0.01"], "--delta is the Huber loss's threshold; --loss mse has none"),
    (["fit", RUNS, "--level", "0.9"], "--level applies to the intervals of --bootstrap R or --profile"),
    (["predict", "besiroglu2024", "--N", "1B", "--D", "1T", "--interval", "prediction"],
     "--interval applies to a bootstrapped fit"),
    (["predict", "besiroglu2024", "--N", "1Q", "--D", "1T"], "suffixes k, M, B (or G), T, P are allowed"),
])
def test_a_flag_that_would_be_ignored_is_refused(cli, args, said):
    code, _, err = cli(*args)
    assert code == 2 and said in err and err.count("\n") == 1
