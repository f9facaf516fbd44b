"""Training items on disk (lammps_phase.data.datasets): P-point environments and whole-snapshot k-NN graphs.

A simple cubic lattice (a = 2 Å, 4 × 4 × 4 periodic) has exactly six nearest neighbours per atom, each 2 Å away
along ±x, ±y, ±z, so every shape, offset and relative vector below is known in advance.
"""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.data.datasets import EnvironmentSet, SampleSet, extract_environments, sample_environments
from lammps_phase.errors import LammpsPhaseError

CLASSES = ["fcc", "bcc"]
ELEMENTS = ["Cu", "Ni"]
SPACING = 2.0


def simple_cubic(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid * SPACING, np.eye(3) * n * SPACING


def snapshot(n: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions, cell, species (alternating Cu/Ni) and labels (atom index mod 2) of one periodic snapshot."""
    positions, cell = simple_cubic(n)
    species = np.arange(len(positions)) % 2
    labels = (np.arange(len(positions)) // 3) % 2
    return positions, cell, species, labels


def nearest_shell(vectors: np.ndarray) -> np.ndarray:
    """The six relative vectors of one atom's first shell, in a fixed order."""
    return np.array(sorted(map(tuple, np.round(vectors, 4))))


SHELL = nearest_shell(np.concatenate([np.eye(3), -np.eye(3)]) * SPACING)


# ------------------------------------------------------------------------------------------ environments


def test_extract_environments_puts_the_centre_first_and_carries_neighbour_species_and_labels():
    positions, cell, species, labels = snapshot()
    centres = np.array([0, 5, 63])
    rel, sp, lab = extract_environments(positions, cell, species, labels, 7, centres)
    assert rel.shape == (3, 7, 3) and sp.shape == lab.shape == (3, 7)
    assert rel.dtype == np.float32 and sp.dtype == np.int8 and lab.dtype == np.int16
    np.testing.assert_array_equal(rel[:, 0], 0.0)  # the centre sits at the origin of its environment
    np.testing.assert_array_equal(sp[:, 0], species[centres])
    np.testing.assert_array_equal(lab[:, 0], labels[centres])
    for e, centre in enumerate(centres):
        np.testing.assert_allclose(nearest_shell(rel[e, 1:]), SHELL, atol=1e-5)  # periodic images included
        # each neighbour's species and label are those of the atom at centre + relative vector (minimum image)
        target = np.mod(positions[centre] + rel[e, 1:], cell[0, 0])
        atom = [int(np.argmin(np.linalg.norm(positions - t, axis=1))) for t in target]
        np.testing.assert_array_equal(sp[e, 1:], species[atom])
        np.testing.assert_array_equal(lab[e, 1:], labels[atom])


def test_sample_environments_draws_distinct_centres_and_stamps_the_metadata():
    positions, cell, species, labels = snapshot()
    rng = np.random.default_rng(0)
    env = sample_environments(positions, cell, species, labels, 7, 10, rng, CLASSES, ELEMENTS,
                              temperature=900.0, pressure=2.5, run_id=42)
    assert len(env) == 10 and env.points == 7
    assert env.positions.shape == (10, 7, 3) and env.species.shape == env.labels.shape == (10, 7)
    np.testing.assert_array_equal(env.temperature, np.full(10, 900.0, np.float32))
    np.testing.assert_array_equal(env.pressure, np.full(10, 2.5, np.float32))
    np.testing.assert_array_equal(env.run_id, np.full(10, 42, np.int32))
    assert env.classes == CLASSES and env.elements == ELEMENTS
    # more centres asked for than atoms: every atom once
    everything = sample_environments(positions, cell, species, labels, 7, 1000, rng, CLASSES, ELEMENTS)
    assert len(everything) == len(positions)
    assert sorted(everything.labels[:, 0].tolist()) == sorted(labels.tolist())


def test_environment_metadata_defaults_to_zeros_and_arrays_must_agree():
    positions, cell, species, labels = snapshot()
    rel, sp, lab = extract_environments(positions, cell, species, labels, 5, np.arange(4))
    env = EnvironmentSet(rel, sp, lab, CLASSES, ELEMENTS)
    np.testing.assert_array_equal(env.temperature, np.zeros(4))
    assert env.temperature.dtype == np.float32 and env.run_id.dtype == np.int32 and len(env.pressure) == 4
    with pytest.raises(LammpsPhaseError, match="disagree in length"):
        EnvironmentSet(rel, sp[:3], lab, CLASSES, ELEMENTS)


def test_environment_sets_concatenate_only_when_they_describe_the_same_items():
    positions, cell, species, labels = snapshot()
    rng = np.random.default_rng(1)
    a = sample_environments(positions, cell, species, labels, 7, 3, rng, CLASSES, ELEMENTS, run_id=1)
    b = sample_environments(positions, cell, species, labels, 7, 5, rng, CLASSES, ELEMENTS, run_id=2)
    both = EnvironmentSet.concatenate([a, b])
    assert len(both) == 8 and both.run_id.tolist() == [1] * 3 + [2] * 5
    np.testing.assert_array_equal(both.positions[3:], b.positions)
    with pytest.raises(LammpsPhaseError, match="no environments"):
        EnvironmentSet.concatenate([])
    wider = sample_environments(positions, cell, species, labels, 9, 3, rng, CLASSES, ELEMENTS)
    other_classes = sample_environments(positions, cell, species, labels, 7, 3, rng, ["fcc", "hcp"], ELEMENTS)
    for odd in (wider, other_classes):
        with pytest.raises(LammpsPhaseError, match="cannot be merged"):
            EnvironmentSet.concatenate([a, odd])


def test_environment_set_round_trips_through_hdf5_with_its_attributes(tmp_path):
    import h5py

    positions, cell, species, labels = snapshot()
    env = sample_environments(positions, cell, species, labels, 7, 6, np.random.default_rng(2), CLASSES, ELEMENTS,
                              temperature=300.0, run_id=7)
    env.save(tmp_path / "env.h5", attrs={"source": "test"})
    back = EnvironmentSet.load(tmp_path / "env.h5")
    for name in EnvironmentSet.ARRAYS:
        np.testing.assert_array_equal(getattr(back, name), getattr(env, name))
    assert back.classes == CLASSES and back.elements == ELEMENTS
    with h5py.File(tmp_path / "env.h5", "r") as f:
        assert f.attrs["source"] == "test"
    assert [p.name for p in tmp_path.iterdir()] == ["env.h5"]  # written atomically: no temporary left behind


# ------------------------------------------------------------------------------------------ whole-snapshot graphs


def test_a_snapshot_becomes_one_graph_with_every_atom_and_its_k_neighbours():
    positions, cell, species, labels = snapshot()
    n = len(positions)
    smp = SampleSet.from_snapshot(positions, cell, species, labels, 6, CLASSES, ELEMENTS, temperature=1200.0,
                                  pressure=5.0, run_id=3)
    assert len(smp) == 1 and smp.k == 6
    assert smp.species.shape == smp.labels.shape == (n,) and smp.index.shape == (n, 6)
    assert smp.vectors.shape == (n, 6, 3)
    assert smp.species.dtype == np.int8 and smp.labels.dtype == np.int16 and smp.index.dtype == np.int32
    assert smp.offsets.tolist() == [0, n] and smp.atoms(0) == slice(0, n)
    np.testing.assert_array_equal(smp.labels, labels)
    assert smp.temperature.tolist() == [1200.0] and smp.pressure.tolist() == [5.0] and smp.run_id.tolist() == [3]
    for i in (0, 21, n - 1):
        np.testing.assert_allclose(nearest_shell(smp.vectors[i]), SHELL, atol=1e-5)
        # the index names the atom that each vector points at (minimum image)
        target = np.mod(positions[i] + smp.vectors[i], cell[0, 0])
        np.testing.assert_allclose(positions[smp.index[i]], target, atol=1e-5)


def test_concatenated_snapshots_keep_local_indices_and_offsets():
    small, big = snapshot(3), snapshot(4)
    a = SampleSet.from_snapshot(*small, 6, CLASSES, ELEMENTS, run_id=1)
    b = SampleSet.from_snapshot(*big, 6, CLASSES, ELEMENTS, run_id=2)
    both = SampleSet.concatenate([a, b, a])
    assert len(both) == 3 and both.offsets.dtype == np.int64
    assert both.offsets.tolist() == [0, 27, 27 + 64, 27 + 64 + 27]
    assert both.run_id.tolist() == [1, 2, 1]
    np.testing.assert_array_equal(both.index[both.atoms(1)], b.index)  # indices stay local to their snapshot
    assert both.index[both.atoms(2)].max() < 27
    part = both.subset(np.array([False, True, True]))
    assert part.offsets.tolist() == [0, 64, 64 + 27] and part.run_id.tolist() == [2, 1]
    np.testing.assert_array_equal(part.vectors[part.atoms(1)], a.vectors)
    assert len(both.subset(np.array([], dtype=int))) == 0


def test_sample_sets_refuse_to_merge_different_graphs():
    positions, cell, species, labels = snapshot()
    a = SampleSet.from_snapshot(positions, cell, species, labels, 6, CLASSES, ELEMENTS)
    with pytest.raises(LammpsPhaseError, match="no samples"):
        SampleSet.concatenate([])
    for odd in (SampleSet.from_snapshot(positions, cell, species, labels, 8, CLASSES, ELEMENTS),
                SampleSet.from_snapshot(positions, cell, species, labels, 6, CLASSES, ["Cu", "Al"])):
        with pytest.raises(LammpsPhaseError, match="cannot be merged"):
            SampleSet.concatenate([a, odd])


def test_sample_metadata_defaults_to_one_zero_per_snapshot():
    positions, cell, species, labels = snapshot()
    one = SampleSet.from_snapshot(positions, cell, species, labels, 6, CLASSES, ELEMENTS)
    bare = SampleSet(one.species, one.labels, one.index, one.vectors, np.array([0, 30, 64]), CLASSES, ELEMENTS)
    assert len(bare) == 2 and bare.temperature.tolist() == [0.0, 0.0] and bare.run_id.dtype == np.int32


def test_sample_set_round_trips_and_other_files_are_refused_by_name(tmp_path):
    positions, cell, species, labels = snapshot()
    smp = SampleSet.from_snapshot(positions, cell, species, labels, 6, CLASSES, ELEMENTS, run_id=5)
    smp.save(tmp_path / "smp.h5")
    back = SampleSet.load(tmp_path / "smp.h5")
    for name in SampleSet.ARRAYS:
        np.testing.assert_array_equal(getattr(back, name), getattr(smp, name))
    assert back.classes == CLASSES and back.elements == ELEMENTS
    env = sample_environments(positions, cell, species, labels, 7, 4, np.random.default_rng(3), CLASSES, ELEMENTS)
    env.save(tmp_path / "env.h5")
    with pytest.raises(LammpsPhaseError, match="is not a lammps-phase sample dataset"):
        SampleSet.load(tmp_path / "env.h5")  # an environment file lacks the graph arrays
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(LammpsPhaseError, match="is not a lammps-phase environment dataset"):
        EnvironmentSet.load(tmp_path / "junk.h5")
