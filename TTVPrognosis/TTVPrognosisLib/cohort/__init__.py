"""A cohort run patient by patient: manifest, patient, runner, journal and resume, outputs, tables, progress."""
