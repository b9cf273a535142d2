"""Capybara: the floating-point quantization training law of Sun et al. 2025.

Sun, Li, Xie, et al. 2025, "Scaling Laws for Floating-Point Quantization Training"
(ICML 2025, arXiv:2501.02423), Eq. (26) / Table 2 (Eq. (1) and (18) are the same law)::

    L(N, D, E, M, B) = n / N^alpha + d / D^beta + epsilon
                       + (D^beta / N^alpha) * log2(B) / (gamma (E + 0.5)^delta (M + 0.5)^nu)

for training with a floating-point format of E exponent bits and M mantissa bits
(``exp_bits``, ``man_bits``; total P = E + M + 1 with the sign bit) and B elements per
scaling factor (``group_size``, the block size).  The last term is the low-precision
penalty: it grows with data D (the "knowledge density" D^beta / N^alpha), shrinks with
more exponent and mantissa bits, and grows with the block size.

Parameters
----------
n, alpha : scale and exponent of the finite-model term n / N^alpha.
d, beta : scale and exponent of the finite-data term d / D^beta.
epsilon : irreducible loss (nats/token).
gamma : inverse scale of the precision penalty.
delta : weight of the exponent bits, (E + 0.5)^delta.
nu : weight of the mantissa bits, (M + 0.5)^nu.
xi, omega, eta : only in a fit on runs with per-tensor scaling (below): log2 B_tensor =
    N^omega / (xi D^eta).

Columns and scaling
-------------------
``N``, ``D``, ``loss``, ``exp_bits``, ``man_bits`` on every row (BF16 is E8M7), and how each
row shares its scaling factors, read from ``group_size`` and ``scale_span``:

=================================  ==========================================================
``group_size = B``                 block-wise: one scale per B elements, log2 B in the law
                                   (B = 1, a scale per element, gives log2 B = 0: no penalty).
``scale_span = 1``, no group size  channel-wise (per-channel weights, per-token activations):
                                   log2 B = 13.1567, a constant (Sec. 3.6).
``scale_span = 2``, no group size  tensor-wise: log2 B = N^omega / (xi D^eta), fitted (Sec. 3.6).
=================================  ==========================================================

``scale_span = 0`` (or an empty cell) is the block-wise row.  Why not B = the number of
elements sharing the scale (the channel's width d_in, or b d_in for the tensor), as
Sec. 3.1 writes for its "unified representation"?  Because the paper's own fits do not
use it: Sec. 3.6 derives, from its channel-wise runs through Eq. (15), "this equivalent
block size of the channel-wise strategy is approximately a constant: log2 B_channel ~
13.1567, which is natural since the batch size of gradient is (mostly) much larger than
the hidden size", so log2 d_in (9 to 10.6 for the paper's widths 512 to 1536, Table 1)
would understate a channel-wise penalty by 20 to 32%; and for tensor-wise scaling "this
size follows a power-law relationship: log2 B_tensor ~ N^omega / (xi D^eta)" (Figure 12).
Most of the paper's runs (Table 3, column B = "channel") are channel-wise.  A row with
both a group size and ``scale_span`` 1 or 2 is refused as ambiguous, and so is a row with
neither; the message names the row (and, for a table from the bundled trainer, what its
``w_granularity`` says the row is).  The trainer writes its scaling only as that text
column (``per_group``, ``per_channel``, ``per_tensor``): add ``scale_span`` = 1 for its
per-channel rows and 2 for per-tensor ones.

The paper publishes no values of xi, omega and eta (Sec. 3.6 gives the form and the fitted
picture only), so they are fitted here, and only on a table with ``scale_span = 2`` rows
(the law then has 11 parameters; ``fit.json`` keeps them and predictions use them).  The
preset has none: predicting a per-tensor row from it is refused, naming the constants.
Which side of the fraction xi sits on cannot be read with certainty from the PDF's text
layer (the fraction's numerator is N^omega, its denominator xi D^eta); as xi > 0 and
omega, eta are fitted with either sign, either reading gives the same family of curves.

Preset ``sun2025`` (Table 2): n=69.2343, alpha=0.2368, d=68973.0621, beta=0.5162,
epsilon=1.9061, gamma=11334.5197, delta=3.1926, nu=2.9543, fitted on the 358 runs of
Table 3 (most of them channel-wise; Sec. 4.1 does not restate which log2 B those rows
took, and Sec. 3.6's 13.1567 is the only one the paper gives).  It gives the best formats
of Figure 5 (E1M0, E1M1, E2M1, E2M2, E3M2, ..., E4M3 for 8 bits, ..., E8M7 for 16), and
critical data sizes of about 0.39T, 27.3T and 1730T tokens for E2M1, E4M3 and E8M7 at
N = 1e9 and B = 128 (Sec. 4.3: "1730T", "27T", "0.4T"; the text does not state B, and 128,
the setting of Figures 7 and 14, is the only power of two that gives all three).

Planners
--------
Where a planner takes the scaling, it is ``--group-size B`` (block-wise) or
``--scale-span 1`` (channel-wise) or ``--scale-span 2`` (tensor-wise, with a fit that has
xi, omega, eta); the fp-format and precision planners default to B = 128, the paper's
setting of Figures 7 and 14.

``fp-format --bits P [--N --D --group-size | --scale-span]``: the integer split E + M = P - 1
(E >= 1: a floating-point format has at least one exponent bit) that maximises
``(E + 0.5)^delta (M + 0.5)^nu``, i.e. minimises the penalty; the ranking depends on
delta and nu only (Sec. 4.2; the continuous optimum is Eq. 19, M = nu P / (delta + nu) - 0.5).
With N and D the table also gives each format's loss.

``data --N --exp-bits --man-bits (--group-size | --scale-span)``: the critical data size
where dL/dD = 0 (Eq. 21, Appendix D),
``D_crit = (d gamma N^alpha (E+0.5)^delta (M+0.5)^nu / log2 B)^(1/(2 beta))``;
beyond it more tokens raise the loss.  Per-tensor (log2 B = N^omega / (xi D^eta) moves with
D), the same derivative gives ``D_crit^(2 beta - eta) = beta d xi gamma f N^(alpha - omega) /
(beta - eta)`` with f = (E+0.5)^delta (M+0.5)^nu, and no critical size when eta >= beta.

``precision --flops C [--D D | --N N] [--group-size B | --scale-span 1]``: the training
precision under the cost model C = k P N D with the paper's k = 6/16 (Sec. 4.4, Eq. 42 with
the scaling-factor cost b = 0, as in the paper's derivations).  For each total width
P = 2..16 it takes the best E/M split and evaluates the law:

* alone (joint): the N (and D = C / (k P N)) that minimises the loss (convex in log N, so
  the optimum is unique); the width of lowest loss is ``bits``;
* with ``--D`` (fixed data, Sec. 4.4 / Appendix E.1): N = C / (k P D);
* with ``--N`` (fixed model size, Appendix E.2): D = C / (k P N).

``P_opt`` is the paper's closed form for the same question, a continuous P with the
continuous optimal layout (gamma_rho = gamma delta^delta nu^nu / (delta+nu)^(delta+nu),
Eq. 34): fixed D, Eq. 47 (Eq. 22), ``P^(delta+nu) = gamma_D D^beta log2 B`` with
gamma_D = (delta + nu - alpha) / (n alpha gamma_rho) (Eq. 46); fixed N, Eq. 52 (Eq. 23),
``P^(delta+nu+2 beta) = gamma_N (C/k)^(2 beta) N^-(alpha+2 beta) log2 B`` with gamma_N =
(beta + delta + nu) / (d beta gamma_rho) (Eq. 51); joint, Eq. 54 (Eq. 25),
``P^((delta+nu)(alpha+beta)/beta + alpha) = (gamma_D log2 B)^((alpha+beta)/beta)
(delta+nu-alpha)/(delta+nu+beta) (d beta)/(n alpha) (C/k)^alpha``.  With the preset and
B = 128 these give 4.27 bits at D = 0.1T and 7.62 at D = 100T (Figure 14: "from 0.1T to
100T, the optimal precision value consistently falls within the range of 4 to 8 bits"),
and 4.19 at C = 1e21 and 7.58 at C = 1e31 FLOPs (Sec. 4.4: "(10^21, 10^31) ... between 4
and 8 bits"); the integer ``bits`` there are 4 and 8.  Per-tensor scaling is refused
here (those closed forms hold log2 B fixed, and a per-tensor log2 B moves with N and D).
"""

