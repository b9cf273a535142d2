"""The ``scalinglaws`` command (installed as ``scalinglaws.cli``).  It only parses and prints."""
