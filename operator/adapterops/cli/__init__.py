"""`kubectl adapterops`: the kubectl plugin for FineTuneJobs and ModelDeployments.

commands (argparse, `main`), client (the API server through lightkube), format (text views), report
(the HTML sweep report), charts (its matplotlib charts), trial_metrics (each trial's metrics.json).
"""
