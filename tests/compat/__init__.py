"""Compatibility with graphai-lib 0.0.12: the behaviours of upstream graphai-lib 0.0.12 that
graphai keeps, with upstream's exact values and messages, one module per feature. "Check N"
and "section N" in the docstrings are labels from the behaviour checklist these tests were
written from (that checklist is not part of this repository); each test's name and docstring
says the behaviour itself.

The "quirk" checks that graphai fixes (``docs/differences.md``, "The 12 fixes": caller input
mutated, join edges ignored by ``compile()``, ``token_format`` ignored, the callback left open)
are asserted here as the fixed behaviour; ``tests/fixes/`` has the tests that prove each fix differs from upstream.
"""
