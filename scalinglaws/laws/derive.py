"""Exact derivatives of a law's one formula: sympy differentiates it and writes vectorised numpy.

A law writes its formula once (:meth:`scalinglaws.laws.base.Law.formula`) as plain
arithmetic on its parameters and design variables.  For the fitter this module turns
that into two numpy functions of the *fitted-space* parameters ``t`` (shape (S, P)) and
the design arrays ``X`` (each shape (n,)):

* ``value(t, X) -> log L``, shape (S, n);
* ``value_jac(t, X) -> (log L, d log L / d t)``, shapes (S, n) and (S, n, P), its ``log L`` the
  same numbers as ``value``'s bit for bit (both compute it by the same operations, so a fitter's
  accept and stop decisions do not depend on which of the two it called);
* ``curvature(t, X, w) -> sum_i w[s, i] * Hessian_t(log L_i)``, shape (S, P, P).

How: the formula is evaluated on sympy symbols (each log-scale parameter as ``exp`` of
its fitted symbol), ``log`` of it is differentiated once and twice, common
sub-expressions are shared (``sympy.cse``), and each expression is printed as numpy
code.  Before differentiating, every power whose exponent holds a parameter (``N ** -alpha``,
``2 ** (-kappa b)``, ``N_eff ** -alpha``) becomes ``exp(exponent * log base)``, with the
design's logs computed once per call (and a parameter-dependent base's log shared with the
derivatives, which need it anyway), and the exponentials of each product are merged into
one (:func:`_exp_form`): a term ``phi 2^(-chi b) / (N^psi S^omega)`` costs one ``exp`` per
run and start instead of three ``pow`` calls and an ``exp``, which is most of the fitter's
time for such laws.  The generated source is kept in memory and in a cache folder keyed by the law
file's text and the parameter list, so sympy is imported only the first time a law is
fitted on a machine (and never for predictions or planners, which evaluate the formula
directly).  Set ``SCALINGLAWS_CACHE`` to choose the folder (``off``: no disk cache).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
from types import SimpleNamespace

import numpy as np

from scalinglaws.data.atomic import write_atomic
from scalinglaws.data.errors import InputError

#: bump when the generated code changes shape, so that old cache entries are not used
ENGINE_VERSION = "7"

_memory: dict[str, dict] = {}
_lock = threading.Lock()


def _new_lock_in_child() -> None:
    """A forked child (a bootstrap worker) gets a fresh lock: another thread of the parent may have
    held this one at the fork, and no thread of the child would ever release it."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


def _cache_dir() -> str | None:
    where = os.environ.get("SCALINGLAWS_CACHE")
    if where is not None:
        return None if where.strip().lower() in ("", "off", "0", "none") else where
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "scalinglaws", "derivatives")


