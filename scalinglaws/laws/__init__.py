"""The registry of law families.  Adding a law: one file in this folder, one line below."""

from __future__ import annotations

from scalinglaws.data.errors import InputError
from scalinglaws.laws.base import Law, Param, Planner, Preset
from scalinglaws.laws.chinchilla import Chinchilla
from scalinglaws.laws.kumar_ptq import KumarPTQ
from scalinglaws.laws.kumar_precision import KumarPrecision
from scalinglaws.laws.ouyang_qid import OuyangQiD
from scalinglaws.laws.frantar_eff import FrantarEff
from scalinglaws.laws.chen_qat import ChenQAT
from scalinglaws.laws.capybara import Capybara
from scalinglaws.laws.dremov_qat import DremovFraction, DremovQAT

#: name -> Law instance.  One line per family.
REGISTRY: dict[str, Law] = {law.name: law for law in (
    Chinchilla(),
    KumarPTQ(),
    KumarPrecision(),
    OuyangQiD(),
    FrantarEff(),  # its eff[...] parameters depend on the data: see FrantarEff.for_runs
    ChenQAT(),
    Capybara(),
    DremovFraction(),
    DremovQAT(),
)}


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


__all__ = ["Law", "Param", "Planner", "Preset", "REGISTRY", "get_law", "find_preset"]
