"""Measuring models for the deployment report: a harness, a per-run worker process, the report."""