def _key(law, design_names) -> str:
    """A key that changes whenever the formula could: the law's source file, parameters and design."""
    try:
        src = inspect.getsource(inspect.getmodule(type(law)))
    except (OSError, TypeError):  # a law defined where its source cannot be read
        src = repr(type(law).formula.__code__.co_code)
    parts = [ENGINE_VERSION, type(law).__qualname__, src, f"merge_powers={bool(getattr(law, 'merge_powers', True))}",
             ";".join(f"{p.name}:{int(p.log)}" for p in law.params), ";".join(design_names)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


_by_law: dict[tuple, dict] = {}


def functions(law, X) -> dict:
    """``{"value": v, "value_jac": f, "curvature": g}`` for ``law`` on design arrays with the names of ``X``."""
    names = tuple(sorted(X))
    quick = (type(law), bool(getattr(law, "merge_powers", True)), tuple((p.name, p.log) for p in law.params), names)
    fns = _by_law.get(quick)  # this process has them already: no source hashing on the fitter's hot path
    if fns is not None:
        return fns
    key = _key(law, names)
    fns = _memory.get(key)
    if fns is not None:
        _by_law[quick] = fns
        return fns
    with _lock:
        if key in _memory:
            return _memory[key]
        source = _read_cache(key)
        if source is None:
            source = generate(law, names)
            _write_cache(key, source)
        namespace = {"np": np, "_levels": levels}
        exec(compile(source, f"<derivatives of {law.name}>", "exec"), namespace)
        fns = {"value": namespace["value"], "value_jac": namespace["value_jac"], "curvature": namespace["curvature"],
               "source": source}
        _memory[key] = fns
        _by_law[quick] = fns
        return fns


def _read_cache(key: str) -> str | None:
    folder = _cache_dir()
    if folder is None:
        return None
    try:
        with open(os.path.join(folder, key + ".py")) as fh:
            return fh.read()
    except OSError:
        return None


def _write_cache(key: str, source: str) -> None:
    folder = _cache_dir()
    if folder is None:
        return
    try:
        os.makedirs(folder, exist_ok=True)
        write_atomic(os.path.join(folder, key + ".py"), source)
    except (OSError, InputError):  # a read-only home: the derivatives are regenerated next time
        pass


class _Sym:
    """The math namespace a formula sees when it is differentiated."""

    def __init__(self, sp):
        self.exp, self.log, self.sqrt = sp.exp, sp.log, sp.sqrt
        self.log2 = lambda x: sp.log(x) / sp.log(2)
        self.log1p = lambda x: sp.log(1 + x)


def generate(law, design_names) -> str:
    """The numpy source of ``value_jac`` and ``curvature`` for ``law`` (see the module doc).

    With ``L`` the formula, ``G = dL/dt`` and ``K = d2L/dt dt`` (simple for laws that are
    sums of terms): ``J = G / L`` and ``Hessian(log L) = K / L - J J^T``.
    """
    import sympy as sp
    from sympy.printing.numpy import NumPyPrinter

    P = len(law.params)
    t = sp.symbols(f"t0:{P}", real=True)
    xs = {name: sp.Symbol(f"x{i}", real=True) for i, name in enumerate(design_names)}
    public = {p.name: (sp.exp(t[j]) if p.log else t[j]) for j, p in enumerate(law.params)}
    L = sp.sympify(law.formula(Vars(public), Vars(xs), _Sym(sp)))
    logs = {s: sp.Symbol(f"l{s.name}", real=True) for s in xs.values()}  # log of each design array
    if getattr(law, "merge_powers", True):
        L = _exp_form(L, set(t), logs)
    G = [sp.diff(L, v) for v in t]
    upper = [(i, j) for i in range(P) for j in range(i, P)]
    K = {(i, j): sp.diff(G[i], t[j]) for i, j in upper}
    printer = NumPyPrinter()

    def shared(exprs):
        """``sympy.cse`` of ``exprs``: the temporaries and the reduced expressions."""
        return sp.cse([sp.sympify(e).evalf() for e in exprs], symbols=sp.numbered_symbols("c"))

    def block(reps, reduced, only=None):
        """Lines computing the ``shared`` expressions and the expressions' code; with ``only``, of the
        first ``only`` expressions alone, by the very operations the whole block uses for them
        (``value`` then gives the numbers ``value_jac`` gives, bit for bit)."""
        if only is not None:
            need = set().union(*(r.free_symbols for r in reduced[:only]))
            kept = []
            for c, e in reversed(reps):
                if c in need:
                    kept.append((c, e))
                    need |= e.free_symbols
            reps, reduced = kept[::-1], reduced[:only]
        return _levelled(reps, reduced, t, xs, logs, lambda e: _np(printer, e))

    first = shared([L] + G)  # (value and value_jac: one cse)
    src = [f"# derivatives of law {law.name!r}, generated by scalinglaws.laws.derive from its formula",
           "def value(t, X):"]
    lines, out = block(*first, only=1)
    src += lines
    src += [f"    L = np.broadcast_to({out[0]}, (t.shape[0], X_n(X)))",
            "    return np.log(L).astype(t.dtype, copy=False)", "", "def value_jac(t, X):"]
    lines, out = block(*first)
    src += lines
    src += ["    shape = (t.shape[0], X_n(X))",
            f"    L = np.broadcast_to({out[0]}, shape)",
            "    f = np.log(L).astype(t.dtype, copy=False)",
            "    iL = 1.0 / L",
            f"    J = np.empty((t.shape[0], {P}, shape[1]), dtype=t.dtype)  # each parameter's row contiguous"]
    src += [f"    np.multiply({e}, iL, out=J[:, {j}])" for j, e in enumerate(out[1:])]
    src += ["    return f, J.transpose(0, 2, 1)", "", "def curvature(t, X, w):"]
    lines, out = block(*shared([L] + G + [K[ij] for ij in upper]))
    nonzero = [(ij, e) for ij, e in zip(upper, out[P + 1:]) if e not in ("0", "0.0")]
    src += lines
    src += ["    shape = (t.shape[0], X_n(X))",
            f"    L = np.broadcast_to({out[0]}, shape)",
            "    wi = w / L",
            f"    J = np.empty(shape + ({P},), dtype=t.dtype)"]
    src += [f"    J[:, :, {j}] = {e}" for j, e in enumerate(out[1:P + 1])]
    src += ["    J /= L[:, :, None]",
            "    H = -np.matmul(J.transpose(0, 2, 1) * w[:, None, :], J)  # - sum_i w_i J_i J_i^T"]
    if nonzero:
        src += [f"    K = np.empty(shape + ({len(nonzero)},), dtype=t.dtype)"]
        src += [f"    K[:, :, {k}] = {e}" for k, (_, e) in enumerate(nonzero)]
        src += ["    k = np.matmul(wi[:, None, :], K)[:, 0, :]  # sum_i w_i K_i / L_i"]
        for k, ((i, j), _) in enumerate(nonzero):
            src.append(f"    H[:, {i}, {j}] += k[:, {k}]" if i == j else
                       f"    H[:, {i}, {j}] += k[:, {k}]\n    H[:, {j}, {i}] += k[:, {k}]")
    src += ["    return H", "", "def X_n(X):", "    return max(np.size(v) for v in X.values())"]
    return "\n".join(src)


class ByIdentity:
    """``build(*arrays)`` remembered for the arrays last seen, keyed by their identity.

    The arrays are held with their result, so an id is not reused while its entry lives; a new array
    (a subset, another precision, a changed copy) gets its own entry.  At most ``size`` entries: the
    store is emptied when full (a fit sees each design in a few models, not hundreds).
    """

    def __init__(self, build, size: int):
        self.build, self.size, self._store = build, size, {}

    def __call__(self, *arrays):
        key = tuple(map(id, arrays))
        hit = self._store.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], arrays)):
            return hit[1]
        out = self.build(*arrays)
        if len(self._store) >= self.size:
            self._store.clear()
        self._store[key] = (arrays, out)
        return out


