"""The standard formats (OCP FP8, OCP MX, NVFP4) against their specifications' value tables.

Every expected value here is written by hand from the specification (OCP 8-bit Floating
Point v1.0, OCP Microscaling Formats v1.0, NVIDIA's NVFP4), or read from an independent
implementation: torch's float8 / float8_e8m0fnu dtypes, and torchao's reference MX and
NVFP4 quantizers when torchao is installed.
"""

import importlib.util
import math

import pytest

torch = pytest.importorskip("torch")

from scalinglaws.data.errors import InputError  # noqa: E402
from scalinglaws.train.data import Corpus  # noqa: E402
from scalinglaws.train.loop import TrainConfig, append_rows, check_run_table, plan, read_rows, train  # noqa: E402
from scalinglaws.train.quant import NAMED, QuantSpec, e8m0_scale, fake_quant, quantize, round_to_fp  # noqa: E402

# Non-negative values of the element formats, written out by hand (OCP MX v1.0, Sec. 5.3).
E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]                          # bias 1, no inf/NaN codes
E3M2 = [0.0, 0.0625, 0.125, 0.1875,                                       # bias 3; subnormals 2**-2 * m/4
        0.25, 0.3125, 0.375, 0.4375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75,
        2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 14.0, 16.0, 20.0, 24.0, 28.0]
E2M3 = [0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875,                 # bias 1; subnormals m/8
        1.0, 1.125, 1.25, 1.375, 1.5, 1.625, 1.75, 1.875, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75,
        4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5]
ELEMENTS = {"mxfp4": E2M1, "nvfp4": E2M1, "mxfp6_e3m2": E3M2, "mxfp6_e2m3": E2M3}

# emax_elem of OCP MX v1.0 Table 1: the exponent of each element format's largest normal.
EMAX = {"mxfp8": 8, "mxfp8_e5m2": 15, "mxfp6_e3m2": 4, "mxfp6_e2m3": 2, "mxfp4": 2}
MAXIMA = {"e4m3fn": 448.0, "e5m2": 57344.0, "mxfp8": 448.0, "mxfp8_e5m2": 57344.0, "mxfp6_e3m2": 28.0,
          "mxfp6_e2m3": 7.5, "mxfp4": 6.0, "nvfp4": 6.0}
BITS = {"e4m3fn": (8, 4, 3), "e5m2": (8, 5, 2), "mxfp8": (8, 4, 3), "mxfp8_e5m2": (8, 5, 2),
        "mxfp6_e3m2": (6, 3, 2), "mxfp6_e2m3": (6, 2, 3), "mxfp4": (4, 2, 1), "nvfp4": (4, 2, 1)}
BLOCK = {"mxfp8": 32, "mxfp8_e5m2": 32, "mxfp6_e3m2": 32, "mxfp6_e2m3": 32, "mxfp4": 32, "nvfp4": 16}

TINY = dict(n_layer=1, d_model=32, n_head=2, seq_len=64, batch_size=16, val_tokens=4096, lr=3e-3, threads=1)


def spec(name, **kw):
    return QuantSpec.named(name, **kw) if name in BLOCK else QuantSpec.named(name, granularity="per_channel", **kw)


def float8_table(dtype_name):
    """Every finite non-negative value of a torch float8 dtype, from its 256 bit patterns."""
    dt = getattr(torch, dtype_name, None)
    if dt is None:
        pytest.skip(f"torch has no {dtype_name}")
    v = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(dt).float()
    return sorted({x for x in v.tolist() if math.isfinite(x) and x >= 0})


def grid_of(e, m, top):
    """The values round_to_fp produces over a dense sweep of [-1.5 top, 1.5 top]."""
    x = torch.linspace(-1.5 * top, 1.5 * top, 400_001)
    return sorted(set(round_to_fp(x, e, m, top).tolist()))


def test_format_table_matches_the_standards():
    for name, f in NAMED.items():
        assert (f.bits, f.exp_bits, f.man_bits) == BITS[name] and f.top == MAXIMA[name]
        assert f.block == BLOCK.get(name) and (name not in EMAX or f.emax == EMAX[name])


