"""Baseline against follow-up: registration, mask fitting, lesion matching, RECIST 1.1, TBS and the Comparison."""
