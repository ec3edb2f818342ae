"""Running a comparison: which jobs (plan), one job as a pure function (job), the driver that runs them and
alone writes the run folder (comparison), how to run (options) and stopping cleanly (signals)."""
