"""Survival from the embedded model, its calibration, and the clinical risk scores (Fong, GAME)."""
