"""Reading and writing files: label images, Slicer segmentations (NRRD layers), segment roles, the demo case."""
