"""Commands that re-write an existing bundle (weights unchanged): ``ood``, ``int8``,
``validate``, ``source-eval``."""
