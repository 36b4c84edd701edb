"""The plumbing: how a stage runs and is recorded, not what it computes. Parameters and their checks, the closed
lists of names they take and the variants a run produces (choices), where every file lives (layout), all-or-nothing
outputs, metrics files, training curves as files, progress lines, and the MLflow run of each stage. It imports
nothing from the rest of tinygray (tests/test_package_layout.py checks). Editing a module here never retrains a
model: scripts/stage_deps.py leaves this package out of every stage's DVC dependencies, except choices.py, whose
names shape the outputs."""
