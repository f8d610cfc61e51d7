"""Integrations of ckpt with the frameworks pipelines run on.

* :mod:`ckpt.integrations.langgraph`: a LangGraph checkpointer (``ckpt[langgraph]``),
  and ``import_threads`` to move threads between LangGraph savers.

Each integration imports its framework only when it is imported itself, so
that ``import ckpt`` never needs them.
"""
