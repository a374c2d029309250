"""What the user sees: our consoles and where library output goes (`output.py`: the run's log file, `say`), and
the live progress displays drawn on them (`progress.py`: one per stage, a row per counted piece of work)."""