@pytest.mark.parametrize("e,m,table", [(2, 1, E2M1), (3, 2, E3M2), (2, 3, E2M3)])
def test_fp6_fp4_element_grids_by_hand(e, m, table):
    top = table[-1]
    assert grid_of(e, m, top) == sorted({-v for v in table} | set(table))
    assert len(table) == 2 ** (e + m)                               # every code a finite number
    vals = torch.tensor(table + [-v for v in table])
    assert torch.equal(round_to_fp(vals, e, m, top), vals)


def test_e4m3fn_values():
    """OCP E4M3: 2**-9 steps of subnormals up to 7 * 2**-9, 2**-6 smallest normal, 448 largest;
    S.1111.111 is NaN, so 127 non-negative values; torch's float8_e4m3fn agrees."""
    table = float8_table("float8_e4m3fn")
    assert len(table) == 127 and table[:9] == [0.0] + [k * 2.0 ** -9 for k in range(1, 8)] + [2.0 ** -6]
    assert table[-7:] == [256.0, 288.0, 320.0, 352.0, 384.0, 416.0, 448.0]
    assert grid_of(4, 3, 448.0)[-7:] == [256.0, 288.0, 320.0, 352.0, 384.0, 416.0, 448.0]
    x = torch.tensor(table + [-v for v in table])
    assert torch.equal(round_to_fp(x, 4, 3, 448.0), x)
    assert round_to_fp(torch.tensor([464.0, 470.0, 480.0, 1e9, -1e9]), 4, 3, 448.0).tolist() == [448.0] * 4 + [-448.0]


def test_e5m2_values():
    """OCP E5M2: IEEE-like, bias 15, subnormals 2**-16 .. 3 * 2**-16, 2**-14 smallest normal,
    57344 = 1.75 * 2**15 largest finite (exponent 31 is inf/NaN): 124 non-negative values."""
    table = float8_table("float8_e5m2")
    assert len(table) == 124 and table[:5] == [0.0, 2.0 ** -16, 2.0 ** -15, 3 * 2.0 ** -16, 2.0 ** -14]
    assert table[-4:] == [32768.0, 40960.0, 49152.0, 57344.0]
    x = torch.tensor(table + [-v for v in table])
    assert torch.equal(round_to_fp(x, 5, 2, 57344.0), x)
    # IEEE rounding would overflow 61440 and above to inf; the quantizer saturates
    assert round_to_fp(torch.tensor([61440.0, 1e30, -7e4]), 5, 2, 57344.0).tolist() == [57344.0, 57344.0, -57344.0]


@pytest.mark.parametrize("e,m,top,dtype", [(4, 3, 448.0, "float8_e4m3fn"), (5, 2, 57344.0, "float8_e5m2")])
def test_fp8_rounding_and_ties_match_torch_casts(e, m, top, dtype):
    table = float8_table(dtype)
    mids = [(a + b) / 2 for a, b in zip(table, table[1:])]             # every tie
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.tensor(table + mids), torch.randn(20000, generator=g) * torch.logspace(-6, 4.5, 20000)])
    x = torch.cat([x, -x]).clamp(-top, top)
    assert torch.equal(round_to_fp(x, e, m, top), x.to(getattr(torch, dtype)).float())


@pytest.mark.parametrize("name,dtype", [("e4m3fn", "float8_e4m3fn"), ("e5m2", "float8_e5m2")])
def test_fp8_absmax_scales(name, dtype):
    """Per channel: scale = row absmax / max, elements cast to float8 and scaled back."""
    float8_table(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 64, generator=g) * torch.logspace(-2, 2, 8).unsqueeze(1)
    s = x.abs().amax(1, keepdim=True) / MAXIMA[name]
    want = (x / s).to(getattr(torch, dtype)).float() * s
    assert torch.equal(quantize(x, spec(name)), want)
    q = quantize(x, QuantSpec.named(name, granularity="per_group", group_size=16))
    assert torch.equal(q[:, 16:32], quantize(x[:, 16:32].contiguous(), spec(name)))   # a group is a channel


