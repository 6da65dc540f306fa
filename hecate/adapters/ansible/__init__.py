"""The Ansible port and what it needs: assets, run dirs, events, the inventory, SSH preflight."""
