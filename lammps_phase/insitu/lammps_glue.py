"""The labeler's side of the LAMMPS Python interface: its log file, per-atom arrays, properties and variables.

Kept apart because it works around what LAMMPS 29 Sep 2021 does not offer (no string variables through
the wrapper, no way to write the log during a run) with ctypes and /proc.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
from ctypes import c_char_p, c_void_p
from typing import Any, Callable, Optional

import numpy as np

from lammps_phase import runtime
from lammps_phase.errors import LammpsPhaseError

__all__ = ["VARIABLE_REFERENCE", "as_lammps", "atom_array", "check_memory", "check_properties", "check_type_map",
           "checkpoint_argument", "communicator", "deck_errors_to_log", "define_fraction_variables", "memory_argument",
           "memory_rows", "option_arguments", "property_arguments", "publish_fractions", "substitute",
           "threshold_argument", "types_argument", "write_log_line", "write_property"]

_LMP_INT, _LMP_DOUBLE = 0, 2  # lammps.constants LAMMPS_INT, LAMMPS_DOUBLE (extract_atom_datatype)
#: ``${name}``: a LAMMPS variable in an argument, replaced at the first call (LAMMPS does not substitute
#: inside a triple-quoted python block)
VARIABLE_REFERENCE = re.compile(r"\$\{(\w+)\}")


# ---------------------------------------------------------------------------------------------- log file


def _lammps_log_fd() -> Optional[int]:
    """The descriptor of the log file LAMMPS writes in this process (``-log``/``-l``, else log.lammps), or None.

    Found through /proc (Linux): the open, writable descriptor of that file. Writing through LAMMPS' own
    descriptor (after flushing its buffers) keeps the line where it belongs among LAMMPS' own lines.
    """
    try:
        with open("/proc/self/cmdline", "rb") as handle:
            args = [a.decode(errors="replace") for a in handle.read().split(b"\0")]
        name = "log.lammps"
        for flag, value in zip(args, args[1:]):
            if flag in ("-log", "-l"):
                name = value
        if name == "none":
            return None
        want = os.stat(name)
        for entry in os.listdir("/proc/self/fd"):
            fd = int(entry)
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (want.st_dev, want.st_ino):
                    continue
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    flags = int(re.search(r"flags:\s*([0-7]+)", info.read()).group(1), 8)
            except (OSError, AttributeError, ValueError):
                continue
            if flags & 3:  # O_WRONLY or O_RDWR
                return fd
    except (OSError, ValueError):
        return None
    return None


def write_log_line(line: str) -> bool:
    """Append one line to LAMMPS' log file through its descriptor; False where there is none (other ranks)."""
    fd = _lammps_log_fd()
    if fd is None:
        return False
    with contextlib.suppress(OSError):
        ctypes.CDLL(None).fflush(None)  # LAMMPS' buffered log lines first
        os.write(fd, (line + "\n").encode())
        return True
    return False


def _report_deck_error(message: str) -> None:
    """An error while LAMMPS reads the deck (the PhaseLabeler constructor): one ``ERROR: lammps-phase: ...`` line
    on the screen and in the log (rank 0), before LAMMPS' own "Could not process Python string". Outside LAMMPS
    (plain Python) nothing is printed: the exception says it."""
    if runtime.world_rank() != 0:
        return
    line = f"ERROR: lammps-phase: {' '.join(message.split())}"
    logged = write_log_line(line)
    try:
        inside_lammps = os.path.basename(os.readlink("/proc/self/exe")).startswith("lmp")
    except OSError:
        inside_lammps = False
    if logged or inside_lammps:
        print(line, flush=True)


def deck_errors_to_log(init: Callable[..., None]) -> Callable[..., None]:
    """Constructor errors reach the LAMMPS log as one line (LAMMPS itself would only say "Could not process
    Python string"), then propagate as a LammpsPhaseError."""

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except LammpsPhaseError as err:
            _report_deck_error(str(err))
            raise
        except (TypeError, ValueError) as err:  # e.g. a misspelt keyword argument
            message = f"PhaseLabeler: {err}; see help(lammps_phase.insitu.labeler.PhaseLabeler)"
            _report_deck_error(message)
            raise LammpsPhaseError(message) from None

    return checked


