"""Fault-injection harness for the reliability suite: network namespaces, small
filesystems, process kill/restart, result recording and token-leak grep.

Everything here cleans up after itself (``finally`` plus ``atexit``), uses unique
names and temp dirs, and touches no address outside loopback or namespaces it made.
"""
