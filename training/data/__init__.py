"""The labelled images: discovery, the patient split and folds, sources, augmentation."""
