"""Integrations of ckpt with the frameworks pipelines run on.

* :mod:`ckpt.integrations.langgraph`: a LangGraph checkpointer (``ckpt[langgraph]``).

Each integration imports its framework only when it is imported itself, so
that ``import ckpt`` never needs them.
"""
