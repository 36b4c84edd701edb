"""The plumbing: how a stage runs and is recorded, not what it computes. Parameters and their checks,
where every file lives (layout), all-or-nothing outputs, metrics files, training curves as files, and
the MLflow run of each stage. Editing a module here never retrains a model: scripts/stage_deps.py leaves
this package out of every stage's DVC dependencies."""
