"""Helpers shared by every test folder: WAV audio, hook settings, Airflow runs, reliability tools."""

#: Quick retries for hooks on the emulator, so that fault tests end in milliseconds.
FAST_RETRIES = {"retry_backoff": 0.01, "retry_max_wait": 0.05, "max_retries": 4, "timeout": 5}

#: Fewer retries, for the Airflow suites' connection ``musicai_default``: their sensor and trigger
#: tests count attempts per poll.
AIRFLOW_RETRIES = {**FAST_RETRIES, "max_retries": 2}
