"""Notifications from the host: the spool, the sender thread and the Apprise child process."""
