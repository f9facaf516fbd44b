"""`lammps-phase-train`: the staged pipeline (heating → datasets → train → report) and the training loop."""