# ---------------------------------------------------------------------------------------------- the instance


_WRAPPERS: dict[int, Any] = {}  # LAMMPS instance address -> its ``lammps`` wrapper


def as_lammps(ptr: Any) -> Any:
    """A ``lammps`` object from the pointer ``fix python/invoke`` passes (or the object itself).

    The wrapper is made once per LAMMPS instance: building one declares the ctypes signatures of the whole
    library interface (13 ms, measured; a fifth of a labelling of 5760 atoms). It only holds the address, so it
    stays valid for as long as that instance exists.
    """
    from lammps import lammps

    if isinstance(ptr, lammps):
        return ptr
    address = _address(ptr)
    if address is None:
        return lammps(ptr=ptr)
    if address not in _WRAPPERS:
        _WRAPPERS[address] = lammps(ptr=ptr)
    return _WRAPPERS[address]


def _address(ptr: Any) -> Optional[int]:
    """The address a ``fix python/invoke`` pointer (a PyCapsule, or an int) holds; None if it is neither."""
    if isinstance(ptr, int):
        return ptr
    if type(ptr).__name__ != "PyCapsule":
        return None
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get(ptr, None)


def communicator(lmp: Any) -> Any:
    """LAMMPS' MPI communicator as an mpi4py one (COMM_SELF for a serial LAMMPS build)."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise LammpsPhaseError("the in-situ labeler needs mpi4py: install python3-mpi4py (Debian) or mpi4py") from None
    comm = lmp.get_mpi_comm()
    return comm if comm is not None else MPI.COMM_SELF  # a serial LAMMPS build: every process is alone


# ---------------------------------------------------------------------------------------------- per-atom data


def atom_array(lmp: Any, name: str, n: int, dtype: type, width: int = 1) -> np.ndarray:
    """A contiguous copy of the first n rows of a per-atom array (empty without touching LAMMPS when n = 0)."""
    shape = (n, width) if width > 1 else (n,)
    if n == 0:
        return np.empty(shape, dtype=dtype)
    view = lmp.numpy.extract_atom(name, nelem=n, dim=width)
    return np.ascontiguousarray(np.asarray(view).reshape(shape), dtype=dtype)


def write_property(lmp: Any, name: str, values: np.ndarray) -> None:
    """Write the owned atoms' values into the fix property/atom vector ``name``."""
    if len(values) == 0:
        return
    view = lmp.numpy.extract_atom(name, nelem=len(values))
    view[:] = values


def check_properties(lmp: Any, labels: str, confidence: str) -> None:
    """The labels (integer) and confidence (float) vectors must exist: a deck mistake found at the first call."""
    fix_line = f"fix {labels[2:]} all property/atom {labels} {confidence}"
    for name, wanted, kind in ((labels, _LMP_INT, "integer"), (confidence, _LMP_DOUBLE, "float")):
        dtype = lmp.extract_atom_datatype(name)
        if dtype is None or dtype < 0:
            raise LammpsPhaseError(
                f"no per-atom property {name} to write the labels into: add `{fix_line}` before this command"
            )
        if dtype != wanted:
            raise LammpsPhaseError(f"per-atom property {name} is not {kind}: define it as in `{fix_line}`")


def _array_rows(lmp: Any, name: str) -> Optional[Any]:
    """The row pointers (double**) of the per-atom array ``name`` (``fix property/atom d2_…``), or None.

    The ``lammps`` wrapper of 29 Sep 2021 reports a d2 array as a plain double vector (its datatype is that of
    the elements), so the library call is made directly and the pointer cast here."""
    extract = lmp.lib.lammps_extract_atom
    extract.restype = c_void_p
    address = extract(lmp.lmp, name.encode())
    if not address:
        return None
    return ctypes.cast(address, ctypes.POINTER(ctypes.POINTER(ctypes.c_double)))


def _memory_fix_line(name: str, columns: int | str) -> str:
    return f"fix phase all property/atom i_phase d_phase_conf {name} {columns}"