def test_round_to_nearest_even_ties():
    cases = {  # (e, m, top): [(x, rounded)], ties between two neighbours go to the even code
        (2, 1, 6.0): [(0.25, 0.0), (0.75, 1.0), (1.25, 1.0), (1.75, 2.0), (2.5, 2.0), (3.5, 4.0), (5.0, 4.0),
                      (-5.0, -4.0), (6.5, 6.0)],
        (4, 3, 448.0): [(2.0 ** -10, 0.0), (3 * 2.0 ** -10, 2.0 ** -8), (1.0625, 1.0), (1.1875, 1.25), (432.0, 448.0),
                        (400.0, 384.0)],
        (5, 2, 57344.0): [(1.125, 1.0), (1.375, 1.5), (2.0 ** -17, 0.0), (3 * 2.0 ** -17, 2.0 ** -15)],
        (3, 2, 28.0): [(0.03125, 0.0), (0.09375, 0.125), (26.0, 24.0), (30.0, 28.0)],
        (2, 3, 7.5): [(0.0625, 0.0), (0.1875, 0.25), (1.0625, 1.0), (7.25, 7.0), (7.75, 7.5)],
    }
    for (e, m, top), pairs in cases.items():
        x = torch.tensor([p[0] for p in pairs])
        assert round_to_fp(x, e, m, top).tolist() == [p[1] for p in pairs], (e, m)


def test_e8m0_scale_is_a_power_of_two():
    table = set(2.0 ** k for k in range(-127, 128))                  # E8M0: 2**-127 .. 2**127 (255 is NaN)
    if hasattr(torch, "float8_e8m0fnu"):                              # torch's E8M0 agrees
        e8 = torch.arange(255, dtype=torch.int32).to(torch.uint8).view(torch.float8_e8m0fnu).float()
        assert set(e8.tolist()) == table
    g = torch.Generator().manual_seed(2)
    amax = (torch.rand(5000, generator=g) * torch.logspace(-30, 30, 5000)).unsqueeze(1)
    for emax in (2, 4, 8, 15):
        got = e8m0_scale(amax, emax).flatten().tolist()
        want = [2.0 ** (math.floor(math.log2(a)) - emax) for a in amax.flatten().tolist()]
        assert got == want and set(got) <= table
    edges = torch.tensor([[0.0], [2.0 ** -126], [1.5 * 2.0 ** 127]])
    assert e8m0_scale(edges, 2).flatten().tolist() == [2.0 ** -127, 2.0 ** -127, 2.0 ** 125]   # clamped to E8M0


def element_table(name):
    """The non-negative element values of an MX format: the lists above, or torch's float8 dtypes (FP8)."""
    if name in ELEMENTS:
        return ELEMENTS[name]
    return float8_table("float8_e4m3fn" if BITS[name][1] == 4 else "float8_e5m2")


def nearest_in(table, v):
    """``v`` rounded to the nearest of ``table`` (sorted, non-negative, index = code) and its negatives:
    ties to the even code, saturating at the largest value."""
    t = torch.tensor(table, dtype=torch.float64)
    a = v.double().abs().clamp(max=t[-1].item())
    i = torch.searchsorted(t, a).clamp(1, len(t) - 1)
    lo, hi = t[i - 1], t[i]
    up = (hi - a < a - lo) | ((hi - a == a - lo) & (i % 2 == 0))
    return (torch.sign(v.double()) * torch.where(up, hi, lo)).float()


@pytest.mark.parametrize("name", list(EMAX))
def test_mx_blocks_of_32_share_one_scale(name):
    """X = 2**(floor(log2 amax) - emax) per block of 32; elements x / X rounded to the element grid."""
    e, m = BITS[name][1:]
    top = MAXIMA[name]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 128, generator=g) * torch.logspace(-3, 3, 16).repeat_interleave(32).view(4, 128)
    table = element_table(name)
    finite = {"mxfp8": 127, "mxfp8_e5m2": 124}.get(name, 2 ** (e + m))   # FP8: less the NaN (and inf) codes
    assert table[-1] == top and len(table) == finite
    q = quantize(x, spec(name))
    for row, qrow in zip(x.view(-1, 32), q.view(-1, 32)):
        X = 2.0 ** (math.floor(math.log2(row.abs().max().item())) - EMAX[name])
        assert torch.equal(qrow, nearest_in(table, row / X) * X)
        codes = qrow / X                                              # on the element grid
        assert set(codes.abs().tolist()) <= set(table)
    assert torch.equal(q[:, 32:64], quantize(x[:, 32:64].contiguous(), spec(name)))


