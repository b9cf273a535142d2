"""The table reader on random input: a clean table or one InputError, never another exception."""

from __future__ import annotations

import csv
import io
import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from scalinglaws.data.errors import InputError  # noqa: E402
from scalinglaws.data.runs import load_runs  # noqa: E402
from scalinglaws.data.schema import CANONICAL  # noqa: E402

HEADERS = st.one_of(
    st.sampled_from(list(CANONICAL) + ["params", "tokens", "val_loss", "size", "data", "n", "d", "l", "g",
                                       "Model Size", "w-bits", "loss.fp", "", " N ", "N", "N"]),
    st.text(min_size=0, max_size=8),
)
CELLS = st.one_of(
    st.sampled_from(["", " ", "NA", "nan", "inf", "-inf", "1e309", "-0", "0", "7Q", "1.5B", "300b", "2T", "16GB",
                     "1e-320", "١٢", "½", "1,5", "--1", "1e", ".", "+.5e3", "None", "null", "true"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10 ** 30, max_value=10 ** 30).map(str),
    st.text(max_size=6),
)


def _csv(headers, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(headers)
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.lists(HEADERS, min_size=1, max_size=5), data=st.data(), required=st.booleans())
def test_random_tables_give_a_table_or_one_input_error(tmp_path, headers, data, required):
    rows = data.draw(st.lists(st.lists(CELLS, min_size=len(headers), max_size=len(headers)), min_size=0, max_size=4))
    path = tmp_path / "runs.csv"
    path.write_text(_csv(headers, rows), encoding="utf-8")
    try:
        df = load_runs(path, required=("N", "D", "loss") if required else ())
    except InputError as exc:
        assert str(exc).strip() and "\n" not in str(exc)
        return
    for c in CANONICAL:
        if c in df.columns:
            v = df[c].to_numpy(float)
            assert all(math.isnan(x) or math.isfinite(x) for x in v)
