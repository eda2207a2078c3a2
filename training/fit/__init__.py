"""The fit: what trains on what (plan), the loop, its state and checkpoints, batches, DDP."""
