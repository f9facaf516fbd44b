"""Named interatomic potentials → the LAMMPS commands that set them up.

One place decides how every potential is written for LAMMPS (units, atom style, pair style,
masses, charges), so heating runs, tests and benchmarks cannot drift apart. Which potential
holds which SiO2 polymorph is measured in ``benchmarks/potential_survey.py`` (docs/potentials.md).

Every entry uses ``units metal`` (Å, eV, ps, bar). ``commands(type_map)`` needs atoms to exist
already, because charges are assigned with ``set type``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from lammps_phase.elements import mass
from lammps_phase.errors import LammpsPhaseError

#: Atomic masses (amu), IUPAC standard values.

_POTENTIAL_DIRS = ("/usr/share/lammps/potentials",)

# BKS: van Beest, Kramer & van Santen, PRL 64, 1955 (1990), Table I.  Born form in LAMMPS is
# A·exp((σ−r)/ρ) − C/r⁶ + D/r⁸, so σ = 0, ρ = 1/b, D = 0.
BKS_CHARGES: dict[str, float] = {"Si": 2.4, "O": -1.2}
BKS_PAIRS: dict[tuple[str, str], tuple[float, float, float]] = {  # (A eV, b 1/Å, C eV·Å⁶)
    ("O", "O"): (1388.7730, 2.76000, 175.0000),
    ("Si", "O"): (18003.7572, 4.87318, 133.5381),
}
BKS_DSF_ALPHA = 0.2  # 1/Å, damping of the shifted-force Coulomb sum (Fennell & Gezelter 2006)
BKS_CUTOFF = 10.0  # Å, for both the Born and the Coulomb parts

# Short-range correction: the 30–6 Lennard-Jones term of Saika-Voivod, Sciortino & Poole,
# PRE 69, 041503 (2004): 4ε[(σ/r)³⁰ − (σ/r)⁶] (no Si–Si term).
SAIKA_VOIVOD_30_6: dict[tuple[str, str], tuple[float, float]] = {  # (ε eV, σ Å)
    ("Si", "O"): (3.097948e-3, 1.313635),
    ("O", "O"): (1.051050e-3, 1.779239),
}
_REPULSIVE_EXPONENT, _ATTRACTIVE_EXPONENT = 30.0, 6.0
_MIE_GLOBAL_CUTOFF = 2.0  # Å; every pair sets its own cutoff at the 30–6 minimum


def lj_30_6_minimum(sigma: float) -> float:
    """Distance (Å) where 4ε[(σ/r)³⁰ − (σ/r)⁶] has its minimum: σ·5^(1/24)."""
    return sigma * (_REPULSIVE_EXPONENT / _ATTRACTIVE_EXPONENT) ** (1.0 / (_REPULSIVE_EXPONENT - _ATTRACTIVE_EXPONENT))


def _mie_epsilon(lj_epsilon: float) -> float:
    """LAMMPS ``mie/cut`` writes E = C·ε·[(σ/r)^γr − (σ/r)^γa] with C ≠ 4 for 30–6; rescale ε."""
    gr, ga = _REPULSIVE_EXPONENT, _ATTRACTIVE_EXPONENT
    prefactor = (gr / (gr - ga)) * (gr / ga) ** (ga / (gr - ga))
    return 4.0 * lj_epsilon / prefactor


def potential_file(filename: str) -> Path:
    """Locate a file of the LAMMPS potential library ($LAMMPS_POTENTIALS first, then Debian's lammps-data)."""
    directories = [os.environ["LAMMPS_POTENTIALS"]] if os.environ.get("LAMMPS_POTENTIALS") else []
    for directory in [*directories, *_POTENTIAL_DIRS]:
        candidate = Path(directory) / filename
        if candidate.is_file():
            return candidate
    raise LammpsPhaseError(
        f"potential file {filename!r} not found in {directories + list(_POTENTIAL_DIRS)}; "
        "install Debian's lammps-data or set LAMMPS_POTENTIALS to a folder that holds it"
    )


@dataclass(frozen=True)
class Potential:
    """A named potential: what it needs from the data (atom style, charges) and how to set it up."""

    name: str
    elements: tuple[str, ...]
    atom_style: str
    citation: str
    description: str
    _interaction: Callable[[list[str]], list[str]] = field(repr=False, compare=False)
    charges: Mapping[str, float] = field(default_factory=dict)
    #: a timestep (fs) that conserves energy for crystals up to melting with this potential
    timestep_fs: float = 1.0

    @property
    def needs_charges(self) -> bool:
        return bool(self.charges)

    def init_commands(self) -> list[str]:
        """Commands that must come before the box is created."""
        return ["units metal", f"atom_style {self.atom_style}", "atom_modify map array"]

    def commands(self, type_map: Mapping[str, int]) -> list[str]:
        """Masses, pair style/coefficients and charges for atoms already in the box.

        ``type_map`` maps element symbol → LAMMPS atom type (1-based, contiguous), e.g. {"Si": 1, "O": 2}.
        """
        elements_by_type = self._check_type_map(type_map)
        lines = [f"mass {t} {mass(el)}" for t, el in enumerate(elements_by_type, start=1)]
        lines += self._interaction(elements_by_type)
        for t, el in enumerate(elements_by_type, start=1):
            if self.charges:
                lines.append(f"set type {t} charge {self.charges[el]}")
        return lines

    def _check_type_map(self, type_map: Mapping[str, int]) -> list[str]:
        unknown = sorted(set(type_map) - set(self.elements))
        if unknown:
            raise LammpsPhaseError(
                f"potential {self.name!r} covers {list(self.elements)}, not {unknown}; pick a potential for these elements"
            )
        types = sorted(type_map.values())
        if types != list(range(1, len(types) + 1)):
            raise LammpsPhaseError(f"atom types must be 1..{len(types)} without gaps, got {dict(type_map)}")
        return [el for el, _ in sorted(type_map.items(), key=lambda item: item[1])]


def _pair_key(a: str, b: str, table: Mapping[tuple[str, str], object]) -> tuple[str, str] | None:
    if (a, b) in table:
        return (a, b)
    if (b, a) in table:
        return (b, a)
    return None


def _bks_commands(elements_by_type: list[str], corrected: bool) -> list[str]:
    born = f"born/coul/dsf {BKS_DSF_ALPHA} {BKS_CUTOFF}"
    lines = [f"pair_style hybrid/overlay {born} mie/cut {_MIE_GLOBAL_CUTOFF}" if corrected else f"pair_style {born}"]
    prefix = "born/coul/dsf " if corrected else ""
    n = len(elements_by_type)
    for i in range(n):
        for j in range(i, n):
            a, b = elements_by_type[i], elements_by_type[j]
            key = _pair_key(a, b, BKS_PAIRS)
            amp, inv_rho, c6 = BKS_PAIRS[key] if key else (0.0, 1.0, 0.0)
            lines.append(f"pair_coeff {i + 1} {j + 1} {prefix}{amp} {1.0 / inv_rho:.8f} 0.0 {c6} 0.0")
            lj_key = _pair_key(a, b, SAIKA_VOIVOD_30_6) if corrected else None
            if lj_key:
                eps, sigma = SAIKA_VOIVOD_30_6[lj_key]
                cut = lj_30_6_minimum(sigma)
                lines.append(
                    f"pair_coeff {i + 1} {j + 1} mie/cut {_mie_epsilon(eps):.10g} {sigma} "
                    f"{_REPULSIVE_EXPONENT:g} {_ATTRACTIVE_EXPONENT:g} {cut:.8f}"
                )
    if corrected:
        lines.append("pair_modify pair mie/cut shift yes")
    return lines


def _file_commands(style: str, filename: str) -> Callable[[list[str]], list[str]]:
    def commands(elements_by_type: list[str]) -> list[str]:
        path = potential_file(filename)
        return [f"pair_style {style}", f"pair_coeff * * {path} {' '.join(elements_by_type)}"]

    return commands


def _eam_commands(elements_by_type: list[str]) -> list[str]:
    return ["pair_style eam", f"pair_coeff 1 1 {potential_file('Cu_u3.eam')}"]


_BKS_CITATION = "B. W. H. van Beest, G. J. Kramer, R. A. van Santen, Phys. Rev. Lett. 64, 1955 (1990)"

_REGISTRY: dict[str, Potential] = {
    p.name: p
    for p in (
        Potential(
            name="bks_dsf",
            elements=("Si", "O"),
            atom_style="charge",
            charges=BKS_CHARGES,
            citation=_BKS_CITATION + "; short-range term: I. Saika-Voivod, F. Sciortino, P. H. Poole, "
            "Phys. Rev. E 69, 041503 (2004); DSF Coulomb: C. J. Fennell, J. D. Gezelter, J. Chem. Phys. 124, 234104 (2006)",
            description=(
                "BKS with damped shifted-force Coulomb (alpha 0.2/Å, cutoff 10 Å) plus the Saika-Voivod 30–6 term "
                "4ε[(σ/r)^30 − (σ/r)^6], truncated and shifted at its minimum r* = σ·5^(1/24) (Si–O 1.405 Å, "
                "O–O 1.903 Å; the Weeks–Chandler–Andersen construction): purely repulsive, zero at every crystal "
                "distance, and it removes the attractive collapse of BKS below ≈1.2 Å (Si–O)."
            ),
            _interaction=lambda els: _bks_commands(els, corrected=True),
        ),
        Potential(
            name="bks_dsf_uncorrected",
            elements=("Si", "O"),
            atom_style="charge",
            charges=BKS_CHARGES,
            citation=_BKS_CITATION,
            description="Plain BKS with DSF Coulomb; diverges attractively below ≈1.2 Å — crystals only, never melts.",
            _interaction=lambda els: _bks_commands(els, corrected=False),
        ),
        Potential(
            name="vashishta_1990",
            elements=("Si", "O"),
            atom_style="atomic",
            citation="P. Vashishta, R. K. Kalia, J. P. Rino, I. Ebbsjö, Phys. Rev. B 41, 12197 (1990)",
            description="Vashishta three-body SiO2 potential (SiO.1990.vashishta).",
            _interaction=_file_commands("vashishta", "SiO.1990.vashishta"),
        ),
        Potential(
            name="vashishta_1997",
            elements=("Si", "O"),
            atom_style="atomic",
            citation="A. Nakano, R. K. Kalia, P. Vashishta, J. Non-Cryst. Solids 171, 157 (1994); "
            "file SiO.1997.vashishta of the LAMMPS potential library",
            description="Later Vashishta SiO2 parametrisation (SiO.1997.vashishta).",
            _interaction=_file_commands("vashishta", "SiO.1997.vashishta"),
        ),
        Potential(
            name="tersoff_munetoh",
            elements=("Si", "O"),
            atom_style="atomic",
            citation="S. Munetoh, T. Motooka, K. Moriguchi, A. Shintani, Comput. Mater. Sci. 39, 334 (2007)",
            description="Tersoff potential for Si–O (SiO.tersoff).",
            _interaction=_file_commands("tersoff", "SiO.tersoff"),
        ),
        Potential(
            name="eam_cu",
            elements=("Cu",),
            atom_style="atomic",
            citation="S. M. Foiles, M. I. Baskes, M. S. Daw, Phys. Rev. B 33, 7983 (1986)",
            description="EAM for fcc Cu (Cu_u3.eam), for the simple-crystal example.",
            _interaction=_eam_commands,
        ),
    )
}

#: The SiO2 potential used for training data (chosen by measurement: docs/potentials.md).
DEFAULT_SIO2 = "bks_dsf"


def names() -> list[str]:
    """Names of all registered potentials."""
    return list(_REGISTRY)


def get(name: str) -> Potential:
    """The potential registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise LammpsPhaseError(f"unknown potential {name!r}; choose one of {names()}") from None


def type_map_for(potential: Potential, species: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Element → LAMMPS type for the elements present, in the potential's element order."""
    present = set(species)
    missing = sorted(present - set(potential.elements))
    if missing:
        raise LammpsPhaseError(f"potential {potential.name!r} has no parameters for {missing}; pick another potential")
    ordered = [el for el in potential.elements if el in present]
    return {el: i + 1 for i, el in enumerate(ordered)}

