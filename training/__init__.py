"""What ``train.py`` orchestrates: the run directory, resuming, the Trainer with its callbacks and logger,
and publishing a run's test scores. Each module is one of those ideas."""
