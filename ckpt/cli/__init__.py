"""The ``ckpt`` command line: a thin skin over the library."""
