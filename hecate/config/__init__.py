"""The configuration: its model, how a file is read, its checks against this machine, addresses."""
