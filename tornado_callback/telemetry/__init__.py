"""What the server tells its operators: Prometheus metrics (metrics.py) and log records (logs.py).

A bottom layer, beside config and errors: every domain reports into it, and it imports none of them.
"""
