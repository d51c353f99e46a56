"""Training pipeline: one module per DVC stage (load, prepare, train, evaluate, export)."""
