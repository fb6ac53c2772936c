"""Prefect shell: thin flows and tasks around pressroom.* calls, with retries and artifacts."""