from __future__ import annotations

import math

import numpy as np

from scalinglaws.data.columns import Columns, as_columns
from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Option, Param, Planner, Preset, View, exps

_DEFAULT_BLOCK = 128
_COST = 6.0 / 16.0  # k of C = k P N D (Sec. 4.4, Figure 7: k = 6/16)

#: log2 of the channel-wise equivalent block size (Sun et al. 2025, Sec. 3.6)
LOG2_B_CHANNEL = 13.1567

#: ``scale_span`` values: a block of ``group_size`` elements, one channel, the whole tensor
BLOCK, CHANNEL, TENSOR = 0, 1, 2
_SPAN_WORDS = {BLOCK: "block-wise", CHANNEL: "channel-wise", TENSOR: "tensor-wise"}
#: what the bundled trainer's ``w_granularity`` text means, for messages
_TRAINER_SPANS = {"per_group": BLOCK, "per_channel": CHANNEL, "per_token": CHANNEL, "per_tensor": TENSOR}

TENSOR_PARAMS = (
    Param("xi", "inverse scale of the tensor-wise log2 B = N^omega / (xi D^eta)", exps(-30, 30), exps(-3, 0),
          log=True),
    Param("omega", "exponent of N in the tensor-wise log2 B", (-3.0, 3.0), (-0.2, 0.2)),
    Param("eta", "exponent of D in the tensor-wise log2 B (as D^-eta)", (-3.0, 3.0), (-0.2, 0.2)),
)

