"""The Lightning adapter: the LightningModule, the DataModule and one job's fit and test.

What runs the jobs of a comparison (plan, job, driver, options, signals) is :mod:`i2m2.orchestration`.
"""
