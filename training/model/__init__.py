"""The network: built from its architecture and initial weights, frozen parts, features."""