_SCALE_SPAN = Option("scale_span", "how far one scale reaches: 0 = a block of --group-size elements, "
                                   "1 = one channel (per-channel, log2 B = 13.1567), 2 = the whole tensor "
                                   "(per-tensor, needs a fit with xi, omega, eta)", "number", lo=0, hi=2,
                     integer=True)


def format_factor(p, E, M, m=np):
    """``(E + 0.5)^delta (M + 0.5)^nu``: larger is a better (lower-penalty) format."""
    return (E + 0.5) ** p["delta"] * (M + 0.5) ** p["nu"]


def critical_data(params, N, E, M, B) -> float:
    """``D_crit = (d gamma N^alpha (E+0.5)^delta (M+0.5)^nu / log2 B)^(1/(2 beta))`` (Eq. 21), block B."""
    return critical_data_lb(params, N, E, M, math.log2(B))


def critical_data_lb(params, N, E, M, lb) -> float:
    """Eq. 21 with ``lb`` = log2 B given (13.1567 for channel-wise scaling); inf when lb <= 0."""
    if lb <= 0:
        return math.inf
    return float((params["d"] * params["gamma"] * N ** params["alpha"] * format_factor(params, E, M) / lb)
                 ** (1.0 / (2.0 * params["beta"])))


def best_split(params, bits: int) -> tuple[int, int]:
    """Best (E, M) with E + M + 1 = bits and E >= 1."""
    Es = np.arange(1, bits)
    f = format_factor(params, Es.astype(float), (bits - 1 - Es).astype(float))
    E = int(Es[int(np.argmax(f))])
    return E, bits - 1 - E


def gamma_rho(p) -> float:
    """``gamma delta^delta nu^nu / (delta + nu)^(delta + nu)`` (Eq. 34): the penalty's scale at the
    continuous optimal layout, rho_opt(P) = D^beta log2 B / (N^alpha gamma_rho P^(delta + nu))."""
    s = p["delta"] + p["nu"]
    return p["gamma"] * p["delta"] ** p["delta"] * p["nu"] ** p["nu"] / s ** s


def p_opt_fixed_data(p, D, lb) -> float | None:
    """Eq. 47: ``P^(delta+nu) = gamma_D D^beta log2 B``, gamma_D = (delta+nu-alpha)/(n alpha gamma_rho)
    (Eq. 46); None when delta + nu <= alpha (no interior optimum)."""
    s = p["delta"] + p["nu"]
    if s <= p["alpha"]:
        return None
    gD = (s - p["alpha"]) / (p["n"] * p["alpha"] * gamma_rho(p))
    return float((gD * D ** p["beta"] * lb) ** (1.0 / s))


def p_opt_fixed_model(p, flops, N, lb, k=_COST) -> float:
    """Eq. 52: ``P^(delta+nu+2 beta) = gamma_N (C/k)^(2 beta) N^-(alpha+2 beta) log2 B``,
    gamma_N = (beta+delta+nu)/(d beta gamma_rho) (Eq. 51)."""
    s, a, b = p["delta"] + p["nu"], p["alpha"], p["beta"]
    gN = (b + s) / (p["d"] * b * gamma_rho(p))
    return float((gN * (flops / k) ** (2 * b) * N ** -(a + 2 * b) * lb) ** (1.0 / (s + 2 * b)))


