"""Model architectures, MIRAGE weight loading and the model bundle format."""