def test_mxfp4_block_by_hand():
    """amax 7.9: X = 2**(2 - 2) = 1, so 7 and 7.9 saturate to 6; ties go to even codes.
    amax 0.75: X = 2**(-1 - 2) = 1/8, and 0.1 / X = 0.8 rounds to 1, giving 0.125."""
    a = [6.0, 7.0, 7.9, 0.25, 0.75, 2.5, 5.0, 0.1, -3.5, -0.3] + [0.0] * 22
    b = [0.75, 0.1, 0.3, -0.0625, 0.5] + [0.0] * 27
    q = quantize(torch.tensor([a, b]), QuantSpec.named("mxfp4"))
    assert q[0, :10].tolist() == [6.0, 6.0, 6.0, 0.0, 1.0, 2.0, 4.0, 0.0, -4.0, -0.5]
    assert q[1, :5].tolist() == [0.75, 0.125, 0.25, -0.0625, 0.5]


def test_mxfp8_block_by_hand():
    """MXFP8 (E4M3 elements, emax 8): amax 448 -> X = 1; 500 -> X = 1 and saturates to 448; 512 -> X = 2."""
    x = torch.zeros(3, 32)
    x[0, :2] = torch.tensor([448.0, 1.0625])
    x[1, :2] = torch.tensor([500.0, 3.0])
    x[2, :2] = torch.tensor([512.0, 1.0625])
    q = quantize(x, QuantSpec.named("mxfp8"))
    assert q[:, :2].tolist() == [[448.0, 1.0], [448.0, 3.0], [512.0, 1.0]]


def test_nvfp4_two_level_scales_by_hand():
    """Tensor amax 2688 = 6 * 448 makes the FP32 per-tensor scale 1; each block of 16 gets
    E4M3(amax_block / 6): 448; 1; E4M3(0.1) = 13 * 2**-7; and the subnormal 2**-9."""
    x = torch.zeros(1, 80)
    x[0, 0:3] = torch.tensor([2688.0, 1000.0, -100.0])               # s_b 448: 1000/448 = 2.23 -> 2
    x[0, 16:20] = torch.tensor([6.0, 0.25, 0.75, 5.0])                # s_b 1: the E2M1 grid itself
    x[0, 32:35] = torch.tensor([0.6, 0.3, 0.05])                      # s_b 0.1015625
    x[0, 48:50] = torch.tensor([6 * 2.0 ** -9, 2.0 ** -9])            # s_b 2**-9 (E4M3 subnormal)
    q = quantize(x, QuantSpec.named("nvfp4"))[0]
    assert q[0:3].tolist() == [2688.0, 896.0, 0.0]                    # -100/448 = -0.22 -> -0
    assert q[16:20].tolist() == [6.0, 0.0, 1.0, 4.0]
    s = 13 * 2.0 ** -7
    assert q[32:35].tolist() == [6 * s, 3 * s, 0.5 * s]
    assert q[48:50].tolist() == [6 * 2.0 ** -9, 2.0 ** -9]
    assert q[64:].abs().sum() == 0
    # the per-tensor scale: the whole tensor times 2**k quantizes to the result times 2**k
    assert torch.equal(quantize(x * 2.0 ** -20, QuantSpec.named("nvfp4"))[0], q * 2.0 ** -20)
    # blocks of 16: a block's result depends on its own amax (and the tensor's), not its neighbours'
    y = x.clone()
    y[0, 40] = 0.59                                                   # same block amax 0.6
    assert torch.equal(quantize(y, QuantSpec.named("nvfp4"))[0, 16:32], q[16:32])


@pytest.mark.parametrize("name", list(NAMED))
def test_straight_through_gradients(name):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 64, generator=g, requires_grad=True)
    y = fake_quant(x, spec(name))
    assert not torch.equal(y, x)
    w = torch.arange(64.0)
    (y * w).sum().backward()
    assert torch.equal(x.grad, w.expand(3, 64))


