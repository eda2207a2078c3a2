"""After the fit: temperature, metrics, the test set, out-of-distribution statistics."""
