"""Run folders: their layout, atomic writes, job records, predictions, results tables and plots.

``training`` trains and hands results here; ``analysis`` reads run folders through this package.
"""
