"""Measuring a segmentation: connected lesions, diameters, TTV and liver volume."""
