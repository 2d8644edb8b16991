"""The upstream bugs graphai fixes on purpose (``docs/differences.md``, "The 12 fixes", 1-12),
one module per feature.

One class per numbered fix (``TestFix01...`` to ``TestFix12...``); every test states in its
docstring why it fails on graphai-lib 0.0.12. The modules import only names upstream also has
(``graphai``, ``graphai.callback``, ``graphai.graph``) besides ``tests._stream``, so
``pytest tests/fixes`` can be run unchanged against the upstream package to prove that.
"""
