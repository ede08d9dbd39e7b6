"""The admins' web console under ``/console/``: the callback, its attempts and its jobs in a browser.

Server-rendered Tornado templates over the services the API's handlers use, with
the API's users and permissions; the only script follows a running job's output.
"""