def _distinct(x):
    u, index = np.unique(x, return_inverse=True)
    if 4 * u.size > x.size:
        return x, None
    return u, index.reshape(-1).astype(np.int32 if x.size < 2**31 else np.intp)


_distinct_of = ByIdentity(_distinct, 64)


def levels(x):
    """(distinct values, index of each run's) for a design column with at most a quarter as many
    distinct values as runs (bits, group sizes, a sweep's model sizes), else ``(x, None)``: the
    generated code computes the terms of such a column once per distinct value."""
    if np.ndim(x) != 1 or np.size(x) < 32:
        return x, None
    return _distinct_of(x)


def _levelled(reps, reduced, t, xs, logs, code):
    """The function body computing the ``sympy.cse`` output ``reps`` (temporaries) and ``reduced``
    (results), and the results' code.

    Every sub-expression that involves the parameters and one design column only (``exp(t8 - b / t5)``
    of a bit width ``b``, say) is computed on that column's distinct values, (S, k) instead of (S, n),
    and gathered to every run where an expression of several columns uses it: the same numbers (each
    is the same operation on the same operands), for a fraction of the transcendental calls when the
    column has few values.  A column with many distinct values (``_levels`` gives None) computes as
    before: the gather is then skipped.
    """
    import sympy as sp

    design = {x: x for x in xs.values()}
    design.update({logs[x]: x for x in xs.values()})
    params = set(t)
    fam = {s: frozenset([x]) for s, x in design.items()}  # the design columns each symbol involves
    levelled = set()       # temporaries computed on one column's distinct values
    lines, full = [], {}   # full: levelled temporary -> its symbol gathered to every run
    used_u, used, logs_u = set(), set(), set()
    hoisted = sp.numbered_symbols("h")
    defs = {}  # one-column temporaries kept per run (cheap), by their expression

    def family(e):
        return frozenset().union(*(fam.get(s, frozenset()) for s in e.free_symbols))

    def inline(e):
        """``e`` with the cheap one-column temporaries (kept per run) written out."""
        sub = {c: inline(defs[c]) for c in e.free_symbols if c in defs}
        return e.xreplace(sub) if sub else e

    def live(e):
        return any(s in params or s in levelled for s in e.free_symbols)

    def worth(e):
        """Whether ``e`` (of one column) pays for computing on levels: it calls exp or log on the
        parameters (or a power with a parameter in its exponent).  A cheap product or sum costs no
        more per run than the gather it would need."""
        e = inline(e)
        return any((isinstance(a, (sp.exp, sp.log)) and live(a.args[0])) or (a.is_Pow and not a.exp.is_Number and live(a))
                   for a in sp.preorder_traversal(e))

    def on_levels(e, x):
        """``e`` (of column ``x`` only) in that column's distinct values."""
        e = inline(e)
        used_u.add(x)
        if logs[x] in e.free_symbols:
            logs_u.add(x)
        return e.xreplace({x: sp.Symbol(f"{x.name}u"), logs[x]: sp.Symbol(f"l{x.name}u")})

    def gathered(c):
        if c not in full:
            (x,) = fam[c]
            full[c] = sp.Symbol(f"{c.name}_f")
            # (np.take keeps the rows contiguous; indexing [..., i] would give a column-major array,
            # which slows every elementwise operation it enters by 1.5x)
            lines.append(f"    {full[c]} = {c} if {x.name}i is None else np.take({c}, {x.name}i, axis=-1)")
        return full[c]

    def per_run(e):
        """``e`` for every run: its one-column parametric parts computed on levels and gathered."""
        if e.is_Atom:
            if e in levelled:
                return gathered(e)
            if e in design:
                used.add(e)
            return e
        fe = family(e)
        if len(fe) == 1 and worth(e):
            h = next(hoisted)
            (x,) = fe
            lines.append(f"    {h} = {code(on_levels(e, x))}")
            fam[h] = fe
            levelled.add(h)
            return gathered(h)
        if not fe:
            return e
        return e.func(*[per_run(a) for a in e.args])

    for c, e in reps:
        fe = family(e)
        if len(fe) == 1 and worth(e):
            (x,) = fe
            lines.append(f"    {c} = {code(on_levels(e, x))}")
            levelled.add(c)
        else:
            lines.append(f"    {c} = {code(per_run(e))}")
            if len(fe) == 1:
                defs[c] = e
        fam[c] = fe
    out = [code(per_run(r)) for r in reduced]
    every = set().union(*(e.free_symbols for _, e in reps), *(r.free_symbols for r in reduced))
    head = [f"    t{j} = t[:, {j}:{j + 1}]" for j in range(len(t)) if t[j] in every]
    names = {x: name for name, x in xs.items()}
    for x in xs.values():
        if x in used or logs[x] in used or x in used_u:
            head.append(f"    {x} = X[{names[x]!r}]")
        if x in used_u:
            head.append(f"    {x.name}u, {x.name}i = _levels({x})")
        if logs[x] in used:
            head.append(f"    {logs[x]} = np.log({x})")
        if x in logs_u:
            head.append(f"    l{x.name}u = np.log({x.name}u)")
    return head + lines, out


