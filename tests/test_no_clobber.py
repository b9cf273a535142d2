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
