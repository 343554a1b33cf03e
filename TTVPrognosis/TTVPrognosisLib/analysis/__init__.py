"""Cohort statistics on a table with one row per patient: the study's analysis (doi:10.1016/j.ejca.2024.114185).

Modules by job: config (the TOML settings), dataset (analysed rows), early_recurrence, terms (linear, log,
categorical, Harrell's splines), cox (fits and likelihood-ratio tests), concordance, bootstrap, table1,
followup, membership, models (one model's numbers), plots, summary_html, refit (the Royston-Parmar model file),
run (the ``analyze`` use case). pandas, lifelines, statsmodels and matplotlib are imported where needed, never
at import time: the Slicer panel does not load them.
"""