def check_memory(lmp: Any, name: str, columns: int) -> None:
    """The label memory ``name`` must be a per-atom float array with one column per class (a deck mistake)."""
    rows = _array_rows(lmp, name)
    if rows is None or lmp.extract_atom_datatype(name) != _LMP_DOUBLE:
        raise LammpsPhaseError(f"no per-atom array {name} to keep the label memory in: add "
                               f"`{_memory_fix_line(name, columns)}` (one column per class) before this command")
    if int(lmp.extract_global("nmax")) >= 2:  # rows are contiguous: their stride is the number of columns
        stride = ctypes.cast(rows[1], c_void_p).value - ctypes.cast(rows[0], c_void_p).value
        if stride != 8 * columns:
            raise LammpsPhaseError(f"per-atom array {name} has {stride // 8} column(s) but the model has {columns} "
                                   f"classes: define it as in `{_memory_fix_line(name, columns)}`")


def memory_rows(lmp: Any, name: str, n: int, columns: int) -> np.ndarray:
    """A writable view (n, columns) of the first n rows of the label memory (checked by :func:`check_memory`)."""
    if n == 0:
        return np.empty((0, columns))
    first = ctypes.cast(_array_rows(lmp, name)[0], c_void_p).value
    block = (ctypes.c_double * (n * columns)).from_address(first)  # float64 with a plain buffer format, for MPI
    return np.frombuffer(block, dtype=np.float64).reshape(n, columns)


def check_type_map(lmp: Any, type_map: list[str]) -> None:
    """One element per LAMMPS atom type, no more, no fewer."""
    ntypes = int(lmp.extract_global("ntypes"))
    if not type_map:
        raise LammpsPhaseError(
            f'types is empty: give one element per LAMMPS atom type (this system has {ntypes}), e.g. types="Si O"'
        )
    if len(type_map) != ntypes:
        raise LammpsPhaseError(
            f"types {' '.join(type_map)!r} names {len(type_map)} element(s) but the system has {ntypes} atom types: "
            "give exactly one element per LAMMPS type, in type order"
        )


# ---------------------------------------------------------------------------------------------- variables


def substitute(lmp: Any, text: str, what: str) -> str:
    """Replace ``${name}`` by the value of LAMMPS string/index variable ``name``."""

    def value(match: "re.Match[str]") -> str:
        name = match.group(1)
        fetch = lmp.lib.lammps_extract_variable
        fetch.restype = c_void_p  # a string-style variable comes back as char*; the wrapper cannot return it
        address = fetch(lmp.lmp, name.encode(), None)
        if not address:
            raise LammpsPhaseError(
                f"{what} {text!r} refers to LAMMPS variable {name}, which is not defined: add "
                f"`variable {name} index <value>` to the deck or pass -var {name} <value>"
            )
        return c_char_p(address).value.decode()

    return VARIABLE_REFERENCE.sub(value, text)


def checkpoint_argument(checkpoint: Any) -> str:
    """The checkpoint path, checked now unless it names a LAMMPS variable (resolved at the first call)."""
    if not isinstance(checkpoint, (str, os.PathLike)) or not str(checkpoint).strip():
        raise LammpsPhaseError(f"checkpoint {checkpoint!r} must be the path of a .pt file, e.g. \"checkpoints/sio2.pt\"")
    text = str(checkpoint)
    if not VARIABLE_REFERENCE.search(text):
        if os.path.isdir(text):
            raise LammpsPhaseError(f"checkpoint {text} is a folder: give the path of a .pt file (e.g. checkpoints/sio2.pt)")
        if not os.path.isfile(text):
            raise LammpsPhaseError(f"checkpoint {text} does not exist: give the path of a .pt file "
                                   "(e.g. checkpoints/sio2.pt)")
    return text


MODES = ("gather", "local", "auto")
ON_ERROR = ("stop", "skip")


