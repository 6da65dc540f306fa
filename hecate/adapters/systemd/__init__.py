"""systemd: the notify protocol and what the self-update timer left behind."""
