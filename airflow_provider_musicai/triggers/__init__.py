"""Triggers of the Music AI provider (run in Airflow's triggerer)."""
