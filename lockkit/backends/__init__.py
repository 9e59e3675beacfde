"""The built-in backends. Each module is a plugin registered through an entry point.

``_file`` holds what the file backends share: the lock-file payload, path rules and
reading a lock file without following symlinks.
"""
