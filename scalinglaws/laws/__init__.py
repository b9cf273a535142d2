"""The registry of law families.  Adding a law: one file in this folder, one line below.

A law registered at run time (:func:`register`, for a law defined in your own module)
is used by every command exactly like a built-in one.
"""

from __future__ import annotations

from scalinglaws.data.errors import InputError
from scalinglaws.laws.base import OPTIONS, Law, Option, Param, Planner, Preset
from scalinglaws.laws.capybara import Capybara
from scalinglaws.laws.chen_qat import ChenQAT
from scalinglaws.laws.chinchilla import Chinchilla
from scalinglaws.laws.dremov_qat import DremovFraction, DremovQAT
from scalinglaws.laws.frantar_eff import FrantarEff
from scalinglaws.laws.kaplan import Kaplan
from scalinglaws.laws.kumar_precision import KumarPrecision
from scalinglaws.laws.kumar_ptq import KumarPTQ
from scalinglaws.laws.kumar_unified import KumarUnified
from scalinglaws.laws.ouyang_qid import OuyangQiD

#: name -> Law instance.  One line per family.
REGISTRY: dict[str, Law] = {law.name: law for law in (
    Chinchilla(),
    KumarPTQ(),
    KumarPrecision(),
    KumarUnified(),
    OuyangQiD(),
    Kaplan(),  # the 16-bit loss that goes with ouyang-qid (Loss_q = Loss_16-bit + dL)
    FrantarEff(),  # its eff[...] parameters depend on the data: see FrantarEff.for_runs
    ChenQAT(),
    Capybara(),
    DremovFraction(),
    DremovQAT(),
)}

#: the law a fit uses when none is named: the first registered
DEFAULT_LAW = next(iter(REGISTRY))


def register(law: Law) -> Law:
    """Add ``law`` (an instance) to the registry; its name and preset names must be new."""
    if not isinstance(law, Law) or not law.name:
        raise InputError("register() takes a Law instance with a name")
    if law.name in REGISTRY and REGISTRY[law.name] is not law:
        raise InputError(f"a law named {law.name!r} is already registered")
    taken = {p: other.name for other in REGISTRY.values() if other is not law for p in other.presets}
    clash = [p for p in law.presets if p in taken]
    if clash:
        raise InputError(f"preset {clash[0]!r} of law {law.name!r} is already a preset of law {taken[clash[0]]!r}")
    REGISTRY[law.name] = law
    return law


def unregister(name: str) -> None:
    """Remove a law registered with :func:`register` (tests use it to clean up)."""
    REGISTRY.pop(name, None)


def get_law(name: str | Law) -> Law:
    """The registered law called ``name`` (or ``name`` itself when it is a Law)."""
    if isinstance(name, Law):
        return name
    try:
        return REGISTRY[str(name).strip().lower()]
    except KeyError:
        raise InputError(f"unknown law {name!r}; registered laws: {', '.join(REGISTRY)}") from None


def find_preset(name: str) -> tuple[Law, str]:
    """The law that owns preset ``name`` (preset names are unique across laws)."""
    for law in REGISTRY.values():
        if name in law.presets:
            return law, name
    every = ", ".join(f"{p} ({law.name})" for law in REGISTRY.values() for p in law.presets)
    raise InputError(f"unknown preset {name!r}; presets: {every}")


def planner_kinds() -> dict[str, list[tuple[Law, Planner]]]:
    """Every planner kind of the registered laws, with the laws (and declarations) that answer it."""
    out: dict[str, list[tuple[Law, Planner]]] = {}
    for law in REGISTRY.values():
        for p in law.planners:
            out.setdefault(p.kind, []).append((law, p))
    return out


__all__ = ["Law", "Param", "Planner", "Preset", "Option", "OPTIONS", "REGISTRY", "DEFAULT_LAW", "register",
           "unregister", "get_law", "find_preset", "planner_kinds"]