def option_arguments(mode: str, on_error: str, compile: Any, auto_local_atoms: Any) -> Any:
    """The labeler's options checked at construction; returns ``compile`` (False when LAMMPS_PHASE_COMPILE=0)."""
    if mode not in MODES:
        raise LammpsPhaseError(f"PhaseLabeler mode {mode!r} is unknown: use 'gather', 'local' or 'auto'")
    if isinstance(auto_local_atoms, bool) or not isinstance(auto_local_atoms, int) or auto_local_atoms < 0:
        raise LammpsPhaseError(f"auto_local_atoms {auto_local_atoms!r} must be a whole number of atoms >= 0")
    if on_error not in ON_ERROR:
        raise LammpsPhaseError(f"PhaseLabeler on_error {on_error!r} is unknown: use 'stop' or 'skip'")
    if compile not in (True, False, "auto"):
        raise LammpsPhaseError(f"PhaseLabeler compile must be True, False or 'auto', not {compile!r}")
    if os.environ.get("LAMMPS_PHASE_COMPILE", "").strip().lower() in ("0", "false", "no", "off"):
        return False
    return compile


def property_arguments(labels: str, confidence: str, memory: Optional[str]) -> None:
    """The per-atom properties' names have the forms ``fix property/atom`` gives them (checked at construction)."""
    if not isinstance(labels, str) or not re.fullmatch(r"i_\w+", labels):
        raise LammpsPhaseError(f"labels {labels!r} must name an integer property/atom vector, e.g. 'i_phase'")
    if not isinstance(confidence, str) or not re.fullmatch(r"d_\w+", confidence):
        raise LammpsPhaseError(f"confidence {confidence!r} must name a float property/atom vector, e.g. 'd_phase_conf'")
    memory_argument(memory)


def memory_argument(memory: Optional[str]) -> Optional[str]:
    """The label memory's name: None (no memory) or a float per-atom array, ``d2_…``."""
    if memory is not None and (not isinstance(memory, str) or not re.fullmatch(r"d2_\w+", memory)):
        raise LammpsPhaseError(f"memory {memory!r} must name a float per-atom array with one column per class, e.g. "
                               f"'d2_phase_memory' defined by `{_memory_fix_line('d2_phase_memory', 10)}`")
    return memory


def threshold_argument(threshold: Any) -> Optional[float]:
    """None (the checkpoint's calibrated default) or a softmax probability in [0, 1)."""
    if threshold is None:
        return None
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value < 1.0:
        raise LammpsPhaseError(f"threshold {value} must lie in [0, 1): it is a softmax probability")
    return value


def types_argument(types: Any) -> str:
    """The type map as text ("Si O"), checked for form now (the model's elements are checked at the first call)."""
    if isinstance(types, str):
        text = types
    elif isinstance(types, (list, tuple)) and all(isinstance(t, str) for t in types):
        text = " ".join(types)
    else:
        raise LammpsPhaseError(f'types {types!r} must name one element per LAMMPS atom type: types="Si O" or ["Si", "O"]')
    if not VARIABLE_REFERENCE.search(text):
        if not text.split():
            raise LammpsPhaseError('types is empty: give one element per LAMMPS atom type, e.g. types="Si O"')
        bad = [t for t in text.split() if not re.fullmatch(r"[A-Z][a-z]?", t)]
        if bad:
            raise LammpsPhaseError(f"types {text!r}: {' '.join(bad)} is not an element symbol; give one symbol per "
                                   'LAMMPS atom type, separated by spaces, e.g. types="Si O"')
    return text


def define_fraction_variables(lmp: Any, names: list[str], prefix: str) -> None:
    """Outside a run: one equal-style variable per name (its value a string variable ``<name>_value`` that
    :func:`publish_fractions` sets), and ``${<prefix>_thermo}`` listing them all, so a deck need not know the
    class names: ``thermo_style custom step ${phase_thermo}``."""
    for name in names:
        lmp.command(f"variable {name}_value string 0")
        lmp.command(f"variable {name} equal v_{name}_value")
    lmp.command(f'variable {prefix}_thermo string "{" ".join("v_" + n for n in names)}"')


def publish_fractions(lmp: Any, names: list[str], counts: np.ndarray) -> None:
    """Set the variables of :func:`define_fraction_variables` to the fractions of ``counts`` (one per name)."""
    fractions = counts / max(int(counts.sum()), 1)
    for name, value in zip(names, fractions):
        lmp.set_variable(f"{name}_value", f"{value:.6f}")