def _exp_form(expr, params: set, logs: dict):
    """``expr`` with each power ``base ** e`` whose exponent holds a parameter written
    ``exp(e * log base)`` (``logs`` names the design arrays' logs), and the exponentials of every
    product merged into one.  Equal in exact arithmetic where the base is > 0, in floating point to
    rounding (``exp`` of a sum against a product of ``pow``); a zero base gives 0 or inf as ``pow``
    does.  Where the base is negative the exponential form is NaN, as ``pow`` is for a non-integer
    exponent; for an integer one (an exponent at an integer bound, say) ``pow`` is finite.  Such a
    base is outside every law's domain (an effective parameter count <= 0): the fitter then sees
    an infinite objective and steps back, where ``log_predict`` would give a meaningless number."""
    import sympy as sp

    def is_target(a):
        return a.is_Pow and bool(a.exp.free_symbols & params) and a.base is not sp.E

    def rewrite(a):
        return sp.exp(a.exp * (logs[a.base] if a.base in logs else sp.log(a.base)))

    return sp.powsimp(expr.replace(is_target, rewrite), combine="exp")


def _np(printer, expr) -> str:
    return printer.doprint(expr).replace("numpy.", "np.")


class Vars(SimpleNamespace):
    """Names for a formula: ``p.alpha`` or ``p["lambda"]`` (for names that are Python keywords)."""

    def __init__(self, values):
        super().__init__(**{str(k): v for k, v in values.items()})

    def __getitem__(self, name):
        return getattr(self, name)