def p_opt_compute(p, flops, lb, k=_COST) -> float | None:
    """Eq. 54: ``P^(s(alpha+beta)/beta + alpha) = (gamma_D lb)^((alpha+beta)/beta) (s-alpha)/(s+beta)
    (d beta)/(n alpha) (C/k)^alpha`` with s = delta + nu; None when s <= alpha."""
    s, a, b = p["delta"] + p["nu"], p["alpha"], p["beta"]
    if s <= a:
        return None
    gD = (s - a) / (p["n"] * a * gamma_rho(p))
    rhs = (gD * lb) ** ((a + b) / b) * (s - a) / (s + b) * p["d"] * b / (p["n"] * a) * (flops / k) ** a
    return float(rhs ** (1.0 / (s * (a + b) / b + a)))


class Capybara(Law):
    name = "capybara"
    title = "Capybara: floating-point quantization training (exponent, mantissa, block size)"
    reference = ("Sun et al. 2025, Scaling Laws for Floating-Point Quantization Training "
                 "(ICML 2025, arXiv:2501.02423), Eq. 26")
    formula_text = ("L = n/N^alpha + d/D^beta + epsilon + (D^beta/N^alpha) log2(B) / "
                    "(gamma (E+0.5)^delta (M+0.5)^nu), E = exp_bits, M = man_bits, B = group_size; "
                    "scale_span = 1 (per-channel): log2 B = 13.1567; scale_span = 2 (per-tensor): "
                    "log2 B = N^omega / (xi D^eta)")
    base_params = (
        Param("n", "scale of the finite-model term", exps(-10, 40), exps(2, 5), log=True),
        Param("alpha", "exponent of model size", (0.0, 3.0), (0.2, 0.4)),
        Param("d", "scale of the finite-data term", exps(-10, 60), exps(5, 10, 15), log=True),
        Param("beta", "exponent of data size", (0.0, 3.0), (0.3, 0.6)),
        Param("epsilon", "irreducible loss (nats/token)", exps(-7, 5), exps(0.25, 0.75), log=True),
        Param("gamma", "inverse scale of the precision penalty", exps(-20, 60), exps(5, 10), log=True),
        Param("delta", "weight of the exponent bits, (E+0.5)^delta", (0.0, 10.0), (1.0, 3.0)),
        Param("nu", "weight of the mantissa bits, (M+0.5)^nu", (0.0, 10.0), (1.0, 3.0)),
    )
    params = base_params
    columns = ("N", "D", "exp_bits", "man_bits")
    optional_columns = ("group_size", "scale_span")
    presets = {
        "sun2025": Preset(
            {"n": 69.2343, "alpha": 0.2368, "d": 68973.0621, "beta": 0.5162, "epsilon": 1.9061,
             "gamma": 11334.5197, "delta": 3.1926, "nu": 2.9543},
            "Sun et al. 2025, Scaling Laws for Floating-Point Quantization Training, Table 2 (Eq. 26)"),
    }
    planners = (
        Planner("fp-format", "best exponent/mantissa split for a total of --bits P = E + M + 1",
                "plan_fp_format", required=("bits",), optional=("N", "D", "group_size", _SCALE_SPAN)),
        Planner("data", "critical data size: tokens beyond which more data raises the loss (give "
                        "--group-size or --scale-span)",
                "plan_data", required=("N", "exp_bits", "man_bits"), optional=("group_size", _SCALE_SPAN)),
        Planner("precision", "training precision under C = (6/16) P N D: jointly optimal, or at fixed "
                             "--D or --N (Sun et al. Eqs. 22, 23, 25)",
                "plan_precision", required=("flops",), optional=("group_size", "N", "D", _SCALE_SPAN)),
    )
    penalty_axes = ("bits", "group_size", "tokens_per_byte")
    figure = (View("curves", x="bits", y="penalty", panels="group_size", curves="N", fixed={"D": "max"},
                   grid="integer", fitted_points=True,
                   title="loss added by the floating-point format (lines: the best format of each width)"),
              View("curves", x="bits", y="penalty", curves="N", fixed={"D": "max", "scale_span": CHANNEL},
                   grid="integer", fitted_points=True,
                   title="the same for the channel-wise runs (scale_span 1: log2 B = 13.1567)"),
              View("heatmap", x="exp_bits", y_axis="man_bits", xs=tuple(range(1, 9)), ys=tuple(range(0, 9)),
                   width=8, fixed={"N": "mid", "D": "max", "group_size": 128},
                   title="exponent x mantissa map of the penalty, relative to the best 8-bit format"))

    def __init__(self, tensor: bool = False):
        self.tensor = bool(tensor)
        self.params = self.base_params + (TENSOR_PARAMS if self.tensor else ())

    def __repr__(self):
        return f"Capybara(tensor={self.tensor})"

    # ------------------------------------------------- data-dependent parameters
    def specialize(self, runs):
        """With per-tensor rows (``scale_span = 2``) the law gains xi, omega, eta."""
        tensor = bool(np.any(self.spans(runs)[0] == TENSOR))
        return self if tensor == self.tensor else type(self)(tensor)

    def from_param_names(self, names):
        tensor = any(str(n) in {p.name for p in TENSOR_PARAMS} for n in names)
        return self if tensor == self.tensor else type(self)(tensor)

    # ------------------------------------------------------------------ data
    def spans(self, runs):
        """``(span, B)`` of each row, checked: span 0/1/2 (:data:`BLOCK`, :data:`CHANNEL`, :data:`TENSOR`)
        and the block size B (NaN where span is not 0)."""
        cols = as_columns(runs)
        G = np.asarray(cols["group_size"], float) if "group_size" in cols else np.full(cols.n, np.nan)
        S = np.asarray(cols["scale_span"], float) if "scale_span" in cols else np.full(cols.n, np.nan)
        bad = ~np.isnan(S) & ~np.isin(S, (BLOCK, CHANNEL, TENSOR))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise cols.error(f"scale_span must be 0 (a block of group_size elements), 1 (per-channel) or 2 "
                             f"(per-tensor), got {S[i]:g}", i, "scale_span")
        span = np.where(np.isnan(S), BLOCK, S)
        has_G = ~np.isnan(G)
        both = has_G & (span != BLOCK)
        if both.any():
            i = int(np.flatnonzero(both)[0])
            raise cols.error(
                f"group_size {G[i]:g} and scale_span {span[i]:g} ({_SPAN_WORDS[int(span[i])]}) on one row say "
                f"two things: a {_SPAN_WORDS[int(span[i])]} row has no block size in law '{self.name}' (its "
                f"log2 B is {'13.1567' if span[i] == CHANNEL else 'N^omega / (xi D^eta)'}, Sun et al. Sec. 3.6, "
                f"not log2 of the elements sharing a scale); leave group_size empty there, or write "
                f"scale_span 0 for a block of group_size elements", i, "group_size")
        neither = ~has_G & (span == BLOCK)
        if neither.any():
            i = int(np.flatnonzero(neither)[0])
            said = "scale_span 0 (a block) needs a group_size" if "scale_span" in cols and not np.isnan(S[i]) \
                else "no group_size and no scale_span"
            raise cols.error(f"{said}: law '{self.name}' needs group_size (elements per scale, block-wise) or "
                             f"scale_span 1 (per-channel) / 2 (per-tensor) on every row{_trainer_hint(runs, i)}",
                             i, "group_size")
        low = has_G & ~(G >= 1)
        if low.any():
            i = int(np.flatnonzero(low)[0])
            raise cols.error(f"group_size must be >= 1, got {G[i]:g}", i, "group_size")
        return span, G

    def design(self, runs):
        cols = as_columns(runs)
        cols.require(self.columns, f"law '{self.name}'")
        X = {c: np.asarray(cols[c], dtype=float) for c in self.columns}
        for col in ("exp_bits", "man_bits"):
            bad = np.flatnonzero(~(X[col] >= 0))
            if bad.size:
                raise cols.error(f"{col} must be >= 0, got {X[col][bad[0]]}", int(bad[0]), col)
        span, G = self.spans(runs)
        tensor = span == TENSOR
        if tensor.any() and not self.tensor:
            raise cols.error("a per-tensor row (scale_span 2) needs the tensor-wise constants xi, omega, eta of "
                             "log2 B = N^omega / (xi D^eta); Sun et al. publish none (Sec. 3.6 gives the form "
                             "only) and these parameters have none: fit the law on runs that include "
                             "per-tensor ones", int(np.flatnonzero(tensor)[0]), "scale_span")
        # log2 B: of the block; 13.1567 per channel; per tensor, the formula's own term (0 here)
        X["lb"] = np.where(span == BLOCK, np.log2(np.where(span == BLOCK, G, 1.0)),
                           np.where(span == CHANNEL, LOG2_B_CHANNEL, 0.0))
        if self.tensor:
            X["tensor"] = tensor.astype(float)
        return X

    # --------------------------------------------------------------- formula
    def formula(self, p, x, m=np):
        lb = x.lb
        if self.tensor:
            lb = lb + x.tensor * x.N ** p.omega / (p.xi * x.D ** p.eta)
        return (p.n / x.N ** p.alpha + p.d / x.D ** p.beta + p.epsilon
                + x.D ** p.beta / x.N ** p.alpha * lb / (p.gamma * format_factor(p, x.exp_bits, x.man_bits, m)))

    def example(self):
        fmts = ((1, 2), (2, 1), (2, 3), (4, 3), (5, 2), (3, 4))
        rows = [(N, D, E, M, B) for N in (41e6, 154e6, 679e6) for D in (10e9, 30e9, 100e9) for E, M in fmts
                for B in (32, 128, 512)]
        return dict(self.presets["sun2025"].values), dict(zip(("N", "D", "exp_bits", "man_bits", "group_size"),
                                                              np.array(rows, float).T))

    def loss(self, params, N, D, E, M, B=None, scale_span=None):
        """The Capybara loss of a model of N parameters trained on D tokens in EeMm, with block B
        (or ``scale_span`` 1 / 2: per-channel / per-tensor scaling)."""
        return self.at(params, N=N, D=D, exp_bits=E, man_bits=M, **_scaling_columns(B, scale_span))

    # ------------------------------------------------- what other layers ask
    def unquantized(self, cols):
        """The same runs without the precision penalty: block size 1 (log2 B = 0)."""
        cols = as_columns(cols)
        data = {c: cols[c] for c in cols.columns}
        data["group_size"] = np.ones(cols.n)
        if "scale_span" in data:
            data["scale_span"] = np.zeros(cols.n)
        return Columns(data, cols.source, cols.rows)

    def bits_of(self, cols):
        """Total bits of each run's format: exp_bits + man_bits + 1 (sign)."""
        cols = as_columns(cols)
        return cols["exp_bits"] + cols["man_bits"] + 1

    bits_label = "bits = exp_bits + man_bits + 1"

    def weight_bits_of(self, cols):
        return self.bits_of(cols)

    def with_bits(self, params, cols, bits):
        """The runs in the best format of ``bits`` total bits (the E/M split of :func:`best_split`)."""
        cols = as_columns(cols)
        data = {c: cols[c] for c in cols.columns}
        split = [best_split(params, int(round(b))) for b in np.broadcast_to(np.asarray(bits, float), (cols.n,))]
        data["exp_bits"] = np.array([e for e, _ in split], float)
        data["man_bits"] = np.array([m for _, m in split], float)
        return Columns(data, cols.source, cols.rows)

    # -------------------------------------------------------------- planners
    @staticmethod
    def _log2_block(B, span) -> float:
        """log2 B of a planner's block or channel scaling (13.1567 per channel); per-tensor scaling,
        whose log2 B moves with N and D, is handled by each planner itself."""
        return LOG2_B_CHANNEL if span == CHANNEL else math.log2(B)

    def plan_fp_format(self, params, bits, N=None, D=None, group_size=None, scale_span=None):
        """Best E/M split for ``bits`` total bits (sign + E + M)."""
        P = int(bits)
        if (N is None) != (D is None):
            raise OptionError("N" if N is None else "D", "is needed too: give both N and D to see each "
                              "format's loss (or neither)")
        B, span, where = _planner_scaling(group_size, scale_span, _DEFAULT_BLOCK)
        E_best, M_best = best_split(params, P)
        f_best = float(format_factor(params, E_best, M_best))
        rows = []
        for E in range(1, P):
            M = P - 1 - E
            f = float(format_factor(params, E, M))
            row = {"format": f"E{E}M{M}", "exp_bits": E, "man_bits": M, "penalty_vs_best": f_best / f}
            if N is not None:
                row["loss"] = self.loss(params, N, D, E, M, B, span)
            rows.append(row)
        best = next(r for r in rows if r["exp_bits"] == E_best)
        res = {"bits": P, "exp_bits": E_best, "man_bits": M_best, "format": f"E{E_best}M{M_best}",
               "table": rows, "best": best}
        if N is not None:
            res.update(N=N, D=D, loss=best["loss"], scale_span=span, **({"group_size": B} if span == BLOCK else {}))
        res["summary"] = (f"best {P}-bit format: E{E_best}M{M_best} (E + M + 1 = {P}); the split depends only "
                          f"on delta = {params['delta']:.4g} and nu = {params['nu']:.4g}"
                          + (f"; loss {best['loss']:.4f} at N = {human(N)}, D = {human(D)}, {where}"
                             if N is not None else ""))
        return res

    def plan_data(self, params, N, exp_bits, man_bits, group_size=None, scale_span=None):
        """Critical data size for a model of N parameters trained in format E/M with the given scaling."""
        B, span, where = _planner_scaling(group_size, scale_span, None)
        fmt = f"E{exp_bits:g}M{man_bits:g}"
        if span == TENSOR:
            d = _critical_data_tensor(params, N, exp_bits, man_bits)
        else:
            d = critical_data_lb(params, N, exp_bits, man_bits, self._log2_block(B, span))
        res = {"N": N, "exp_bits": exp_bits, "man_bits": man_bits, "scale_span": span, "D_crit": d,
               "tokens_per_param": d / N}
        if span == BLOCK:
            res["group_size"] = B
        if math.isfinite(d):
            res["loss"] = self.loss(params, N, d, exp_bits, man_bits, B, span)
            res["summary"] = (f"{fmt}, {where}: beyond D_crit = {human(d)} tokens "
                              f"({d / N:.3g} tokens/parameter) more data raises the loss of a "
                              f"{human(N)}-parameter model")
        elif span == TENSOR:
            res["summary"] = (f"tensor-wise scaling with eta = {params['eta']:.4g} >= beta = {params['beta']:.4g}: "
                              f"the penalty does not grow with D, so there is no critical data size")
        else:
            res["summary"] = "block size 1 (log2 B = 0): no precision penalty, so no critical data size"
        return res

    def plan_precision(self, params, flops, group_size=None, N=None, D=None, scale_span=None):
        """Training precision P under C = (6/16) P N D: joint, or at a fixed D or N (see the module doc)."""
        from scipy.optimize import minimize_scalar
        if N is not None and D is not None:
            raise OptionError("D", f"and --N together with --flops fix the precision (P = C / (k N D) = "
                                   f"{flops / (_COST * N * D):.3g} bits): give --D (fixed data) or --N (fixed model "
                                   f"size), or neither (N, D and P jointly)")
        B, span, where = _planner_scaling(group_size, scale_span, _DEFAULT_BLOCK)
        if span == TENSOR:
            raise OptionError("scale_span", "2 (per-tensor) does not apply to the precision planner: the "
                                            "paper's optimal precisions (Eqs. 22, 23, 25) hold log2 B fixed, and "
                                            "a per-tensor log2 B = N^omega / (xi D^eta) moves with N and D")
        lb = self._log2_block(B, span)
        if lb <= 0:
            raise OptionError("group_size", "1 (a scale per element) leaves no precision penalty "
                                            "(log2 B = 0), so fewer bits are always cheaper: no optimal precision")
        mode = "joint" if N is None and D is None else ("fixed D" if D is not None else "fixed N")
        rows = []
        for P in range(2, 17):
            E, M = best_split(params, P)
            K = flops / (_COST * P)  # N * D
            if mode == "joint":
                if K <= 1.0:
                    raise OptionError("flops", f"{flops:g} is too small to train anything at {P} bits")

                def f(lnN, E=E, M=M, K=K):
                    n = math.exp(lnN)
                    return self.loss(params, n, K / n, E, M, B, span)

                r = minimize_scalar(f, bounds=(0.0, math.log(K)), method="bounded",
                                    options={"xatol": 1e-9, "maxiter": 500})
                n_, d_, loss = math.exp(r.x), K / math.exp(r.x), float(r.fun)
            else:
                n_, d_ = (K / D, D) if mode == "fixed D" else (N, K / N)
                if n_ < 1 or d_ < 1:
                    what = "parameter" if n_ < 1 else "token"
                    raise OptionError("flops", f"{flops:g} at {P} bits with {'D' if D is not None else 'N'} = "
                                               f"{human(D if D is not None else N)} leaves less than one {what}")
                loss = self.loss(params, n_, d_, E, M, B, span)
            rows.append({"bits": P, "format": f"E{E}M{M}", "exp_bits": E, "man_bits": M, "N": n_,
                         "D": d_, "loss": loss})
        best = min(rows, key=lambda r: r["loss"])
        if mode == "joint":
            p_opt, eq = p_opt_compute(params, flops, lb), "Eq. 54"
        elif mode == "fixed D":
            p_opt, eq = p_opt_fixed_data(params, D, lb), "Eq. 47"
        else:
            p_opt, eq = p_opt_fixed_model(params, flops, N, lb), "Eq. 52"
        res = {"flops": flops, "mode": mode, "scale_span": span, "bits": best["bits"],
               "exp_bits": best["exp_bits"], "man_bits": best["man_bits"], "N_opt": best["N"],
               "D_opt": best["D"], "loss": best["loss"], "P_opt": p_opt, "log2_B": lb,
               "table": rows, "best": best}
        if span == BLOCK:
            res["group_size"] = B
        fixed = "" if mode == "joint" else (f", D = {human(D)} fixed" if D is not None else f", N = {human(N)} fixed")
        closed = (f"; the paper's closed form ({eq}, continuous P and layout) gives P = {p_opt:.3g}"
                  if p_opt is not None else f"; no closed-form optimum ({eq} needs delta + nu > alpha)")
        res["summary"] = (f"{'compute-optimal' if mode == 'joint' else 'optimal'} precision for C = {flops:.3g} "
                          f"FLOPs (C = (6/16) P N D, {where}{fixed}): {best['bits']} bits ({best['format']}), "
                          f"N = {human(best['N'])}, D = {human(best['D'])}, loss {best['loss']:.4f}"
                          f"{' (at the edge of the widths searched, 2 to 16 bits)' if best['bits'] in (2, 16) else ''}"
                          f"{closed}")
        return res


