"""Run tables: aliases, suffixes, and every bad-input case named by file, row and column."""

import numpy as np
import pandas as pd
import pytest

from scalinglaws import InputError, load_runs, parse_number
from scalinglaws.data.units import expand_suffixes, human, parse_bytes


@pytest.mark.parametrize("text,value", [("125M", 125e6), ("1.5B", 1.5e9), ("300B", 300e9), ("2T", 2e12),
                                        ("1e9", 1e9), ("7k", 7e3), (" 3.5 ", 3.5), ("1.2e3M", 1.2e9)])
def test_parse_number_suffixes(text, value):
    assert parse_number(text) == pytest.approx(value)


def test_parse_bytes_and_expressions():
    assert parse_bytes("16GB") == 16e9
    assert parse_bytes("1GiB") == 2**30
    assert expand_suffixes("N>=100M and D<2T") == "N>=100000000.0 and D<2000000000000.0"
    assert human(7e10) == "70B" and human(2e8, 2) == "200M"
    with pytest.raises(InputError):
        parse_number("12Q")


def test_aliases_and_suffixes(write):
    p = write("r.csv", "Params,train_tokens,VAL_LOSS,w-bits,notes\n125M,2.5B,3.1,4,a\n1.5B,30B,2.5,,b\n")
    df = load_runs(p)
    assert list(df.columns[:4]) == ["N", "D", "loss", "w_bits"]
    np.testing.assert_allclose(df["N"], [125e6, 1.5e9])
    np.testing.assert_allclose(df["D"], [2.5e9, 30e9])
    np.testing.assert_allclose(df["w_bits"], [4, 16])  # empty precision cell = 16 bits
    assert list(df["notes"]) == ["a", "b"]


def test_map_option(write):
    p = write("r.csv", "size,toks,xent\n1e8,2e9,3.0\n")
    df = load_runs(p, mapping=["size=N", "toks=D", "xent=loss"])
    assert df["N"].iloc[0] == 1e8 and df["loss"].iloc[0] == 3.0
    with pytest.raises(InputError, match="not a canonical column"):
        load_runs(p, mapping=["size=params_total"])


@pytest.mark.parametrize("text,match", [
    ("N,D\n1e8,2e9\n", r"missing required column 'loss'"),
    ("N,D,loss\n1e8,2e9,3.0\n1e8,abc,3.1\n", r"data row 2 \(line 3\), column 'D': 'abc' is not a number"),
    ("N,D,loss\n1e8,2e9,3.0\n-5,2e9,3.1\n", r"data row 2 \(line 3\), column 'N': N must be > 0"),
    ("N,D,loss\n0,2e9,3.0\n", r"data row 1 \(line 2\), column 'N': N must be > 0"),
    ("N,D,loss\n1e8,2e9,inf\n", r"data row 1 \(line 2\), column 'loss': inf is not finite"),
    ("N,D,loss\n1e8,2e9,nan\n", r"data row 1 \(line 2\), column 'loss': empty cell"),
    ("N,D,loss\n", r"no data rows"),
    ("", r"the file is empty"),
    ("params,N,D,loss\n1,2,1,1\n", r"data row 1 \(line 2\): columns 'params' and 'N' both stand for 'N' and differ"),
])
def test_bad_tables(write, text, match):
    p = write("bad.csv", text)
    with pytest.raises(InputError, match=match) as info:
        load_runs(p)
    assert str(p) in str(info.value)


def test_unreadable_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_runs(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a folder"):
        load_runs(tmp_path)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01\x80\x81" * 50)
    with pytest.raises(InputError, match="cannot read|no data rows|missing required"):
        load_runs(binary)


def test_where_and_exclude_top(write):
    p = write("r.csv", "N,D,loss\n100M,1B,3.5\n1B,10B,2.9\n10B,100B,2.4\n10B,50B,2.6\n")
    assert len(load_runs(p, where="N>=1B")) == 3
    assert len(load_runs(p, where="N>=1e9 and D<60B")) == 2
    top = load_runs(p, exclude_top=1)
    assert top["loss"].max() == pytest.approx(2.9)
    assert list(top.index) == [2, 3, 4]  # original data rows are kept as the index
    with pytest.raises(InputError, match="leaves no runs"):
        load_runs(p, where="N>1T")
    with pytest.raises(InputError, match="where"):
        load_runs(p, where="N>>=3")
    with pytest.raises(InputError, match="would drop all"):
        load_runs(p, exclude_top=4)


def test_parquet_roundtrip(tmp_path):
    pytest.importorskip("pyarrow")
    p = tmp_path / "r.parquet"
    pd.DataFrame({"params": [1e8, 1e9], "tokens": [2e9, 2e10], "loss": [3.0, 2.6]}).to_parquet(p)
    df = load_runs(p)
    np.testing.assert_allclose(df["N"], [1e8, 1e9])


def test_dataframe_input_and_bits_bounds():
    df = load_runs(pd.DataFrame({"N": ["1B"], "D": [1e9], "loss": [3.0]}), name="frame")
    assert df["N"].iloc[0] == 1e9
    with pytest.raises(InputError, match=r"frame, data row 1 \(line 2\), column 'w_bits': w_bits must be >= 1"):
        load_runs(pd.DataFrame({"N": [1e8], "D": [1e9], "loss": [3.0], "w_bits": [0]}), name="frame")


def test_human_switches_to_scientific_past_its_largest_unit():
    from scalinglaws.data.units import human_bytes
    assert human(4.17e19) == "4.17e+19"      # not '41708125T'
    assert human(9.99e14) == "999T" and human(1.4e12) == "1.4T"
    assert human_bytes(3e16) == "3e+16 bytes" and human_bytes(8e9) == "8GB"
