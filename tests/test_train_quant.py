"""Quantizers against exhaustive, independently built references."""

import itertools
import math

import pytest

torch = pytest.importorskip("torch")

from scalinglaws.data.errors import InputError  # noqa: E402
from scalinglaws.train.quant import QuantSpec, fake_quant, fp_max, quantize, round_to_fp  # noqa: E402

# Every non-negative value of tiny FP formats, written out by hand (all codes finite).
E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]                      # bias 1; 0.5 is subnormal
E3M1 = [0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0]  # bias 3
E2M2 = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0]
E1M2 = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]                       # bias 0: a uniform grid


def grid_by_codes(e_bits, m_bits):
    """(value, code) of every non-negative code, from the bit-field definition."""
    bias = 2 ** (e_bits - 1) - 1
    out = []
    for e, m in itertools.product(range(2 ** e_bits), range(2 ** m_bits)):
        v = 2.0 ** (1 - bias) * m / 2 ** m_bits if e == 0 else 2.0 ** (e - bias) * (1 + m / 2 ** m_bits)
        out.append((v, e * 2 ** m_bits + m))
    return out


def nearest_even(x, grid):
    """Reference rounding: nearest grid value, ties to the even code, saturating."""
    best = min(grid, key=lambda vc: (abs(abs(x) - vc[0]), vc[1] % 2))
    return math.copysign(best[0], x)


@pytest.mark.parametrize("e,m,table", [(2, 1, E2M1), (3, 1, E3M1), (2, 2, E2M2), (1, 2, E1M2)])
def test_hand_enumerated_grids(e, m, table):
    assert sorted(v for v, _ in grid_by_codes(e, m)) == table
    assert fp_max(e, m) == table[-1]
    vals = torch.tensor(table + [-v for v in table])
    assert torch.equal(round_to_fp(vals, e, m), vals)          # on-grid values round-trip


def test_known_maxima():
    assert fp_max(4, 3) == 480.0 and fp_max(5, 2) == 114688.0 and fp_max(2, 1) == 6.0


@pytest.mark.parametrize("e,m", [(2, 1), (3, 2), (4, 3), (2, 3), (5, 2)])
def test_fp_rounding_matches_exhaustive_reference(e, m):
    grid = grid_by_codes(e, m)
    top = fp_max(e, m)
    values = sorted({v for v, _ in grid})
    mids = [(a + b) / 2 for a, b in zip(values, values[1:])]            # every tie
    g = torch.Generator().manual_seed(0)
    rand = (torch.rand(2000, generator=g, dtype=torch.float64) * 2.4 * top - 1.2 * top).tolist()
    xs = values + mids + [-v for v in mids] + rand + [top * 3, -top * 7]
    got = round_to_fp(torch.tensor(xs, dtype=torch.float32), e, m).tolist()
    want = [nearest_even(float(torch.tensor(x, dtype=torch.float32)), grid) for x in xs]
    assert got == want


def test_ties_to_even_and_saturation_e2m1():
    x = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, 100.0, -5.0, -0.25])
    assert round_to_fp(x, 2, 1).tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, 6.0, -4.0, -0.0]


def test_fp_group_scales_map_absmax_to_top():
    x = torch.tensor([[0.1, -3.0, 0.7, 1.2], [100.0, 10.0, -1.0, 30.0]])
    q = quantize(x, QuantSpec(bits=4, format="fp", exp_bits=2, man_bits=1, granularity="per_group", group_size=2))
    # groups (0.1,-3) (0.7,1.2) (100,10) (-1,30); scale = absmax / 6
    for grp, out in zip(x.reshape(-1, 2), q.reshape(-1, 2)):
        s = grp.abs().max() / 6
        want = [nearest_even(float(v / s), grid_by_codes(2, 1)) * s for v in grp]
        assert out.tolist() == pytest.approx([float(w) for w in want], rel=1e-6)
    assert q.abs().reshape(-1, 2).amax(1).tolist() == pytest.approx([3.0, 1.2, 100.0, 30.0])


def test_int_symmetric_grid_and_group_scales():
    x = torch.tensor([[1.0, -0.5, 0.26, 0.0, 8.0, 4.0, -2.0, 1.0]])
    q = quantize(x, QuantSpec(bits=3, granularity="per_group", group_size=4))   # qmax 3
    s1, s2 = 1.0 / 3, 8.0 / 3
    want = [3 * s1, -2 * s1, 1 * s1, 0.0, 3 * s2, 2 * s2, -1 * s2, 0 * s2]      # -1.5 -> -2 (even)
    assert q[0].tolist() == pytest.approx(want)
    # ternary at 2 bits; per-channel rows of a weight have their own scale
    w = torch.tensor([[0.9, -0.2, 0.5], [-4.0, 1.9, 2.1]])
    q2 = quantize(w, QuantSpec(bits=2, granularity="per_channel"))
    assert q2.flatten().tolist() == pytest.approx([0.9, 0.0, 0.9, -4.0, 0.0, 4.0])


def test_int_round_trip_and_level_count():
    g = torch.Generator().manual_seed(1)
    for bits in (2, 3, 4, 8):
        qmax = 2 ** (bits - 1) - 1
        codes = torch.randint(-qmax, qmax + 1, (64, 32), generator=g).float()
        codes[:, 0] = qmax
        x = codes * 0.37
        assert torch.allclose(quantize(x, QuantSpec(bits=bits, granularity="per_token")), x, rtol=1e-6)
        y = quantize(torch.randn(4096, generator=g), QuantSpec(bits=bits))
        assert len(torch.unique(y)) <= 2 * qmax + 1