def test_stochastic_rounding_is_unbiased_and_seeded():
    n = 200_000
    x = torch.full((n,), 0.3)                                         # E2M1 neighbours 0 and 0.5
    noise = torch.rand(n, generator=torch.Generator().manual_seed(5))
    q = round_to_fp(x, 2, 1, 6.0, noise)
    assert set(q.tolist()) == {0.0, 0.5}
    assert abs(q.mean().item() - 0.3) < 4 * math.sqrt(0.25 * 0.6 * 0.4 / n)       # P(0.5) = 0.6
    neg = round_to_fp(-x, 2, 1, 6.0, noise)
    assert set(neg.tolist()) == {-0.0, -0.5} and abs(neg.mean().item() + 0.3) < 0.005
    grid = torch.tensor(E2M1 + [-v for v in E2M1]).repeat(100)
    assert torch.equal(round_to_fp(grid, 2, 1, 6.0, torch.rand(grid.shape)), grid)  # on the grid: unchanged
    top = torch.full((10000,), 6.0 - 1e-6)
    assert round_to_fp(top, 2, 1, 6.0, torch.rand(10000)).max() == 6.0          # never past the largest


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4"])
def test_stochastic_rounding_of_fp4_formats(name):
    g = torch.Generator().manual_seed(6)
    x = (torch.rand(4, 64, generator=g) * 2 - 1) * 6
    x[:, ::16] = 6.0                     # every block's amax 6: scale 1, nothing saturates (no bias from that)
    sr = QuantSpec.named(name, stochastic=True)
    assert sr.label == f"{name}/sr"
    a = quantize(x, sr, torch.Generator().manual_seed(7))
    assert torch.equal(a, quantize(x, sr, torch.Generator().manual_seed(7)))      # seeded
    assert not torch.equal(a, quantize(x, sr, torch.Generator().manual_seed(8)))
    assert torch.equal(quantize(x, sr), quantize(x, QuantSpec.named(name)))        # no generator: nearest
    # many draws average to x (the block scales do not depend on the rounding)
    rng = torch.Generator().manual_seed(9)
    mean = sum(quantize(x, sr, rng) for _ in range(2000)) / 2000
    assert (mean - x).abs().max() < 0.15 < (quantize(x, QuantSpec.named(name)) - x).abs().max()
    xg = x.clone().requires_grad_()
    y = fake_quant(xg, sr, rng)
    w = torch.arange(64.0)
    (y * w).sum().backward()
    assert torch.equal(xg.grad, w.expand(4, 64))       # straight through: d(sum w y)/dx = w, saturated or not


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None,
                    reason="torchao is not installed (pip install -e \".[torchao]\") for the bit-for-bit comparison")
def test_bit_for_bit_with_torchao():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:                             # their modules as of torchao 0.18
            from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3, DTYPE_FP6_E3M2
            from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
            from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale
        except ImportError as exc:
            pytest.skip(f"this torchao has no reference MX/NVFP4 quantizers where expected ({exc}); "
                        "pip install -e \".[torchao]\"")
    g = torch.Generator().manual_seed(10)
    x = torch.randn(64, 256, generator=g) * torch.logspace(-4, 4, 256)
    mids = torch.tensor(E2M1[:-1]) + torch.diff(torch.tensor(E2M1)) / 2                 # E2M1 ties at X = 1
    x[0, :32] = torch.cat([mids, -mids, torch.tensor([6.0, 7.0]), torch.zeros(16)])
    dtypes = {"mxfp8": torch.float8_e4m3fn, "mxfp8_e5m2": torch.float8_e5m2, "mxfp6_e3m2": DTYPE_FP6_E3M2,
              "mxfp6_e2m3": DTYPE_FP6_E2M3, "mxfp4": torch.float4_e2m1fn_x2}
    for name, dt in dtypes.items():
        scale, data = to_mx(x, dt, 32)
        assert torch.equal(quantize(x, QuantSpec.named(name)), to_dtype(data, scale, dt, 32, torch.float32)), name
    # NVFP4: torchao floors the block scales at E4M3's smallest normal 2**-6, here at its smallest
    # subnormal 2**-9; on blocks whose amax is above 2**-6 * 6 * s_t the two agree bit for bit
    y = torch.randn(64, 256, generator=g) * torch.logspace(-1.5, 1.5, 256)
    y[0, :16] = torch.cat([mids, -mids, torch.tensor([6.0, 7.0])]) * 10
    t = NVFP4Tensor.to_nvfp4(y, per_tensor_scale=per_tensor_amax_to_scale(y.abs().amax()))
    assert torch.equal(quantize(y, QuantSpec.named("nvfp4")), t.dequantize(torch.float32))