def _scaling_columns(B, span) -> dict:
    """The run columns of a scaling: ``group_size`` for a block, ``scale_span`` otherwise."""
    if span is None or span == BLOCK:
        return {"group_size": B}
    return {"scale_span": span}


def _planner_scaling(group_size, scale_span, default):
    """``(B, span, words)`` of a planner's ``--group-size`` / ``--scale-span``, checked."""
    span = BLOCK if scale_span is None else int(scale_span)
    if span == BLOCK:
        B = group_size if group_size is not None else default
        if B is None:
            raise OptionError("group_size", "or --scale-span is needed: --group-size B for one scale per B "
                                            "elements, --scale-span 1 per channel, --scale-span 2 per tensor")
        return float(B), BLOCK, f"block {B:g}"
    if group_size is not None:
        raise OptionError("group_size", f"{group_size:g} and --scale-span {span} say two things: "
                                        f"{_SPAN_WORDS[span]} scaling has no block size (Sun et al. Sec. 3.6); "
                                        f"give one of them")
    return None, span, ("channel-wise scaling (log2 B = 13.1567)" if span == CHANNEL
                        else "tensor-wise scaling (log2 B = N^omega / (xi D^eta))")


def _tensor_params(params):
    missing = [p.name for p in TENSOR_PARAMS if p.name not in params]
    if missing:
        raise InputError("per-tensor scaling needs the tensor-wise constants xi, omega, eta of log2 B = "
                         "N^omega / (xi D^eta); Sun et al. publish none (Sec. 3.6 gives the form only) and these "
                         "parameters have none: fit the law on runs that include per-tensor ones (scale_span 2)")


def _critical_data_tensor(p, N, E, M) -> float:
    """dL/dD = 0 with log2 B = N^omega / (xi D^eta): D^(2 beta - eta) = beta d xi gamma f N^(alpha-omega)
    / (beta - eta); inf when eta >= beta (the penalty does not grow with D)."""
    _tensor_params(p)
    b, eta = p["beta"], p["eta"]
    if eta >= b:
        return math.inf
    rhs = b * p["d"] * p["xi"] * p["gamma"] * format_factor(p, E, M) * N ** (p["alpha"] - p["omega"]) / (b - eta)
    return float(rhs ** (1.0 / (2 * b - eta)))


def _trainer_hint(runs, i: int) -> str:
    """What a trainer table's ``w_granularity`` says row ``i`` is, as advice (empty when it says nothing)."""
    if not (hasattr(runs, "columns") and "w_granularity" in getattr(runs, "columns", ())):
        return ""
    g = runs["w_granularity"].iloc[i]
    span = _TRAINER_SPANS.get(str(g).strip())
    if span is None or span == BLOCK:
        return ""
    return f" (its w_granularity says {g}: write scale_span {span} on such rows)"