def test_int_asymmetric():
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 1.4, 1.6])
    q = quantize(x, QuantSpec(bits=2, is_symmetric=False))          # 4 levels on [0, 3]
    assert q.tolist() == pytest.approx([0.0, 1.0, 2.0, 3.0, 1.0, 2.0])


def test_straight_through_gradient():
    x = torch.randn(3, 8, requires_grad=True)
    for spec in (QuantSpec(bits=2), QuantSpec(bits=8, format="fp", exp_bits=4, man_bits=3,
                                              granularity="per_group", group_size=4)):
        y = fake_quant(x, spec)
        assert not torch.equal(y, x)
        (y * torch.arange(8.0)).sum().backward()
        assert torch.equal(x.grad, torch.arange(8.0).expand(3, 8))
        x.grad = None
    assert fake_quant(x, None) is x


def test_bad_specs_raise_input_error():
    for kw in (dict(bits=1), dict(bits=4, granularity="per_row"), dict(bits=4, granularity="per_group"),
               dict(bits=8, format="fp", exp_bits=4, man_bits=2), dict(bits=4, format="fp8")):
        with pytest.raises(InputError):
            QuantSpec(**kw)
    with pytest.raises(InputError, match="does not divide"):
        quantize(torch.ones(2, 10), QuantSpec(bits=4, granularity="per_group", group_size=4))


def test_e4m3_landmarks_by_hand():
    """E4M3 (bias 7, every code finite): 2**-9 smallest subnormal, 7 * 2**-9 largest, 2**-6 smallest
    normal, 1.125 after 1, 480 = 1.875 * 2**8 largest (OCP's E4M3FN gives that code to NaN: 448)."""
    vals = sorted({v for v, _ in grid_by_codes(4, 3)})
    assert len(vals) == 128 and vals[:3] == [0.0, 2 ** -9, 2 ** -8] and vals[7] == 7 * 2 ** -9
    assert vals[8] == 2 ** -6 and vals[vals.index(1.0) + 1] == 1.125 and vals[-2:] == [448.0, 480.0]
    x = torch.tensor([2 ** -10, 1.5 * 2 ** -9, 2 ** -6 + 2 ** -10, 1.0625, 1.1875, 464.0, 470.0, 1e9])
    assert round_to_fp(x, 4, 3).tolist() == [0.0, 2 ** -8, 2 ** -6, 1.0, 1.25, 448.0, 480.0, 480.0]


@pytest.mark.parametrize("e,m,dtype,limit", [(4, 3, "float8_e4m3fn", 448.0), (5, 2, "float8_e5m2", 57344.0)])
def test_matches_torch_float8_casts(e, m, dtype, limit):
    """Within the range the formats share, rounding agrees with torch's own float8 casts."""
    dt = getattr(torch, dtype, None)
    if dt is None:
        pytest.skip(f"torch has no {dtype}")
    g = torch.Generator().manual_seed(2)
    vals = sorted({v for v, _ in grid_by_codes(e, m) if v <= limit})
    mids = [(a + b) / 2 for a, b in zip(vals, vals[1:])]
    x = torch.cat([torch.tensor(vals + mids), torch.randn(20000, generator=g) * torch.logspace(-4, 2.5, 20000)])
    x = torch.cat([x, -x]).clamp(-limit, limit)
    assert torch.equal(round_to_fp(x, e, m), x.to(dt).float())


def test_quantize_keeps_dtype_and_shape_per_token():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    q = quantize(x, QuantSpec(bits=4, granularity="per_token"))
    assert q.dtype == torch.float64 and q.shape == x.shape
    for row, qrow in zip(x.reshape(-1, 8), q.reshape(-1, 8)):
        s = float(row.float().abs().max()) / 7
        assert qrow.tolist() == pytest.approx([max(-7, min(7, round(float(v) / s))) * s for v in row.float()],
                                              rel=1e-6, abs=1e-7)


def test_model_quantizers_placement():
    from scalinglaws.train.model import GPT, shape_for
    model = GPT(shape_for(None, n_layer=2, d_model=64, n_head=4), 16)
    w4, a4, a8 = QuantSpec(bits=4, granularity="per_channel"), QuantSpec(bits=4, granularity="per_token"), \
        QuantSpec(bits=8, granularity="per_token")
    model.configure_quant(w4, a4, kv=a8, fc2_a=a8)
    idx = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    fp = model(idx)
    assert all(not m.enabled for m in model.modules() if hasattr(m, "w_spec"))
    model.enable_quant(True)
    assert not torch.equal(model(idx), fp)
    b = model.blocks[0]
    assert b.mlp.fc2.a_spec == a8 and b.mlp.fc1.a_spec == a4 and b.attn.qkv.w_spec == w4 and b.attn.kv_enabled
    assert not model.head.enabled and model.head.w_spec is None        # lm head stays FP
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(1))
    want = quantize(x, a4) @ quantize(b.attn.out.weight, w4).T
    assert torch.allclose(b.attn.out(x), want, atol=1e-6)
    model.enable_quant(False)
    assert torch.equal(model(idx), fp)