def test_spec_checks():
    with pytest.raises(InputError, match="block of 32"):
        QuantSpec(bits=4, format="mxfp4", exp_bits=2, man_bits=1, granularity="per_group", group_size=16)
    with pytest.raises(InputError, match="E4M3"):
        QuantSpec(bits=8, format="e4m3fn", exp_bits=5, man_bits=2)
    with pytest.raises(InputError, match="not int"):
        QuantSpec(bits=4, stochastic=True)
    with pytest.raises(InputError, match="choose from"):
        QuantSpec.named("fp8")
    with pytest.raises(InputError, match="does not divide"):
        quantize(torch.ones(2, 16), QuantSpec.named("mxfp4"))      # never a block cut to 16


# ----------------------------------------------------------------------------- options and rows

def test_plan_of_each_format():
    for name in NAMED:
        p = plan(TrainConfig(tokens=1e4, **TINY, format=name))
        bits, e, m = BITS[name]
        assert p.w.bits == p.a.bits == bits and (p.w.exp_bits, p.w.man_bits) == (e, m) and p.kv is None
        if name in BLOCK:
            assert p.w.granularity == p.a.granularity == "per_group" and p.w.group_size == BLOCK[name]
        else:
            assert (p.w.granularity, p.a.granularity) == ("per_channel", "per_token")
    p = plan(TrainConfig(tokens=1e4, **TINY, format="e4m3fn", group_size=16, w_bits=8))
    assert p.w.group_size == 16 and p.a is None
    assert plan(TrainConfig(tokens=1e4, **TINY, format="nvfp4", stochastic_rounding=True)).w.stochastic


def test_old_hashes_unchanged_and_new_option_hashed():
    """The configs of data/trainer_sweep.toml hash to the config_hash the older trainer wrote."""
    import pathlib
    from scalinglaws.train.sweep import load_sweep
    root = pathlib.Path(__file__).resolve().parents[1] / "data"
    recorded = {r["config_hash"] for r in read_rows(str(root / "trainer_runs.csv"))[1]}
    assert {c.hash() for c in load_sweep(str(root / "trainer_sweep.toml")).configs} == recorded
    a = TrainConfig(tokens=1e6, params=1e5, format="mxfp4")
    assert a.hash() != TrainConfig(tokens=1e6, params=1e5, format="mxfp4", stochastic_rounding=True).hash()


@pytest.mark.parametrize("opts, words", [
    (dict(format="fp8"), "format 'fp8': choose int, fp, e4m3fn"),
    (dict(format="mxfp4", group_size=16), "format mxfp4 shares one scale per block of 32"),
    (dict(format="mxfp4", w_granularity="per_channel"), "leave w_granularity at auto"),
    (dict(format="e4m3fn", exp_bits=4), "exp_bits is set by format e4m3fn"),
    (dict(format="nvfp4", w_bits=8), "w_bits 8 does not match format nvfp4 (E2M1, 4 bits)"),
    (dict(format="mxfp4", is_symmetric=False), "integer formats only"),
    (dict(stochastic_rounding=True, w_bits=4), "stochastic_rounding needs a floating-point format"),
    (dict(format="mxfp8", kv_bits=8), "head size to be a multiple of its block of 32, got 16 (drop kv_bits)"),
    (dict(format="mxfp6_e2m3", d_model=48, n_head=3), "layer width to be a multiple of its block of 32, got 48"),
])
def test_bad_format_options(opts, words):
    with pytest.raises(InputError) as info:
        plan(TrainConfig(**{"tokens": 1e4, **TINY, **opts}))
    assert words in str(info.value)


def test_cli_bad_format_options_one_line(cli):
    code, out, err = cli("train", "--params", "50K", "--tokens", "1M", "--format", "mxfp4", "--group-size", "16")
    assert code == 2 and "--format mxfp4" in err and "--group-size" in err and err.count("\n") == 1
    code, out, err = cli("train", "--params", "50K", "--tokens", "1M", "--w-bits", "4", "--stochastic-rounding")
    assert code == 2 and "--stochastic-rounding needs" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def corpus():
    return Corpus.load(None)


def test_tiny_run_of_each_format_appends_a_row(corpus, tmp_path):
    path = str(tmp_path / "runs.csv")
    for name in NAMED:
        cfg = TrainConfig(tokens=2048, **TINY, format=name)
        rows = train(cfg, corpus=corpus)
        assert len(rows) == 1 and rows[0]["diverged"] == 0 and math.isfinite(rows[0]["loss"])
        append_rows(path, rows)
    check_run_table(path)
    header, got = read_rows(path)
    assert [r["format"] for r in got] == list(NAMED) and len({r["config_hash"] for r in got}) == len(NAMED)
    for r in got:
        bits, e, m = BITS[r["format"]]
        assert (r["w_bits"], r["a_bits"], r["exp_bits"], r["man_bits"]) == (str(bits), str(bits), str(e), str(m))
        assert r["group_size"] == str(BLOCK.get(r["format"], "")) and r["kv_bits"] == ""
        assert r["w_granularity"] == ("per_group" if r["format"] in BLOCK else "per_channel")
        assert r["stochastic_rounding"] == "" and r["steps"] == "2"


