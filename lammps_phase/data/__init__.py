"""Training data: crystal structures, interatomic potentials, checked MD runs (bulk and variants), datasets."""
