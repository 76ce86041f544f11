"""Databricks job failure triage.

`python -m shared` is the command line; `shared.triage` is the pipeline. Importing this
package is cheap on purpose: heavy SDKs are imported where they are first needed.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
