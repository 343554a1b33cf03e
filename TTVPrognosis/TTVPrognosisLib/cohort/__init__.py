"""A cohort run patient by patient: manifest, runner, journal and resume, result tables, progress."""
