"""Slicer adapters: the only code besides TTVPrognosis.py that imports slicer, vtk or qt."""
