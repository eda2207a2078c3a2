"""What a run writes: provenance, the bundle, the run directory, plots, model-card text."""