def test_stochastic_rounding_run(corpus, cli, tmp_path):
    base = dict(tokens=4096.0, **TINY, format="mxfp4")            # float, as the command line gives it
    sr = train(TrainConfig(**base, stochastic_rounding=True), corpus=corpus)[0]
    assert sr["stochastic_rounding"] == 1 and sr["diverged"] == 0
    assert sr["loss"] == train(TrainConfig(**base, stochastic_rounding=True), corpus=corpus)[0]["loss"]   # seeded
    assert sr["loss"] != train(TrainConfig(**base), corpus=corpus)[0]["loss"]
    out = tmp_path / "runs.csv"
    code, stdout, err = cli("train", "--n-layer", 1, "--d-model", 32, "--n-head", 2, "--seq-len", 64,
                            "--batch-size", 16, "--val-tokens", 4096, "--lr", 3e-3, "--threads", 1,
                            "--tokens", 4096, "--format", "mxfp4", "--stochastic-rounding", "--quiet", "--out", out)
    assert code == 0 and "MXFP4 SR" in stdout
    (row,) = read_rows(str(out))[1]
    assert row["config_hash"] == TrainConfig(**base, stochastic_rounding=True).hash()
    assert row["format"] == "mxfp4" and row["stochastic_rounding"] == "1" and row["group_size"] == "32"
    assert float(row["loss"]) == pytest.approx(sr["loss"], rel=1e-5)           # 6 digits in the CSV


def test_stochastic_rounding_runs_are_refused_by_an_older_table_before_training(cli, tmp_path, monkeypatch):
    """data/trainer_runs.csv has no stochastic_rounding column and keeps its header for older
    trainers: a run with stochastic rounding would lose what tells it from the run without, so
    the command refuses it in one line before any step, and the table stays byte for byte."""
    import pathlib
    import shutil

    from scalinglaws.train import loop
    from scalinglaws.train.sweep import run_sweep
    out = tmp_path / "trainer_runs.csv"
    shutil.copy(pathlib.Path(__file__).resolve().parents[1] / "data" / "trainer_runs.csv", out)
    before = out.read_bytes()
    assert "stochastic_rounding" not in before.decode().splitlines()[0].split(",")

    def refuse(*a, **k):
        raise AssertionError("trained before the table was checked")
    monkeypatch.setattr(loop, "train", refuse)
    code, stdout, err = cli("train", "--n-layer", 1, "--d-model", 32, "--n-head", 2, "--seq-len", 64,
                            "--tokens", 4096, "--format", "mxfp4", "--stochastic-rounding", "--quiet", "--out", out)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(out) in err and "no column stochastic_rounding" in err and "new table" in err
    with pytest.raises(InputError, match="no column stochastic_rounding"):
        run_sweep([TrainConfig(tokens=4096, **TINY, format="mxfp4", stochastic_rounding=True)], str(out))
    assert out.read_bytes() == before


@pytest.mark.slow
def test_stochastic_rounding_under_torch_compile_gives_the_eager_loss(corpus, monkeypatch):
    """CUDA compiles by default; stochastic rounding's generator cannot be traced, so the model
    compiles with graph breaks (here on the CPU through aot_eager) and trains as in eager mode."""
    from scalinglaws.train import loop
    cfg = TrainConfig(tokens=8192, **TINY, format="mxfp4", stochastic_rounding=True)
    (eager,) = train(cfg, corpus=corpus)
    real, calls = torch.compile, []

    def compile_(model, **kw):
        calls.append(model)
        return real(model, backend="aot_eager")
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", compile_)
    monkeypatch.setattr(loop, "use_compile", lambda device, flag: True)
    (compiled,) = train(cfg, corpus=corpus)
    assert len(calls) == 1 and compiled["loss"] == eager["loss"] and compiled["stochastic_rounding"] == 1
