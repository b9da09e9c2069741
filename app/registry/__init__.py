"""Models: training recipes run on the train queue and the versioned model registry."""
