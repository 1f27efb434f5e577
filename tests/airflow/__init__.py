"""airflow tests."""
